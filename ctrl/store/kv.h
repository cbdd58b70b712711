// SPDX-License-Identifier: Apache-2.0
// KvBackend: the versioned key-value store under every Store (SQLite, etcd). The object rules
// live once above it (object_store.cc), so both backends behave the same by construction.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "ctrl/store/store.h"

namespace lastmile::ctrl {

// One key as the backend holds it. Revisions come from one store-wide counter that every
// write bumps (etcd's revision; the SQLite store keeps its own).
struct KvRecord {
    std::string key;
    std::string value;
    std::uint64_t modRevision = 0;     // the write that produced this value
    std::uint64_t createRevision = 0;  // the write that created this incarnation of the key
};

struct KvSnapshot {
    std::vector<KvRecord> records;  // sorted by key
    std::uint64_t revision = 0;     // the store revision the read saw
};

struct KvChange {
    bool deleted = false;
    KvRecord record;  // a put: the new value; a delete: the value it removed, and modRevision
                      // is the revision of the delete
};

// Changes under a prefix, in revision order, each once.
class KvFeed {
public:
    virtual ~KvFeed() = default;
    // Waits up to `wait`; may return no changes. Errc::Gone when the revision the feed resumes
    // from was compacted away: the caller relists.
    virtual Result<std::vector<KvChange>> next(std::chrono::milliseconds wait) = 0;
    virtual void wake() = 0;
};

// Implementations are internally synchronized. Errors: Errc::Conflict from a write whose
// expectation failed (nothing written); Errc::Unavailable when the backend cannot be reached or
// cannot commit (nothing written, or the outcome was re-read and found not applied).
class KvBackend {
public:
    virtual ~KvBackend() = default;

    virtual Result<std::optional<KvRecord>> read(const std::string& key) = 0;
    // Every key starting with `prefix`.
    virtual Result<KvSnapshot> range(const std::string& prefix) = 0;
    // Sets `key` to `value`, or deletes it when `value` is nullopt, if its modRevision is
    // `expected` (0: the key must be absent). Returns the revision of the write.
    virtual Result<std::uint64_t> write(const std::string& key,
                                        const std::optional<std::string>& value,
                                        std::uint64_t expected) = 0;
    virtual Result<std::uint64_t> revision() = 0;
    // Changes under `prefix` with a revision above `after`.
    virtual std::unique_ptr<KvFeed> watch(const std::string& prefix, std::uint64_t after) = 0;
};

// The Store over `backend`, keeping objects under `prefix` + "objects/" + objectPath().
std::unique_ptr<Store> makeObjectStore(std::unique_ptr<KvBackend> backend, std::string prefix,
                                       Clock clock);

// Where an object lives below "objects/": "<project>/<kind>/<namespace>/<name>" (a kind names
// one group here, ctrl/api/kinds.cc). Errc::Invalid when a part is empty or holds a '/'.
Result<std::string> objectPath(const std::string& project, const ObjectKey& key);

// The backend under a Store made by makeObjectStore(); nullptr for any other Store.
KvBackend* backendOf(Store& store);

}  // namespace lastmile::ctrl
