// SPDX-License-Identifier: Apache-2.0
// The etcd backend of Store: compare-and-swap writes as txns on mod_revision, watches with
// failover from the client, and writes of unknown outcome settled by reading again.
#include "ctrl/store/etcd_store.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctrl/store/kv.h"

namespace lastmile::ctrl {
namespace {

KvRecord toRecord(const etcd::KeyValue& kv) {
    return KvRecord{kv.key, kv.value, static_cast<std::uint64_t>(kv.modRevision),
                    static_cast<std::uint64_t>(kv.createRevision)};
}

class EtcdFeed final : public KvFeed {
public:
    EtcdFeed(std::unique_ptr<etcd::Watch> watch, std::uint64_t after)
        : watch_(std::move(watch)), after_(after) {}

    Result<std::vector<KvChange>> next(std::chrono::milliseconds wait) override {
        auto events = watch_->next(wait);
        if (!events) {
            return fail(storeError(events.error()));
        }
        std::vector<KvChange> out;
        for (const auto& event : *events) {
            // The watch starts at `after` itself (resuming at after + 1 can miss a delete at a
            // compacted revision), so the events of `after` are dropped here.
            if (static_cast<std::uint64_t>(event.kv.modRevision) <= after_) {
                continue;
            }
            KvChange change;
            change.deleted = event.type == etcd::Event::Type::Delete;
            change.record = toRecord(change.deleted ? event.prevKv : event.kv);
            change.record.key = event.kv.key;
            change.record.modRevision = static_cast<std::uint64_t>(event.kv.modRevision);
            out.push_back(std::move(change));
        }
        return out;
    }
    void wake() override { watch_->wake(); }

private:
    std::unique_ptr<etcd::Watch> watch_;
    const std::uint64_t after_;
};

class EtcdKv final : public KvBackend {
public:
    explicit EtcdKv(std::shared_ptr<etcd::Client> client) : client_(std::move(client)) {}

    Result<std::optional<KvRecord>> read(const std::string& key) override {
        auto found = client_->range(key, false);
        if (!found) {
            return fail(storeError(found.error()));
        }
        if (found->kvs.empty()) {
            return std::optional<KvRecord>();
        }
        return std::optional<KvRecord>(toRecord(found->kvs.front()));
    }

    Result<KvSnapshot> range(const std::string& prefix) override {
        auto found = client_->range(prefix, true);
        if (!found) {
            return fail(storeError(found.error()));
        }
        KvSnapshot out;
        out.revision = static_cast<std::uint64_t>(found->revision);
        for (const auto& kv : found->kvs) {
            out.records.push_back(toRecord(kv));
        }
        return out;
    }

    Result<std::uint64_t> write(const std::string& key, const std::optional<std::string>& value,
                                std::uint64_t expected) override {
        etcd::Compare compare{key, expected == 0 ? etcd::Compare::Target::Create
                                                 : etcd::Compare::Target::Mod,
                              static_cast<std::int64_t>(expected)};
        etcd::Op op{value ? etcd::Op::Kind::Put : etcd::Op::Kind::Delete, key, value.value_or(""), 0};
        auto done = client_->txn({compare}, {op}, {});
        if (done) {
            if (!done->succeeded) {
                return fail(Errc::Conflict, "writing " + key + ": it changed since revision " +
                                                std::to_string(expected));
            }
            return static_cast<std::uint64_t>(done->revision);
        }
        if (done.error().code() != etcd::EtcdErrc::OutcomeUnknown) {
            return fail(storeError(done.error()));
        }
        return settle(key, value, expected, done.error());
    }

    Result<std::uint64_t> revision() override {
        // A range of a key nobody writes: its header carries the store revision.
        auto found = client_->range(std::string(1, '\0'), false);
        if (!found) {
            return fail(storeError(found.error()));
        }
        return static_cast<std::uint64_t>(found->revision);
    }

    std::unique_ptr<KvFeed> watch(const std::string& prefix, std::uint64_t after) override {
        return std::make_unique<EtcdFeed>(
            client_->watch(prefix, static_cast<std::int64_t>(after)), after);
    }

private:
    // A write whose outcome etcd could not tell (a timeout without quorum) is never sent again
    // blindly: the key is read, and the write counts as applied only when the key moved past
    // `expected` to exactly what we wrote. Anything else is Unavailable and nothing is retried.
    Result<std::uint64_t> settle(const std::string& key, const std::optional<std::string>& value,
                                 std::uint64_t expected, const Error& unknown) {
        auto found = client_->range(key, false);
        if (!found) {
            return fail(Errc::Unavailable, "writing " + key + ": " + unknown.message() +
                                               ", and reading it back failed too: " +
                                               found.error().message());
        }
        const bool present = !found->kvs.empty();
        if (value && present && found->kvs.front().value == *value &&
            static_cast<std::uint64_t>(found->kvs.front().modRevision) > expected) {
            return static_cast<std::uint64_t>(found->kvs.front().modRevision);
        }
        if (!value && !present) {
            return static_cast<std::uint64_t>(found->revision);
        }
        return fail(Errc::Unavailable, "writing " + key + ": " + unknown.message() +
                                           " (read back: not applied)");
    }

    std::shared_ptr<etcd::Client> client_;
};

}  // namespace

Error storeError(const Error& etcdError) {
    const auto& code = etcdError.code();
    if (code == etcd::EtcdErrc::Compacted) {
        return Error(make_error_code(Errc::Gone), etcdError.message());
    }
    if (code == etcd::EtcdErrc::Unreachable || code == etcd::EtcdErrc::NoLeader ||
        code == etcd::EtcdErrc::OutcomeUnknown) {
        return Error(make_error_code(Errc::Unavailable), "the store: " + etcdError.message());
    }
    if (code == etcd::EtcdErrc::Rejected) {
        return Error(make_error_code(Errc::Unavailable),
                     "the store refused the request (check store: settings): " +
                         etcdError.message());
    }
    return Error(make_error_code(Errc::Internal), "the store: " + etcdError.message());
}

Result<EtcdStore> openEtcdStore(const EtcdStoreConfig& config, Clock clock) {
    auto client = etcd::Client::open(config.client);
    LM_TRY(client);
    std::shared_ptr<etcd::Client> shared(std::move(*client));
    EtcdStore out;
    out.store = makeObjectStore(std::make_unique<EtcdKv>(shared), config.prefix, std::move(clock));
    out.client = std::move(shared);
    return out;
}

}  // namespace lastmile::ctrl
