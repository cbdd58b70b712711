// SPDX-License-Identifier: Apache-2.0
// Store: durable, project-isolated object storage with Kubernetes metadata semantics.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctrl/api/json.h"
#include "ctrl/api/object_key.h"
#include "base/result.h"

namespace lastmile::ctrl {

using Clock = std::function<std::chrono::system_clock::time_point()>;

// A list read at one store revision: the `resourceVersion` of API lists, and where a watch
// that follows the list starts.
struct Listed {
    std::vector<Json> items;
    std::uint64_t revision = 0;
};

struct StoreEvent {
    enum class Type { Added, Modified, Deleted };
    Type type = Type::Added;
    std::string project;
    Json object;  // Deleted: the object as it was, resourceVersion the delete's revision
    std::uint64_t revision = 0;
};

// Changes to every object of every project, in revision order, each once.
class StoreWatch {
public:
    virtual ~StoreWatch() = default;
    // Waits up to `wait`; may return no events. Errc::Gone when the revision the watch
    // resumes from is no longer kept: list again and watch from the list's revision.
    virtual Result<std::vector<StoreEvent>> next(std::chrono::milliseconds wait) = 0;
    // From another thread: a next() in progress returns at once.
    virtual void wake() = 0;
};

// What a delete must find, as Kubernetes' DeleteOptions.preconditions.
struct Preconditions {
    std::optional<std::string> uid;
    std::optional<std::string> resourceVersion;
};

// All objects passed in have been admitted (apiVersion, kind, metadata.name and
// metadata.namespace present). Errors: Errc::NotFound, Errc::AlreadyExists, Errc::Conflict
// (a precondition failed), Errc::Unavailable (the store cannot be reached or has no quorum:
// nothing was written), Errc::Gone (watch); anything else is a storage failure. Every write is
// durable when it returns. Implementations are internally synchronized. The object rules
// (uid, generation, timestamps, no-op writes, preconditions) are the same on every backend.
class Store {
public:
    virtual ~Store() = default;

    virtual Result<Json> get(const std::string& project, const ObjectKey& key) = 0;

    // Objects of one group/kind, optionally one namespace; sorted by namespace, then name.
    virtual Result<Listed> list(const std::string& project, const std::string& group,
                                const std::string& kind, const std::optional<std::string>& ns) = 0;

    // Every object of a project, in (group, kind, namespace, name) order: the reconciler's input.
    virtual Result<Listed> listProject(const std::string& project) = 0;

    // Every object of every project, by project, then as listProject: a watcher's relist.
    virtual Result<std::vector<std::pair<std::string, Listed>>> listAll() = 0;

    // Projects holding at least one object.
    virtual Result<std::vector<std::string>> projects() = 0;

    // Sets uid, resourceVersion, generation 1, creationTimestamp; drops any status.
    virtual Result<Json> create(const std::string& project, Json object) = 0;

    // Replaces everything but status and server-owned metadata. If the object carries
    // metadata.resourceVersion and it differs from the stored one: Errc::Conflict.
    // generation is bumped when anything outside metadata and status changed; a replace
    // that changes nothing does not bump resourceVersion either.
    virtual Result<Json> update(const std::string& project, Json object) = 0;

    // Writes `status` only (never bumps generation); a null status removes it. No-op when
    // equal to the stored one. With `resourceVersion`, Errc::Conflict unless the stored object
    // is still at it: a status computed from an older object never replaces a newer one.
    virtual Result<Json> updateStatus(const std::string& project, const ObjectKey& key,
                                      Json status,
                                      std::optional<std::string> resourceVersion = {}) = 0;

    // Returns the deleted object. Errc::Conflict when a precondition does not hold.
    virtual Result<Json> remove(const std::string& project, const ObjectKey& key,
                                const Preconditions& preconditions = {}) = 0;

    // Current store-wide revision.
    virtual Result<std::uint64_t> revision() = 0;

    // Changes after `fromRevision` (a list's revision).
    virtual std::unique_ptr<StoreWatch> watch(std::uint64_t fromRevision) = 0;
};

// SQLite store at `path` (created if absent), WAL journal with synchronous=FULL.
// `clock` gives creationTimestamp (truncated to whole seconds).
Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, Clock clock);

}  // namespace lastmile::ctrl
