// SPDX-License-Identifier: Apache-2.0
// Dataplane counters: kept per worker (written by its thread only), summed for metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/route/plan.h"
#include "dataplane/tls/profile_spec.h"
#include "dataplane/worker/interceptor.h"

namespace lastmile::dataplane {

// X(field, metric name, help). Names are an API the dashboards depend on.
#define LM_DATAPLANE_COUNTERS(X)                                                                  \
    X(accepted, "lastmile_connections_accepted_total", "client connections accepted")           \
    X(bytesToBackend, "lastmile_backend_sent_bytes_total",                                       \
      "plaintext bytes from clients forwarded to backends")                                      \
    X(bytesToClient, "lastmile_client_sent_bytes_total",                                         \
      "plaintext bytes from backends forwarded to clients")                                      \
    X(handshakesFull, "lastmile_handshakes_full_total", "backend TLS handshakes done in full")   \
    X(handshakesResumed, "lastmile_handshakes_resumed_total",                                    \
      "backend TLS handshakes that resumed a session")                                           \
    X(plainBackend, "lastmile_plain_backend_connections_total",                                  \
      "connections to backends no BackendTLSPolicy covers, forwarded without TLS")               \
    X(warmPoolHits, "lastmile_warm_pool_hits_total",                                             \
      "client connections given an already handshaken backend connection")                      \
    X(warmPoolMisses, "lastmile_warm_pool_misses_total",                                         \
      "client connections of a warm-pool backend that found the pool empty")                     \
    X(warmPoolDiscarded, "lastmile_warm_pool_discarded_total",                                   \
      "pooled backend connections closed before use (backend closed, policy changed)")           \
    X(endpointRetries, "lastmile_endpoint_retries_total",                                        \
      "connects retried on another endpoint after one refused or timed out")                     \
    X(truncatedByBackend, "lastmile_backend_truncations_total",                                  \
      "backend TLS streams that ended without close_notify")                                     \
    X(ticketCollectors, "lastmile_ticket_collecting_sessions_total",                             \
      "TLS 1.3 sessions kept on the openssl engine to receive the tickets later ones resume")   \
    X(userspaceBytes, "lastmile_userspace_bytes_total",                                          \
      "bytes copied between sockets and the workers' buffers (splice moves bytes without)")

// Why a connection was refused or cut; one counter each (lastmile_failures_total{reason}),
// and what an HTTP listener's error answer says of it when errorDetail is `reason`: the
// class of the failure, never an address, a certificate name or an object name.
#define LM_FAILURE_REASONS(X)                                                                     \
    X(FailClosed, "fail_closed", "the backend's TLS policy cannot be honoured")                 \
    X(NoBackend, "no_backend", "no backend endpoint is available")                              \
    X(ConnectFailed, "connect_failed", "no backend endpoint accepted the connection")           \
    X(NotPermitted, "backend_not_permitted", "no backend endpoint may be dialled")              \
    X(VerifyFailed, "verify_failed", "the backend's certificate was rejected")                  \
    X(HandshakeFailed, "handshake_failed", "the TLS handshake with the backend failed")          \
    X(HandshakeTimeout, "handshake_timeout", "the TLS handshake with the backend timed out")    \
    X(ConnectionLimit, "connection_limit", "too many connections")                              \
    X(BackendConnectionLimit, "backend_connection_limit", "too many backend connections")       \
    X(IdleTimeout, "idle_timeout", "the connection was idle too long")                          \
    X(StreamError, "stream_error", "the stream to the backend failed")                          \
    X(Truncated, "truncated", "the backend's TLS stream ended without close_notify")            \
    X(Stalled, "stalled", "the connection stopped moving bytes")

enum class Failure {
#define LM_ENUM(name, label, summary) name,
    LM_FAILURE_REASONS(LM_ENUM)
#undef LM_ENUM
};
constexpr std::size_t kFailureCount = 0
#define LM_COUNT(name, label, summary) +1
    LM_FAILURE_REASONS(LM_COUNT)
#undef LM_COUNT
    ;

struct FailureText {
    std::string_view label;    // the metric label
    std::string_view summary;  // what an error answer says by default
};

constexpr FailureText failureText(Failure f) {
    constexpr FailureText texts[] = {
#define LM_TEXT(name, label, summary) {label, summary},
        LM_FAILURE_REASONS(LM_TEXT)
#undef LM_TEXT
    };
    return texts[static_cast<std::size_t>(f)];
}

constexpr std::string_view failureLabel(Failure f) { return failureText(f).label; }

// Upper bounds of the handshake duration histogram, in seconds.
inline constexpr std::array<double, 12> kHandshakeBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0};

