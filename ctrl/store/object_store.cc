// SPDX-License-Identifier: Apache-2.0
// The object rules of every Store (uid, generation, timestamps, no-op writes, preconditions),
// over a versioned key-value backend.
#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "base/text.h"
#include "ctrl/store/kv.h"

namespace lastmile::ctrl {
namespace {

// A write without a precondition that loses a race re-reads and tries again; this many times
// means something rewrites the object in a loop, which is worth an error rather than a spin.
constexpr int kWriteAttempts = 16;

std::string describe(const std::string& project, const ObjectKey& key) {
    std::string kind = key.group.empty() ? key.kind : key.kind + "." + key.group;
    return kind + " " + key.ns + "/" + key.name + " in project " + project;
}

Result<std::string> newUid() {
    std::array<unsigned char, 16> b{};
    if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
        std::array<char, 256> buf{};
        ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
        return fail(Errc::Internal, std::string("generating uid: RAND_bytes: ") + buf.data());
    }
    // RFC 4122 version 4 (random) and variant 10xx.
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out += '-';
        }
        out += kHex[b[i] >> 4];
        out += kHex[b[i] & 0x0f];
    }
    return out;
}

// JSON equality that ignores object key order: a client that re-sends the same object with its
// fields in another order has not changed it.
bool sameJson(const Json& a, const Json& b) {
    if (a.is_object() && b.is_object()) {
        if (a.size() != b.size()) {
            return false;
        }
        for (auto it = a.begin(); it != a.end(); ++it) {
            auto other = b.find(it.key());
            if (other == b.end() || !sameJson(it.value(), *other)) {
                return false;
            }
        }
        return true;
    }
    if (a.is_array() && b.is_array()) {
        if (a.size() != b.size()) {
            return false;
        }
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (!sameJson(a[i], b[i])) {
                return false;
            }
        }
        return true;
    }
    return a == b;
}

// Equal apart from metadata and status: what decides whether generation moves.
bool sameSpec(const Json& a, const Json& b) {
    auto counted = [](const Json& o) {
        std::size_t n = 0;
        for (auto it = o.begin(); it != o.end(); ++it) {
            if (it.key() != "metadata" && it.key() != "status") {
                ++n;
            }
        }
        return n;
    };
    if (counted(a) != counted(b)) {
        return false;
    }
    for (auto it = a.begin(); it != a.end(); ++it) {
        if (it.key() == "metadata" || it.key() == "status") {
            continue;
        }
        auto other = b.find(it.key());
        if (other == b.end() || !sameJson(it.value(), *other)) {
            return false;
        }
    }
    return true;
}

struct ServerFields {
    std::string uid;
    std::int64_t generation = 0;
    std::string creationTimestamp;
};

bool isServerOwned(const std::string& field) {
    return field == "uid" || field == "resourceVersion" || field == "generation" ||
           field == "creationTimestamp";
}

// Server-owned fields come from `server`, whatever the client sent; the order is fixed so that
// every stored object reads the same. resourceVersion holds its place here and gets its value
// when the object is read (the backend's revision of the write is known only after it).
Json buildMetadata(const Json& input, const ServerFields& server) {
    Json meta = Json::object();
    meta["name"] = input.at("name");
    meta["namespace"] = input.at("namespace");
    meta["uid"] = server.uid;
    meta["resourceVersion"] = "";
    meta["generation"] = server.generation;
    meta["creationTimestamp"] = server.creationTimestamp;
    for (const char* field : {"labels", "annotations"}) {
        if (auto it = input.find(field); it != input.end()) {
            meta[field] = *it;
        }
    }
    for (auto it = input.begin(); it != input.end(); ++it) {
        const std::string& k = it.key();
        if (k == "name" || k == "namespace" || k == "labels" || k == "annotations" ||
            isServerOwned(k)) {
            continue;
        }
        meta[k] = it.value();
    }
    return meta;
}

// The client's object in the client's field order, with metadata rebuilt and the client's
// status (if any) replaced by `status`.
Json buildObject(const Json& input, const ServerFields& server, const Json* status) {
    Json out = Json::object();
    for (auto it = input.begin(); it != input.end(); ++it) {
        if (it.key() == "status") {
            continue;
        }
        out[it.key()] = it.key() == "metadata" ? buildMetadata(it.value(), server) : it.value();
    }
    if (status != nullptr) {
        out["status"] = *status;
    }
    return out;
}

