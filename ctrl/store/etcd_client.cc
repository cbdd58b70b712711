// SPDX-License-Identifier: Apache-2.0
// etcd v3 JSON-gateway client: unary calls over pooled libcurl handles with endpoint failover,
// and watches driven by a curl multi handle. Behaviour of etcd 3.4 it relies on is measured in
// proto-etcd/REPORT.md (the section numbers below refer to it).
#include "ctrl/store/etcd_client.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "ctrl/api/base64.h"

namespace lastmile::ctrl::etcd {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

class EtcdCategory : public std::error_category {
public:
    const char* name() const noexcept override { return "etcd"; }
    std::string message(int c) const override {
        switch (static_cast<EtcdErrc>(c)) {
            case EtcdErrc::Unreachable:
                return "no etcd endpoint answered";
            case EtcdErrc::NoLeader:
                return "etcd has no leader";
            case EtcdErrc::OutcomeUnknown:
                return "etcd write outcome unknown";
            case EtcdErrc::Compacted:
                return "revision compacted";
            case EtcdErrc::FutureRevision:
                return "revision not reached yet";
            case EtcdErrc::LeaseNotFound:
                return "lease not found";
            case EtcdErrc::Rejected:
                return "rejected by etcd";
            case EtcdErrc::BadResponse:
                return "unparsable etcd response";
        }
        return "etcd error";
    }
};

// A reply field we cannot use; turned into EtcdErrc::BadResponse at the call's boundary.
struct BadJson : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void initCurlOnce() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The gateway writes int64 as strings (lease ids exceed 2^53) and omits zero values (§0.4).
std::int64_t int64Field(const json& j, const char* name) {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
        return 0;
    }
    if (it->is_number_integer()) {
        return it->get<std::int64_t>();
    }
    if (it->is_string()) {
        const auto& s = it->get_ref<const std::string&>();
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc() && end == s.data() + s.size()) {
            return v;
        }
    }
    throw BadJson(std::string("field ") + name + " is not an integer");
}

std::int64_t headerRevision(const json& j) {
    const auto h = j.find("header");
    return h == j.end() ? 0 : int64Field(*h, "revision");
}

std::string bytesField(const json& j, const char* name) {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
        return {};
    }
    if (!it->is_string()) {
        throw BadJson(std::string("field ") + name + " is not a string");
    }
    auto decoded = base64Decode(it->get_ref<const std::string&>());
    if (!decoded) {
        throw BadJson(std::string("field ") + name + " is not base64");
    }
    return std::move(*decoded);
}

KeyValue parseKv(const json& j) {
    KeyValue kv;
    kv.key = bytesField(j, "key");
    kv.value = bytesField(j, "value");
    kv.createRevision = int64Field(j, "create_revision");
    kv.modRevision = int64Field(j, "mod_revision");
    kv.version = int64Field(j, "version");
    kv.lease = int64Field(j, "lease");
    return kv;
}

std::vector<KeyValue> parseKvs(const json& j, const char* name) {
    std::vector<KeyValue> out;
    const auto it = j.find(name);
    if (it != j.end() && it->is_array()) {
        for (const auto& kv : *it) {
            out.push_back(parseKv(kv));
        }
    }
    return out;
}

