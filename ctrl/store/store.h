// SPDX-License-Identifier: Apache-2.0
// Store: durable, project-isolated object storage with Kubernetes metadata semantics.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ctrl/api/json.h"
#include "ctrl/api/object_key.h"
#include "base/result.h"

namespace lastmile::ctrl {

using Clock = std::function<std::chrono::system_clock::time_point()>;

// All objects passed in have been admitted (apiVersion, kind, metadata.name and
// metadata.namespace present). Errors: Errc::NotFound, Errc::AlreadyExists, Errc::Conflict;
// anything else is a storage failure. Every write is durable when it returns: an
// acknowledged write survives kill -9 of the process and power loss.
// Implementations are internally synchronized.
class Store {
public:
    virtual ~Store() = default;

    virtual Result<Json> get(const std::string& project, const ObjectKey& key) = 0;

    // Objects of one group/kind, optionally one namespace; sorted by namespace, then name.
    virtual Result<std::vector<Json>> list(const std::string& project, const std::string& group,
                                           const std::string& kind,
                                           const std::optional<std::string>& ns) = 0;

    // Every object of a project, in (group, kind, namespace, name) order: the reconciler's input.
    virtual Result<std::vector<Json>> listProject(const std::string& project) = 0;

    // Projects holding at least one object.
    virtual Result<std::vector<std::string>> projects() = 0;

    // Sets uid, resourceVersion, generation 1, creationTimestamp; drops any status.
    virtual Result<Json> create(const std::string& project, Json object) = 0;

    // Replaces everything but status and server-owned metadata. If the object carries
    // metadata.resourceVersion and it differs from the stored one: Errc::Conflict.
    // generation is bumped when anything outside metadata and status changed; a replace
    // that changes nothing does not bump resourceVersion either.
    virtual Result<Json> update(const std::string& project, Json object) = 0;

    // Writes `status` only (never bumps generation). No-op when equal to the stored one.
    virtual Result<Json> updateStatus(const std::string& project, const ObjectKey& key,
                                      Json status) = 0;

    // Returns the deleted object.
    virtual Result<Json> remove(const std::string& project, const ObjectKey& key) = 0;

    // Current store-wide revision (the last resourceVersion handed out).
    virtual Result<std::uint64_t> revision() = 0;
};

// SQLite store at `path` (created if absent), WAL journal with synchronous=FULL.
// `clock` gives creationTimestamp (truncated to whole seconds).
Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, Clock clock);

}  // namespace lastmile::ctrl