ServerFields serverFieldsOf(const Json& stored) {
    const Json& meta = stored.at("metadata");
    return ServerFields{meta.at("uid").get<std::string>(), meta.at("generation").get<std::int64_t>(),
                        meta.at("creationTimestamp").get<std::string>()};
}

// metadata.resourceVersion of an update request; "" and absent both mean "unconditional".
Result<std::optional<std::string>> requestedVersion(const Json& object, const std::string& what) {
    const auto& meta = object.at("metadata");
    auto it = meta.find("resourceVersion");
    if (it == meta.end() || it->is_null()) {
        return std::optional<std::string>();
    }
    if (it->is_string()) {
        auto v = it->get<std::string>();
        return v.empty() ? std::optional<std::string>() : std::optional<std::string>(v);
    }
    if (it->is_number_unsigned() || it->is_number_integer()) {
        return std::optional<std::string>(it->dump());
    }
    return fail(Errc::Invalid, what + ": metadata.resourceVersion must be a string");
}

Status staleUnless(const std::optional<std::string>& requested, std::uint64_t stored,
                   const std::string& what) {
    if (requested && *requested != std::to_string(stored)) {
        return fail(Errc::Conflict, what + ": resourceVersion " + *requested +
                                        " is stale, the stored object is at " +
                                        std::to_string(stored));
    }
    return {};
}

// A key segment must not contain the separator, or two objects could share a key. Admission
// already holds names and namespaces to DNS rules and the API holds projects to DNS labels;
// this keeps the store safe on its own.
Status checkSegment(const std::string& value, const char* what) {
    if (value.empty() || value.find('/') != std::string::npos) {
        return fail(Errc::Invalid, std::string(what) + " \"" + value +
                                       "\" must be non-empty and must not contain '/'");
    }
    return {};
}

// Exceptions can only come from nlohmann::json on malformed input (a non-admitted object,
// invalid UTF-8 in a string); they must not cross the Store interface.
template <typename T, typename Fn>
Result<T> guarded(const std::string& doing, Fn&& fn) {
    try {
        return fn();
    } catch (const nlohmann::json::exception& e) {
        return fail(Errc::Invalid, doing + ": " + e.what());
    } catch (const std::exception& e) {
        return fail(Errc::Internal, doing + ": " + e.what());
    }
}

std::tuple<std::string, std::string, std::string, std::string> listOrder(const Json& object) {
    const Json& meta = object.at("metadata");
    return {groupOf(object.at("apiVersion").get<std::string>()), object.at("kind").get<std::string>(),
            meta.at("namespace").get<std::string>(), meta.at("name").get<std::string>()};
}

// Byte order of keys is not (group, kind, namespace, name) order: "a-b/x" sorts before "a/x".
void sortForLists(std::vector<Json>& items) {
    std::stable_sort(items.begin(), items.end(),
                     [](const Json& a, const Json& b) { return listOrder(a) < listOrder(b); });
}

// Lists filter on the group, which is in the stored object (objectPath() leaves it out).
class ObjectStore final : public Store {
public:
    ObjectStore(std::unique_ptr<KvBackend> kv, std::string prefix, Clock clock)
        : kv_(std::move(kv)), root_(std::move(prefix) + "objects/"), clock_(std::move(clock)) {
        if (!clock_) {
            clock_ = [] { return std::chrono::system_clock::now(); };
        }
    }

    Result<Json> get(const std::string& project, const ObjectKey& key) override;
    Result<Listed> list(const std::string& project, const std::string& group,
                        const std::string& kind, const std::optional<std::string>& ns) override;
    Result<Listed> listProject(const std::string& project) override;
    Result<std::vector<std::pair<std::string, Listed>>> listAll() override;
    Result<std::vector<std::string>> projects() override;
    Result<Json> create(const std::string& project, Json object) override;
    Result<Json> update(const std::string& project, Json object) override;
    Result<Json> updateStatus(const std::string& project, const ObjectKey& key, Json status,
                              std::optional<std::string> resourceVersion) override;
    Result<Json> remove(const std::string& project, const ObjectKey& key,
                        const Preconditions& preconditions) override;
    Result<std::uint64_t> revision() override { return kv_->revision(); }
    std::unique_ptr<StoreWatch> watch(std::uint64_t fromRevision) override;