// The first key after every key that starts with `prefix` (etcd's range_end for a prefix).
std::string prefixEnd(std::string prefix) {
    while (!prefix.empty()) {
        if (static_cast<unsigned char>(prefix.back()) < 0xff) {
            prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0');  // every key
}

json opJson(const Op& op) {
    switch (op.kind) {
        case Op::Kind::Put: {
            json put = {{"key", base64Encode(op.key)}, {"value", base64Encode(op.value)}};
            if (op.lease != 0) {
                put["lease"] = std::to_string(op.lease);
            }
            return {{"request_put", put}};
        }
        case Op::Kind::Delete:
            return {{"request_delete_range", {{"key", base64Encode(op.key)}, {"prev_kv", true}}}};
        case Op::Kind::Range:
            break;
    }
    return {{"request_range", {{"key", base64Encode(op.key)}}}};
}

// etcd's error in either shape: unary {"error":"..","code":N} or stream
// {"error":{"grpc_code":N,"message":".."}}. nullopt when `j` is no error.
std::optional<std::pair<int, std::string>> errorOf(const json& j) {
    if (!j.is_object()) {
        return std::nullopt;
    }
    const auto e = j.find("error");
    if (e == j.end()) {
        return std::nullopt;
    }
    if (e->is_object()) {
        return std::pair{e->value("grpc_code", 0), e->value("message", std::string())};
    }
    return std::pair{j.value("code", 0),
                     e->is_string() ? e->get<std::string>()
                                    : e->dump(-1, ' ', false, json::error_handler_t::replace)};
}

// gRPC codes the gateway passes on.
constexpr int kGrpcUnknown = 2;
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcOutOfRange = 11;
constexpr int kGrpcUnavailable = 14;

// Only what a URL needs to name a member: scheme, host name or IP literal, port; no path, no
// user info, nothing libcurl would interpret further. (No std::regex: GCC 12 warns inside it
// under the sanitizers.)
bool validEndpoint(const std::string& url) {
    std::string_view rest(url);
    for (std::string_view scheme : {"http://", "https://"}) {
        if (rest.substr(0, scheme.size()) == scheme) {
            rest.remove_prefix(scheme.size());
            break;
        }
    }
    if (rest.size() == url.size()) {
        return false;
    }
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
        return false;
    }
    std::string_view host = rest.substr(0, colon);
    const std::string_view port = rest.substr(colon + 1);
    std::string_view allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        allowed = "0123456789abcdefABCDEF:.";
    } else if (host.empty() || host.front() == '.' || host.front() == '-') {
        return false;
    }
    if (host.empty() || host.size() > 253 || host.find_first_not_of(allowed) != host.npos) {
        return false;
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    return !port.empty() && port.size() <= 5 && port.front() != '+' && ec == std::errc() &&
           end == port.data() + port.size() && value > 0 && value < 65536;
}

bool isHttps(const std::string& url) { return url.rfind("https://", 0) == 0; }

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

// Options every request sets the same way, unary or watch.
void setCommonOptions(CURL* h, const ClientConfig& config, const std::string& url,
                      const curl_slist* headers, milliseconds connectTimeout) {
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    // h2c does not work on etcd's plaintext port and h2 over TLS is untested (§6).
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::max<milliseconds::rep>(1, connectTimeout.count())));
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    if (!config.tls.caFile.empty()) {
        curl_easy_setopt(h, CURLOPT_CAINFO, config.tls.caFile.c_str());
    }
    if (!config.tls.certFile.empty()) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, config.tls.certFile.c_str());
        curl_easy_setopt(h, CURLOPT_SSLKEY, config.tls.keyFile.c_str());
    }
}

struct SlistDeleter {
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

SlistPtr makeHeaders(bool requireLeader) {
    curl_slist* l = curl_slist_append(nullptr, "Content-Type: application/json");
    // A member without quorum then answers 503 "no leader" at once instead of after 6 s (§0.2).
    if (requireLeader) {
        l = curl_slist_append(l, "Grpc-Metadata-hasleader: true");
    }
    if (l == nullptr) {
        throw std::bad_alloc();
    }
    return SlistPtr(l);
}

struct EasyDeleter {
    void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;

}  // namespace

const std::error_category& etcdCategory() noexcept {
    static const EtcdCategory category;
    return category;
}

// ---------------------------------------------------------------------------------------------
// Unary calls

namespace {

// Write: never sent again once it may have reached a member (its outcome would be unknown).
// Read: safe to repeat on the next member.
enum class Kind { Read, Write };

// What one attempt on one endpoint means for the call.
enum class Next { Done, TryNext, Stop };

struct Attempt {
    Next next = Next::Stop;
    json body;                    // Done: the parsed reply
    std::optional<Error> error;   // TryNext / Stop
    bool noLeader = false;        // the member answered, but the cluster is electing
};

}  // namespace

struct Client::Impl {
    ClientConfig config;
    SlistPtr leaderHeaders = makeHeaders(true);
    SlistPtr plainHeaders = makeHeaders(false);
    std::atomic<std::size_t> preferred{0};
    // Set when a whole call's budget went on "no leader": the cluster has lost quorum, not
    // just its leader for an election. Calls then ask each member once and answer at once,
    // until one succeeds.
    std::atomic<bool> leaderless{false};

    std::mutex poolMutex;
    std::vector<EasyPtr> pool;  // idle handles; each keeps its connections open

