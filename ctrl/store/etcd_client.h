// SPDX-License-Identifier: Apache-2.0
// etcd v3 client over the JSON gateway (libcurl + nlohmann-json): range, txn, leases, watches,
// with endpoint failover.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "base/result.h"

namespace lastmile::ctrl::etcd {

// Why a call failed. Each error's context says which endpoint and what etcd answered.
enum class EtcdErrc {
    Unreachable = 1,  // no endpoint answered (refused, reset, connect timeout): not applied
    NoLeader,         // etcd answered "no leader" (hasleader header): not applied
    OutcomeUnknown,   // a write timed out or etcd said "request timed out" / "context deadline
                      // exceeded": it may or may not have been applied; re-read, never retry
    Compacted,        // the revision asked for was compacted away (range or watch): relist
    FutureRevision,   // the revision asked for is newer than the store's
    LeaseNotFound,    // the lease expired or was revoked
    Rejected,         // any other 4xx (bad request, TLS refused by etcd): a configuration error
    BadResponse,      // a reply we could not parse
};
const std::error_category& etcdCategory() noexcept;
inline std::error_code make_error_code(EtcdErrc e) noexcept {
    return {static_cast<int>(e), etcdCategory()};
}

struct TlsFiles {
    std::string caFile;    // empty: the system trust store
    std::string certFile;  // client certificate (with keyFile), empty: none
    std::string keyFile;
};

struct ClientConfig {
    // "http://127.0.0.1:2379" or "https://host:port", tried in order; the one that answered
    // last is tried first next time.
    std::vector<std::string> endpoints;
    TlsFiles tls;
    // Bound on one unary call, failover included: well under etcd's own 5 s + 2 x election
    // timeout, so a caller never waits long on a store without quorum. While members answer
    // "no leader" (an election, about 0.6 s after a leader dies) a call keeps retrying within
    // this bound, so without quorum it fails with NoLeader only when the bound is used up.
    // After a leader dies, the write in flight typically fails OutcomeUnknown at this bound.
    std::chrono::milliseconds requestTimeout{2000};
    std::chrono::milliseconds connectTimeout{300};
};

struct KeyValue {
    std::string key;    // raw bytes (decoded from base64)
    std::string value;  // raw bytes
    std::int64_t createRevision = 0;
    std::int64_t modRevision = 0;
    std::int64_t version = 0;
    std::int64_t lease = 0;
};

struct RangeResult {
    std::vector<KeyValue> kvs;  // sorted by key
    std::int64_t revision = 0;  // header revision: the store revision the read saw
};

// One compare of a txn; all compare with EQUAL.
struct Compare {
    enum class Target { Create, Mod };  // create_revision / mod_revision
    std::string key;
    Target target = Target::Mod;
    std::int64_t revision = 0;  // Create with 0: "the key does not exist"
};

struct Op {
    enum class Kind { Put, Delete, Range };
    Kind kind = Kind::Range;
    std::string key;
    std::string value;       // Put
    std::int64_t lease = 0;  // Put: attach to this lease (0: none)
};

struct OpResult {
    std::vector<KeyValue> kvs;  // Range: what was found; Delete: the deleted keys (prev_kv)
};

struct TxnResult {
    bool succeeded = false;
    std::int64_t revision = 0;  // header revision after the txn
    std::vector<OpResult> results;  // one per op of the branch that ran
};

struct Event {
    enum class Type { Put, Delete };
    Type type = Type::Put;
    KeyValue kv;      // Delete: key and modRevision only
    KeyValue prevKv;  // the value before (prev_kv requested); empty when the key was new
};

class Watch;

// Thread-safe: unary calls from any thread share a small pool of kept-open connections.
class Client {
public:
    // Errc::Invalid when an endpoint is not an http(s)://host:port URL or TLS files are unreadable.
    static Result<std::unique_ptr<Client>> open(ClientConfig config);
    ~Client();

    // Linearizable read of `key`, or of every key starting with `key` when `prefix`.
    Result<RangeResult> range(const std::string& key, bool prefix);
    // Like range(), answered from the member's local copy: works without quorum, may be stale.
    Result<RangeResult> rangeSerializable(const std::string& key, bool prefix);
    Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                          const std::vector<Op>& failure);
    // Plain put/delete (no compare): helpers over txn or kv/put, kv/deleterange.
    Result<std::int64_t> put(const std::string& key, const std::string& value,
                             std::int64_t lease = 0);
    Result<std::int64_t> remove(const std::string& key);

    Result<std::int64_t> grantLease(std::chrono::seconds ttl);  // the lease id
    // One keepalive; returns the TTL left. EtcdErrc::LeaseNotFound when the lease is gone.
    Result<std::chrono::seconds> keepAlive(std::int64_t lease);
    Status revokeLease(std::int64_t lease);

    // Watches every key starting with `prefix`, from `fromRevision` inclusive (see Watch).
    std::unique_ptr<Watch> watch(const std::string& prefix, std::int64_t fromRevision);

    // For describe and logs: the endpoint that answered last.
    std::string currentEndpoint() const;

private:
    struct Impl;
    explicit Client(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// A watch that survives member failures: when its stream breaks (member killed, member lost
// its leader) it reopens on the next endpoint from the last revision it delivered, dropping
// events it already delivered (etcd may resend that revision), so callers see every event once
// and in order. Only Compacted ends it: the caller relists.
class Watch {
public:
    ~Watch();  // closes the stream
    // Waits up to `wait` for events: returns them (possibly none), or EtcdErrc::Compacted.
    // While no member can serve the watch it keeps retrying and returns no events.
    Result<std::vector<Event>> next(std::chrono::milliseconds wait);
    // From another thread: makes a next() in progress return at once (empty).
    void wake();
    // True while a stream is open and created.
    bool connected() const;

private:
    friend class Client;
    struct Impl;
    explicit Watch(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace lastmile::ctrl::etcd

template <>
struct std::is_error_code_enum<lastmile::ctrl::etcd::EtcdErrc> : std::true_type {};