// Relaxed atomics throughout: one writer (the worker thread), readers only sum.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct Histogram {
    std::array<std::atomic<std::uint64_t>, kHandshakeBuckets.size() + 1> buckets{};  // last: +Inf
    std::atomic<std::uint64_t> sumMicros{0};
    std::atomic<std::uint64_t> count{0};

    void observe(double seconds) {
        std::size_t i = 0;
        while (i < kHandshakeBuckets.size() && seconds > kHandshakeBuckets[i]) {
            ++i;
        }
        bump(buckets[i]);
        bump(sumMicros, static_cast<std::uint64_t>(seconds * 1e6));
        bump(count);
    }
};

// One backend Service port of one project.
struct ServiceKey {
    std::string project;
    tls::BackendKey backend;

    auto operator<=>(const ServiceKey&) const = default;
};

struct ServiceCounters {
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::int64_t> active{0};
    std::atomic<std::uint64_t> sentBytes{0};      // plaintext to the backend
    std::atomic<std::uint64_t> receivedBytes{0};  // plaintext from the backend
    std::atomic<std::uint64_t> handshakesFull{0};
    std::atomic<std::uint64_t> handshakesResumed{0};
    std::atomic<std::uint64_t> handshakesFailed{0};
    std::atomic<std::int64_t> certificateNotAfter{0};  // unix time of the last verified leaf
    std::atomic<const char*> engine{nullptr};          // record engine of the last session
};

struct ListenerCounters {
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::int64_t> active{0};
    // Of `connections`, those interception brought, by InterceptMode.
    std::array<std::atomic<std::uint64_t>, kInterceptModes.size()> intercepted{};
};

// Relaxed atomics: one writer (the worker), readers only sum them for metrics.
struct WorkerCounters {
#define LM_FIELD(field, name, help) std::atomic<std::uint64_t> field{0};
    LM_DATAPLANE_COUNTERS(LM_FIELD)
#undef LM_FIELD
    std::array<std::atomic<std::uint64_t>, kFailureCount> failures{};
    // Client connections finished (lastmile_connections_closed_total{reason}), and of those,
    // the ones a published policy no longer allowed.
    std::atomic<std::uint64_t> closed{0};
    std::atomic<std::uint64_t> closedByPolicy{0};
    std::atomic<std::int64_t> active{0};  // client connections open now
    std::atomic<std::int64_t> pooled{0};  // handshaken backend connections waiting in the pool
    std::atomic<std::uint64_t> ringSubmits{0};
    Histogram handshakeSeconds;
    // Sessions each record engine took, by its position in the dataplane's EngineSet.
    std::vector<std::atomic<std::uint64_t>> engineSessions;

    explicit WorkerCounters(std::size_t engines) : engineSessions(engines) {}

    void fail(Failure f) { dataplane::bump(failures[static_cast<std::size_t>(f)]); }
};

struct ServiceStats {
    std::uint64_t connections = 0;
    std::int64_t active = 0;
    std::uint64_t sentBytes = 0;
    std::uint64_t receivedBytes = 0;
    std::uint64_t handshakesFull = 0;
    std::uint64_t handshakesResumed = 0;
    std::uint64_t handshakesFailed = 0;
    std::int64_t certificateNotAfter = 0;
    std::string engine;
};

struct ListenerStats {
    std::uint64_t connections = 0;
    std::int64_t active = 0;
    std::array<std::uint64_t, kInterceptModes.size()> intercepted{};
};

// One interception mode of the process (present only when interception is configured).
struct InterceptionStats {
    bool usable = false;
    InterceptCounters counters;
};

struct HistogramStats {
    std::array<std::uint64_t, kHandshakeBuckets.size() + 1> buckets{};  // not cumulative
    double sum = 0;
    std::uint64_t count = 0;
};

struct WorkerStats {
    std::uint64_t ringSubmits = 0;
    std::int64_t active = 0;
};

// A plain copy of the sum over workers.
struct DataplaneStats {
#define LM_FIELD(field, name, help) std::uint64_t field = 0;
    LM_DATAPLANE_COUNTERS(LM_FIELD)
#undef LM_FIELD
    std::array<std::uint64_t, kFailureCount> failures{};
    std::uint64_t closed = 0;
    std::uint64_t closedByPolicy = 0;
    std::int64_t active = 0;
    std::int64_t pooled = 0;
    // The budgets shared by the workers: backend sockets and forwarding buffer bytes.
    std::int64_t backendConnections = 0;
    std::int64_t backendConnectionLimit = 0;
    std::uint64_t bufferMemory = 0;
    std::uint64_t bufferMemoryLimit = 0;
    std::uint64_t ringSubmits = 0;
    unsigned workers = 0;
    HistogramStats handshakeSeconds;
    std::map<std::string, std::uint64_t> engineSessions;  // by engine name
    // Sessions an engine declined (each then went to the next engine), by (engine, reason).
    std::map<std::pair<std::string, std::string>, std::uint64_t> engineDeclines;
    std::map<ServiceKey, ServiceStats> services;
    std::map<route::ListenerId, ListenerStats> listeners;
    std::map<InterceptMode, InterceptionStats> interception;
    std::vector<WorkerStats> perWorker;

    void add(const WorkerCounters& w);
};

}  // namespace lastmile::dataplane