    // A handle of the pool for one call; back to the pool when the call ends.
    class Borrowed {
    public:
        explicit Borrowed(Impl& owner) : owner_(owner) {
            std::lock_guard lock(owner_.poolMutex);
            if (!owner_.pool.empty()) {
                h_ = std::move(owner_.pool.back());
                owner_.pool.pop_back();
            }
        }
        ~Borrowed() {
            std::lock_guard lock(owner_.poolMutex);
            owner_.pool.push_back(std::move(h_));
        }
        Borrowed(const Borrowed&) = delete;
        Borrowed& operator=(const Borrowed&) = delete;
        CURL* get() {
            if (!h_) {
                h_.reset(curl_easy_init());
                if (!h_) {
                    throw std::bad_alloc();
                }
            }
            return h_.get();
        }

    private:
        Impl& owner_;
        EasyPtr h_;
    };

    Attempt attempt(CURL* h, const std::string& endpoint, const std::string& path,
                    const std::string& body, Kind kind, bool requireLeader,
                    milliseconds remaining, const std::string& what);
    Result<json> call(const std::string& path, const json& request, Kind kind,
                      bool requireLeader, const std::string& what);
};

Attempt Client::Impl::attempt(CURL* h, const std::string& endpoint, const std::string& path,
                              const std::string& body, Kind kind, bool requireLeader,
                              milliseconds remaining, const std::string& what) {
    std::string reply;
    char errbuf[CURL_ERROR_SIZE] = {};
    setCommonOptions(h, config, endpoint + path,
                     requireLeader ? leaderHeaders.get() : plainHeaders.get(),
                     std::min(config.connectTimeout, remaining));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<milliseconds::rep>(
                                                 1, remaining.count())));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    const CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    long status = 0;
    long requestSize = 0;
    long connects = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &requestSize);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);

    const std::string where = " via " + endpoint + ": ";
    auto result = [&](Next next, EtcdErrc code, const std::string& text) {
        Attempt a;
        a.next = next;
        a.noLeader = code == EtcdErrc::NoLeader;
        a.error = Error(make_error_code(code), what + where + text);
        return a;
    };

    if (rc != CURLE_OK) {
        const std::string text = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
        switch (rc) {
            case CURLE_SSL_CONNECT_ERROR:
            case CURLE_PEER_FAILED_VERIFICATION:
            case CURLE_SSL_CERTPROBLEM:
            case CURLE_SSL_CACERT_BADFILE:
            case CURLE_SSL_CIPHER:
            case CURLE_SSL_ISSUER_ERROR:
                return result(Next::Stop, EtcdErrc::Rejected, text);
            case CURLE_COULDNT_CONNECT:
            case CURLE_COULDNT_RESOLVE_HOST:
                return result(Next::TryNext, EtcdErrc::Unreachable, text);
            default:
                break;
        }
        // TLS 1.3 finishes the handshake before the member checks our certificate, so a
        // refused certificate shows up as a failed send or read on the connection just made
        // (§5). A member that dies in that instant looks the same; the caller then sees a
        // configuration error once, which beats failing over forever on a real one.
        if (isHttps(endpoint) && connects > 0 && reply.empty() && status == 0 &&
            (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR)) {
            return result(Next::Stop, EtcdErrc::Rejected, text);
        }
        if (requestSize == 0) {  // nothing reached the member: a connect timeout or a reset
            return result(Next::TryNext, EtcdErrc::Unreachable, text);
        }
        if (kind == Kind::Write) {
            return result(Next::Stop, EtcdErrc::OutcomeUnknown, text);
        }
        return result(Next::TryNext, EtcdErrc::Unreachable, text);
    }

    json j = json::parse(reply, nullptr, false);
    if (j.is_discarded() && status == 200) {
        return result(Next::Stop, EtcdErrc::BadResponse, "a reply that is not JSON");
    }
    const auto err = errorOf(j);
    if (status == 200 && !err) {
        Attempt a;
        a.next = Next::Done;
        a.body = std::move(j);
        return a;
    }
    const int code = err ? err->first : 0;
    const std::string text = err ? err->second : "HTTP " + std::to_string(status);
    if (text.find("no leader") != std::string::npos) {
        return result(Next::TryNext, EtcdErrc::NoLeader, text);
    }
    if (code == kGrpcOutOfRange) {
        return result(Next::Stop,
                      text.find("future") != std::string::npos ? EtcdErrc::FutureRevision
                                                               : EtcdErrc::Compacted,
                      text);
    }
    if (code == kGrpcNotFound && text.find("lease") != std::string::npos) {
        return result(Next::Stop, EtcdErrc::LeaseNotFound, text);
    }
    // "request timed out" (503/14) and "context deadline exceeded" (500/2), and any other
    // server-side failure: the member may have proposed the write (§4.1).
    if (code == kGrpcUnavailable || code == kGrpcUnknown || status >= 500) {
        return kind == Kind::Write ? result(Next::Stop, EtcdErrc::OutcomeUnknown, text)
                                   : result(Next::TryNext, EtcdErrc::Unreachable, text);
    }
    return result(Next::Stop, EtcdErrc::Rejected, text);
}