    KvBackend& backend() { return *kv_; }
    // The object a record holds, resourceVersion filled in.
    static Result<Json> decode(const KvRecord& record, const std::string& what);
    // The project a key under root_ belongs to; empty when the key is not an object's.
    std::string projectOf(const std::string& key) const;

private:
    Result<std::string> keyFor(const std::string& project, const ObjectKey& key) const;
    // The stored object and its record; Errc::NotFound when absent.
    Result<std::pair<KvRecord, Json>> readExisting(const std::string& key, const std::string& what);
    Result<Listed> collect(const std::string& prefix, const std::string& what,
                           const std::function<bool(const Json&)>& keep);
    // Runs `attempt` until it does not lose a race, at most kWriteAttempts times. `attempt`
    // returns Errc::Conflict from the backend only when no precondition of the caller's was
    // involved; a caller's failed precondition is reported with Errc::Conflict too but is
    // final, so attempts say which by `retry`.
    template <typename Fn>
    Result<Json> retrying(const std::string& what, Fn&& attempt);

    std::unique_ptr<KvBackend> kv_;
    const std::string root_;
    Clock clock_;
};

Result<Json> ObjectStore::decode(const KvRecord& record, const std::string& what) {
    Json parsed = Json::parse(record.value, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("metadata") ||
        !parsed["metadata"].is_object()) {
        return fail(Errc::Internal, what + ": stored value of " + record.key +
                                        " is not an object");
    }
    parsed["metadata"]["resourceVersion"] = std::to_string(record.modRevision);
    return parsed;
}

std::string ObjectStore::projectOf(const std::string& key) const {
    if (key.compare(0, root_.size(), root_) != 0) {
        return {};
    }
    auto slash = key.find('/', root_.size());
    return slash == std::string::npos ? std::string() : key.substr(root_.size(), slash - root_.size());
}

Result<std::string> ObjectStore::keyFor(const std::string& project, const ObjectKey& key) const {
    auto path = objectPath(project, key);
    LM_TRY(path);
    return root_ + *path;
}

Result<std::pair<KvRecord, Json>> ObjectStore::readExisting(const std::string& key,
                                                            const std::string& what) {
    auto record = kv_->read(key);
    LM_TRY(record);
    if (!*record) {
        return fail(Errc::NotFound, what);
    }
    auto object = decode(**record, what);
    LM_TRY(object);
    return std::pair<KvRecord, Json>(std::move(**record), std::move(*object));
}

template <typename Fn>
Result<Json> ObjectStore::retrying(const std::string& what, Fn&& attempt) {
    for (int i = 0; i < kWriteAttempts; ++i) {
        bool retry = false;
        auto result = attempt(retry);
        if (result || !retry || result.error().code() != Errc::Conflict) {
            return result;
        }
    }
    return fail(Errc::Conflict, what + ": the object kept changing while it was written");
}

Result<Json> ObjectStore::get(const std::string& project, const ObjectKey& key) {
    const std::string what = "getting " + describe(project, key);
    return guarded<Json>(what, [&]() -> Result<Json> {
        auto k = keyFor(project, key);
        LM_TRY(k);
        auto existing = readExisting(*k, what);
        LM_TRY(existing);
        return std::move(existing->second);
    });
}

Result<Listed> ObjectStore::collect(const std::string& prefix, const std::string& what,
                                    const std::function<bool(const Json&)>& keep) {
    auto snapshot = kv_->range(prefix);
    LM_TRY(snapshot);
    Listed out;
    out.revision = snapshot->revision;
    for (const auto& record : snapshot->records) {
        auto object = decode(record, what);
        LM_TRY(object);
        if (keep(*object)) {
            out.items.push_back(std::move(*object));
        }
    }
    sortForLists(out.items);
    return out;
}

Result<Listed> ObjectStore::list(const std::string& project, const std::string& group,
                                 const std::string& kind, const std::optional<std::string>& ns) {
    std::string what = "listing " + (group.empty() ? kind : kind + "." + group);
    what += ns ? " in namespace " + *ns : std::string();
    what += " in project " + project;
    return guarded<Listed>(what, [&]() -> Result<Listed> {
        LM_TRY(checkSegment(project, "project"));
        LM_TRY(checkSegment(kind, "kind"));
        std::string prefix = root_ + project + "/" + kind + "/";
        if (ns) {
            LM_TRY(checkSegment(*ns, "namespace"));
            prefix += *ns + "/";
        }
        return collect(prefix, what, [&](const Json& o) {
            return groupOf(o.at("apiVersion").get<std::string>()) == group;
        });
    });
}