Result<json> Client::Impl::call(const std::string& path, const json& request, Kind kind,
                                bool requireLeader, const std::string& what) {
    const auto deadline = Clock::now() + config.requestTimeout;
    const std::string body = request.dump();
    const std::size_t n = config.endpoints.size();
    Borrowed h(*this);
    std::optional<Error> last;
    std::optional<Error> noLeader;  // says more than a refusal from a dead member
    // While members answer "no leader" the cluster is electing (about 0.6 s after a leader
    // dies): go round again within the budget. Refusals from all of them end the call at once.
    milliseconds pause(25);
    for (;;) {
        const std::size_t start = preferred.load(std::memory_order_relaxed);
        bool electing = false;
        for (std::size_t k = 0; k < n; ++k) {
            const auto remaining =
                std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
            if (remaining.count() <= 0) {
                break;
            }
            const std::size_t i = (start + k) % n;
            Attempt a;
            try {
                a = attempt(h.get(), config.endpoints[i], path, body, kind, requireLeader,
                            remaining, what);
            } catch (const nlohmann::json::exception& e) {  // an error reply of odd shape
                return fail(EtcdErrc::BadResponse, what + " via " + config.endpoints[i] + ": " +
                                                       e.what());
            }
            if (a.next == Next::Done) {
                preferred.store(i, std::memory_order_relaxed);
                leaderless.store(false, std::memory_order_relaxed);
                return std::move(a.body);
            }
            if (a.noLeader) {
                electing = true;
                noLeader = a.error;
            }
            last = std::move(a.error);
            if (a.next == Next::Stop) {
                return fail(std::move(*last));
            }
        }
        const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
        if (!electing || remaining <= pause || leaderless.load(std::memory_order_relaxed)) {
            break;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, milliseconds(200));
    }
    if (noLeader) {
        if (Clock::now() >= deadline - pause) {
            leaderless.store(true, std::memory_order_relaxed);
        }
        return fail(std::move(*noLeader));
    }
    if (!last) {
        return fail(EtcdErrc::Unreachable, what + ": no time left within " +
                                               std::to_string(config.requestTimeout.count()) +
                                               " ms");
    }
    return fail(std::move(*last));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::open(ClientConfig config) {
    if (config.endpoints.empty()) {
        return fail(Errc::Invalid, "etcd client: no endpoints");
    }
    for (const auto& e : config.endpoints) {
        if (!validEndpoint(e)) {
            return fail(Errc::Invalid,
                        "etcd client: endpoint \"" + e + "\" is not http(s)://host:port");
        }
    }
    if (config.tls.certFile.empty() != config.tls.keyFile.empty()) {
        return fail(Errc::Invalid, "etcd client: certFile and keyFile go together");
    }
    for (const std::string* f : {&config.tls.caFile, &config.tls.certFile, &config.tls.keyFile}) {
        if (!f->empty() && ::access(f->c_str(), R_OK) != 0) {
            return fail(Errc::Invalid, "etcd client: cannot read " + *f);
        }
    }
    if (config.requestTimeout.count() <= 0 || config.connectTimeout.count() <= 0) {
        return fail(Errc::Invalid, "etcd client: timeouts must be positive");
    }
    initCurlOnce();
    auto impl = std::make_unique<Impl>();
    impl->config = std::move(config);
    return std::unique_ptr<Client>(new Client(std::move(impl)));
}

std::string Client::currentEndpoint() const {
    return impl_->config.endpoints[impl_->preferred.load(std::memory_order_relaxed)];
}

namespace {

// Runs `parse` on a reply; a field we cannot use becomes BadResponse instead of an exception.
template <typename T, typename F>
Result<T> parseReply(const Result<json>& reply, const std::string& what, F&& parse) {
    if (!reply) {
        return fail(reply.error());
    }
    try {
        return parse(*reply);
    } catch (const std::exception& e) {
        return fail(EtcdErrc::BadResponse, what + ": " + e.what());
    }
}

json rangeRequest(const std::string& key, bool prefix, bool serializable) {
    json r = {{"key", base64Encode(key)}};
    if (prefix) {
        r["range_end"] = base64Encode(prefixEnd(key));
    }
    if (serializable) {
        r["serializable"] = true;
    }
    return r;
}

RangeResult parseRange(const json& j) {
    RangeResult r;
    r.kvs = parseKvs(j, "kvs");
    r.revision = headerRevision(j);
    return r;
}

}  // namespace

Result<RangeResult> Client::range(const std::string& key, bool prefix) {
    const std::string what = "etcd range " + key;
    return parseReply<RangeResult>(
        impl_->call("/v3/kv/range", rangeRequest(key, prefix, false), Kind::Read, true, what),
        what, parseRange);
}

Result<RangeResult> Client::rangeSerializable(const std::string& key, bool prefix) {
    // Without the hasleader header: the point is to answer while there is no leader (§0.2).
    const std::string what = "etcd serializable range " + key;
    return parseReply<RangeResult>(
        impl_->call("/v3/kv/range", rangeRequest(key, prefix, true), Kind::Read, false, what),
        what, parseRange);
}

Result<TxnResult> Client::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                              const std::vector<Op>& failure) {
    json request = {{"compare", json::array()}, {"success", json::array()},
                    {"failure", json::array()}};
    for (const auto& c : compares) {
        const bool create = c.target == Compare::Target::Create;
        request["compare"].push_back({{"key", base64Encode(c.key)},
                                      {"target", create ? "CREATE" : "MOD"},
                                      {"result", "EQUAL"},
                                      {create ? "create_revision" : "mod_revision",
                                       std::to_string(c.revision)}});
    }
    bool writes = false;
    for (const auto& [ops, name] :
         {std::pair{&success, "success"}, std::pair{&failure, "failure"}}) {
        for (const auto& op : *ops) {
            request[name].push_back(opJson(op));
            writes = writes || op.kind != Op::Kind::Range;
        }
    }
    const std::string what =
        "etcd txn on " + (compares.empty() ? (success.empty() ? std::string("nothing")
                                                               : success.front().key)
                                           : compares.front().key);
    return parseReply<TxnResult>(
        impl_->call("/v3/kv/txn", request, writes ? Kind::Write : Kind::Read, true, what), what,
        [](const json& j) {
            TxnResult t;
            t.succeeded = j.value("succeeded", false);  // omitted when false (§3.3)
            t.revision = headerRevision(j);
            if (const auto rs = j.find("responses"); rs != j.end() && rs->is_array()) {
                for (const auto& r : *rs) {
                    OpResult o;
                    if (const auto range = r.find("response_range"); range != r.end()) {
                        o.kvs = parseKvs(*range, "kvs");
                    } else if (const auto del = r.find("response_delete_range"); del != r.end()) {
                        o.kvs = parseKvs(*del, "prev_kvs");
                    }
                    t.results.push_back(std::move(o));
                }
            }
            return t;
        });
}

Result<std::int64_t> Client::put(const std::string& key, const std::string& value,
                                 std::int64_t lease) {
    json request = {{"key", base64Encode(key)}, {"value", base64Encode(value)}};
    if (lease != 0) {
        request["lease"] = std::to_string(lease);
    }
    const std::string what = "etcd put " + key;
    return parseReply<std::int64_t>(
        impl_->call("/v3/kv/put", request, Kind::Write, true, what), what, headerRevision);
}

Result<std::int64_t> Client::remove(const std::string& key) {
    const std::string what = "etcd delete " + key;
    return parseReply<std::int64_t>(
        impl_->call("/v3/kv/deleterange", {{"key", base64Encode(key)}}, Kind::Write, true, what),
        what, headerRevision);
}

Result<std::int64_t> Client::grantLease(std::chrono::seconds ttl) {
    const std::string what = "etcd lease grant";
    return parseReply<std::int64_t>(
        impl_->call("/v3/lease/grant", {{"TTL", std::to_string(ttl.count())}}, Kind::Write, true,
                    what),
        what, [](const json& j) {  // its "error" field, if set, made call() fail already
            const std::int64_t id = int64Field(j, "ID");
            if (id == 0) {
                throw BadJson("no lease ID");
            }
            return id;
        });
}

Result<std::chrono::seconds> Client::keepAlive(std::int64_t lease) {
    // One POST is one keepalive (§3.7); repeating it is harmless, so it may go to the next member.
    const std::string what = "etcd keepalive of lease " + std::to_string(lease);
    auto reply = impl_->call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}, Kind::Read,
                             true, what);
    auto ttl = parseReply<std::int64_t>(reply, what, [](const json& j) {
        const auto r = j.find("result");
        if (r == j.end() || !r->is_object()) {
            throw BadJson("no result");
        }
        return int64Field(*r, "TTL");
    });
    if (!ttl) {
        return fail(std::move(ttl).error());
    }
    // An expired or revoked lease is a 200 without TTL, not an error (§3.7).
    if (*ttl <= 0) {
        return fail(EtcdErrc::LeaseNotFound, what + ": the lease is gone");
    }
    return std::chrono::seconds(*ttl);
}