Result<Listed> ObjectStore::listProject(const std::string& project) {
    const std::string what = "listing project " + project;
    return guarded<Listed>(what, [&]() -> Result<Listed> {
        LM_TRY(checkSegment(project, "project"));
        return collect(root_ + project + "/", what, [](const Json&) { return true; });
    });
}

Result<std::vector<std::pair<std::string, Listed>>> ObjectStore::listAll() {
    using Out = std::vector<std::pair<std::string, Listed>>;
    return guarded<Out>("listing every project", [&]() -> Result<Out> {
        auto snapshot = kv_->range(root_);
        LM_TRY(snapshot);
        Out out;
        for (const auto& record : snapshot->records) {
            auto object = decode(record, "listing every project");
            LM_TRY(object);
            const std::string project = projectOf(record.key);
            if (out.empty() || out.back().first != project) {
                out.emplace_back(project, Listed{{}, snapshot->revision});
            }
            out.back().second.items.push_back(std::move(*object));
        }
        for (auto& [project, listed] : out) {
            sortForLists(listed.items);
        }
        return out;
    });
}

Result<std::vector<std::string>> ObjectStore::projects() {
    auto all = listAll();
    LM_TRY(all);
    std::vector<std::string> out;
    for (const auto& entry : *all) {
        out.push_back(entry.first);
    }
    return out;
}

Result<Json> ObjectStore::create(const std::string& project, Json object) {
    const std::string what = "creating object in project " + project;
    return guarded<Json>(what, [&]() -> Result<Json> {
        const ObjectKey key = keyOf(object);
        const std::string doing = "creating " + describe(project, key);
        auto k = keyFor(project, key);
        LM_TRY(k);
        ServerFields server;
        server.generation = 1;
        auto uid = newUid();
        LM_TRY(uid);
        server.uid = std::move(*uid);
        server.creationTimestamp = rfc3339(clock_());
        Json stored = buildObject(object, server, nullptr);
        // dump() throws on invalid UTF-8: guarded() turns that into Errc::Invalid.
        auto rev = kv_->write(*k, stored.dump(), 0);
        if (!rev) {
            if (rev.error().code() == Errc::Conflict) {
                return fail(Errc::AlreadyExists, doing);
            }
            return fail(std::move(rev).error());
        }
        stored["metadata"]["resourceVersion"] = std::to_string(*rev);
        return stored;
    });
}

Result<Json> ObjectStore::update(const std::string& project, Json object) {
    const std::string what = "updating object in project " + project;
    return guarded<Json>(what, [&]() -> Result<Json> {
        const ObjectKey key = keyOf(object);
        const std::string doing = "updating " + describe(project, key);
        auto k = keyFor(project, key);
        LM_TRY(k);
        auto requested = requestedVersion(object, doing);
        LM_TRY(requested);
        return retrying(doing, [&](bool& retry) -> Result<Json> {
            auto existing = readExisting(*k, doing);
            LM_TRY(existing);
            auto& [record, stored] = *existing;
            LM_TRY(staleUnless(*requested, record.modRevision, doing));
            auto status = stored.find("status");
            const Json* keptStatus = status != stored.end() ? &*status : nullptr;
            const ServerFields server = serverFieldsOf(stored);
            Json next = buildObject(object, server, keptStatus);
            next["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"];
            if (sameJson(next, stored)) {
                return std::move(stored);
            }
            if (!sameSpec(next, stored)) {
                next["metadata"]["generation"] = server.generation + 1;
            }
            next["metadata"]["resourceVersion"] = "";
            auto rev = kv_->write(*k, next.dump(), record.modRevision);
            if (!rev) {
                retry = !*requested;
                return fail(std::move(rev).error());
            }
            next["metadata"]["resourceVersion"] = std::to_string(*rev);
            return next;
        });
    });
}