Status Client::revokeLease(std::int64_t lease) {
    const std::string what = "etcd revoke of lease " + std::to_string(lease);
    auto reply =
        impl_->call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, Kind::Write, true, what);
    if (!reply) {
        return fail(std::move(reply).error());
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Watches

namespace {

struct MultiDeleter {
    void operator()(CURLM* m) const noexcept { curl_multi_cleanup(m); }
};
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;

constexpr milliseconds kFirstBackoff(50);
constexpr milliseconds kMaxBackoff(1000);

}  // namespace

struct Watch::Impl {
    ClientConfig config;
    std::string prefix;
    std::size_t endpoint = 0;
    SlistPtr headers = makeHeaders(true);  // a member that loses quorum ends the stream (§4.1)
    MultiPtr multi{curl_multi_init()};
    EasyPtr easy;  // the open stream, if any
    std::string buffer;
    // The next stream starts at `resume`, the last revision delivered (not +1: a delete at a
    // revision compacted exactly would be lost silently, §3.6), and drops events at or below
    // `floor`, which it has already delivered.
    std::int64_t resume = 0;
    std::int64_t floor = 0;
    std::vector<Event> pending;
    std::optional<Error> compacted;
    milliseconds backoff = kFirstBackoff;
    Clock::time_point nextOpen{};
    std::atomic<bool> created{false};
    std::atomic<bool> woken{false};

    ~Impl() { close(); }

    void open() {
        json create = {{"key", base64Encode(prefix)},
                       {"range_end", base64Encode(prefixEnd(prefix))},
                       {"prev_kv", true}};
        if (resume > 0) {
            create["start_revision"] = std::to_string(resume);
        }
        easy.reset(curl_easy_init());
        if (!easy) {
            throw std::bad_alloc();
        }
        CURL* h = easy.get();
        setCommonOptions(h, config, config.endpoints[endpoint] + "/v3/watch", headers.get(),
                         config.connectTimeout);
        const std::string body = json{{"create_request", create}}.dump();
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body.c_str());
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);  // a stream: any limit would cut it (§6)
        // A member host that vanishes without a reset would otherwise keep the stream silent.
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Impl::onData);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
        curl_multi_add_handle(multi.get(), h);
    }

    void close() {
        if (easy) {
            curl_multi_remove_handle(multi.get(), easy.get());
            easy.reset();
        }
        buffer.clear();
        created = false;
    }

    // Stream over (member gone, lost quorum, refused us): the next member, after a pause that
    // grows while attempts keep failing.
    void broken() {
        close();
        endpoint = (endpoint + 1) % config.endpoints.size();
        nextOpen = Clock::now() + backoff;
        backoff = std::min(backoff * 2, kMaxBackoff);
    }

    static std::size_t onData(char* data, std::size_t size, std::size_t n, void* self) {
        auto* w = static_cast<Impl*>(self);
        w->buffer.append(data, size * n);
        std::size_t start = 0;
        for (std::size_t nl; (nl = w->buffer.find('\n', start)) != std::string::npos;
             start = nl + 1) {
            if (!w->handleLine(std::string_view(w->buffer).substr(start, nl - start))) {
                return 0;  // aborts the transfer
            }
        }
        w->buffer.erase(0, start);
        return size * n;
    }

    // False when the stream must end (cancelled or unusable).
    bool handleLine(std::string_view line) {
        if (line.find_first_not_of(" \r\t") == std::string_view::npos) {
            return true;
        }
        const json j = json::parse(line, nullptr, false);
        const auto r = j.is_object() ? j.find("result") : j.end();
        if (r == j.end() || !r->is_object()) {
            return false;  // an error object ends the stream (etcd closes it right after)
        }
        try {
            if (r->value("canceled", false)) {
                if (const std::int64_t c = int64Field(*r, "compact_revision"); c > 0) {
                    compacted = Error(make_error_code(EtcdErrc::Compacted),
                                      "etcd watch of " + prefix + " from revision " +
                                          std::to_string(resume) + " via " +
                                          config.endpoints[endpoint] +
                                          ": compacted up to revision " + std::to_string(c));
                }
                return false;  // etcd keeps the stream open after a cancel (§3.5)
            }
            if (r->value("created", false)) {
                created = true;
                backoff = kFirstBackoff;
                if (resume == 0) {  // "from now": later events are after this revision
                    resume = floor = headerRevision(*r);
                }
            }
            std::int64_t last = floor;
            if (const auto events = r->find("events"); events != r->end() && events->is_array()) {
                for (const auto& e : *events) {
                    Event ev;
                    ev.type = e.value("type", std::string()) == "DELETE" ? Event::Type::Delete
                                                                        : Event::Type::Put;
                    ev.kv = parseKv(e.at("kv"));
                    if (const auto p = e.find("prev_kv"); p != e.end()) {
                        ev.prevKv = parseKv(*p);
                    }
                    // A resumed stream repeats the revision it starts at; a txn's events share
                    // one revision and always come in one message.
                    if (ev.kv.modRevision <= floor) {
                        continue;
                    }
                    last = std::max(last, ev.kv.modRevision);
                    pending.push_back(std::move(ev));
                }
            }
            // Only a delivery moves the resume point: a stream that broke before delivering
            // anything starts again where it was asked to (floor may be 0, "from now").
            if (last > floor) {
                floor = resume = last;
            }
        } catch (const std::exception&) {
            return false;
        }
        return true;
    }

    // Reads what the transfer delivered and notices its end.
    void drive() {
        int running = 0;
        curl_multi_perform(multi.get(), &running);
        int queued = 0;
        while (CURLMsg* m = curl_multi_info_read(multi.get(), &queued)) {
            if (m->msg != CURLMSG_DONE || !easy || m->easy_handle != easy.get()) {
                continue;
            }
            if (!buffer.empty() && !compacted) {
                handleLine(buffer);  // the final object of an ended stream has no newline
            }
            if (compacted) {
                close();
            } else {
                broken();
            }
        }
    }
};

std::unique_ptr<Watch> Client::watch(const std::string& prefix, std::int64_t fromRevision) {
    auto w = std::make_unique<Watch::Impl>();
    if (!w->multi) {
        throw std::bad_alloc();
    }
    w->config = impl_->config;
    w->prefix = prefix;
    w->endpoint = impl_->preferred.load(std::memory_order_relaxed);
    if (fromRevision > 0) {
        w->resume = fromRevision;
        w->floor = fromRevision - 1;
    }
    return std::unique_ptr<Watch>(new Watch(std::move(w)));
}

Watch::Watch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Watch::~Watch() = default;

bool Watch::connected() const { return impl_->created.load(); }

void Watch::wake() {
    impl_->woken = true;
    curl_multi_wakeup(impl_->multi.get());
}

Result<std::vector<Event>> Watch::next(milliseconds wait) {
    Impl& w = *impl_;
    const auto deadline = Clock::now() + wait;
    for (;;) {
        if (!w.compacted && !w.easy && Clock::now() >= w.nextOpen) {
            w.open();
        }
        if (w.easy) {
            w.drive();
        }
        if (w.compacted) {
            return fail(*w.compacted);
        }
        if (!w.pending.empty()) {
            return std::exchange(w.pending, {});
        }
        const auto now = Clock::now();
        if (w.woken.exchange(false) || now >= deadline) {
            return std::vector<Event>{};
        }
        auto until = w.easy ? deadline : std::min(deadline, w.nextOpen);
        const auto left = std::chrono::ceil<milliseconds>(until - now);
        curl_multi_poll(w.multi.get(), nullptr, 0, static_cast<int>(std::max<milliseconds::rep>(
                                                        0, left.count())),
                        nullptr);
    }
}

}  // namespace lastmile::ctrl::etcd