Result<Json> ObjectStore::updateStatus(const std::string& project, const ObjectKey& key,
                                       Json status, std::optional<std::string> resourceVersion) {
    const std::string doing = "updating status of " + describe(project, key);
    return guarded<Json>(doing, [&]() -> Result<Json> {
        auto k = keyFor(project, key);
        LM_TRY(k);
        return retrying(doing, [&](bool& retry) -> Result<Json> {
            auto existing = readExisting(*k, doing);
            LM_TRY(existing);
            auto& [record, body] = *existing;
            LM_TRY(staleUnless(resourceVersion, record.modRevision, doing));
            auto current = body.find("status");
            // A null status clears it, so the reconciler can withdraw status it no longer owns.
            if (status.is_null()) {
                if (current == body.end()) {
                    return std::move(body);
                }
                body.erase("status");
            } else {
                if (current != body.end() && sameJson(*current, status)) {
                    return std::move(body);
                }
                body["status"] = status;  // in place when present, so the field order is kept
            }
            body["metadata"]["resourceVersion"] = "";
            auto rev = kv_->write(*k, body.dump(), record.modRevision);
            if (!rev) {
                retry = !resourceVersion;
                return fail(std::move(rev).error());
            }
            body["metadata"]["resourceVersion"] = std::to_string(*rev);
            return std::move(body);
        });
    });
}

Result<Json> ObjectStore::remove(const std::string& project, const ObjectKey& key,
                                 const Preconditions& preconditions) {
    const std::string doing = "deleting " + describe(project, key);
    return guarded<Json>(doing, [&]() -> Result<Json> {
        auto k = keyFor(project, key);
        LM_TRY(k);
        return retrying(doing, [&](bool& retry) -> Result<Json> {
            auto existing = readExisting(*k, doing);
            LM_TRY(existing);
            auto& [record, stored] = *existing;
            LM_TRY(staleUnless(preconditions.resourceVersion, record.modRevision, doing));
            const auto uid = stored["metadata"].value("uid", "");
            if (preconditions.uid && *preconditions.uid != uid) {
                return fail(Errc::Conflict, doing + ": uid " + *preconditions.uid +
                                                " does not match the stored object's " + uid);
            }
            auto rev = kv_->write(*k, std::nullopt, record.modRevision);
            if (!rev) {
                retry = !preconditions.uid && !preconditions.resourceVersion;
                return fail(std::move(rev).error());
            }
            return std::move(stored);
        });
    });
}

class ObjectWatch final : public StoreWatch {
public:
    ObjectWatch(const ObjectStore& store, std::unique_ptr<KvFeed> feed)
        : store_(store), feed_(std::move(feed)) {}

    Result<std::vector<StoreEvent>> next(std::chrono::milliseconds wait) override {
        auto changes = feed_->next(wait);
        LM_TRY(changes);
        std::vector<StoreEvent> out;
        for (const auto& change : *changes) {
            StoreEvent event;
            event.project = store_.projectOf(change.record.key);
            event.revision = change.record.modRevision;
            auto object = ObjectStore::decode(change.record, "watching the store");
            LM_TRY(object);
            event.object = std::move(*object);
            if (change.deleted) {
                event.type = StoreEvent::Type::Deleted;
            } else if (change.record.createRevision == change.record.modRevision) {
                event.type = StoreEvent::Type::Added;
            } else {
                event.type = StoreEvent::Type::Modified;
            }
            out.push_back(std::move(event));
        }
        return out;
    }
    void wake() override { feed_->wake(); }

private:
    const ObjectStore& store_;
    std::unique_ptr<KvFeed> feed_;
};

std::unique_ptr<StoreWatch> ObjectStore::watch(std::uint64_t fromRevision) {
    return std::make_unique<ObjectWatch>(*this, kv_->watch(root_, fromRevision));
}

}  // namespace

Result<std::string> objectPath(const std::string& project, const ObjectKey& key) {
    LM_TRY(checkSegment(project, "project"));
    LM_TRY(checkSegment(key.kind, "kind"));
    LM_TRY(checkSegment(key.ns, "namespace"));
    LM_TRY(checkSegment(key.name, "name"));
    return project + "/" + key.kind + "/" + key.ns + "/" + key.name;
}

KvBackend* backendOf(Store& store) {
    auto* objects = dynamic_cast<ObjectStore*>(&store);
    return objects != nullptr ? &objects->backend() : nullptr;
}

std::unique_ptr<Store> makeObjectStore(std::unique_ptr<KvBackend> backend, std::string prefix,
                                       Clock clock) {
    return std::make_unique<ObjectStore>(std::move(backend), std::move(prefix), std::move(clock));
}

}  // namespace lastmile::ctrl
