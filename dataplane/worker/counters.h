// SPDX-License-Identifier: Apache-2.0
// Dataplane counters: kept per worker (written by its thread only), summed for metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lastmile::dataplane {

// X(field, metric name, help). Names are an API the dashboards depend on.
#define LM_DATAPLANE_COUNTERS(X)                                                                  \
    X(accepted, "lastmile_connections_accepted_total", "client connections accepted")           \
    X(closed, "lastmile_connections_closed_total", "client connections finished")               \
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
      "backend TLS streams that ended without close_notify")

// Why a connection was refused or cut; one counter each (lastmile_failures_total{reason}).
#define LM_FAILURE_REASONS(X)                                                                     \
    X(FailClosed, "fail_closed")                                                                 \
    X(NoBackend, "no_backend")                                                                   \
    X(ConnectFailed, "connect_failed")                                                           \
    X(VerifyFailed, "verify_failed")                                                             \
    X(HandshakeFailed, "handshake_failed")                                                       \
    X(HandshakeTimeout, "handshake_timeout")                                                     \
    X(ConnectionLimit, "connection_limit")                                                       \
    X(IdleTimeout, "idle_timeout")                                                               \
    X(StreamError, "stream_error")

enum class Failure {
#define LM_ENUM(name, label) name,
    LM_FAILURE_REASONS(LM_ENUM)
#undef LM_ENUM
};
constexpr std::size_t kFailureCount = 0
#define LM_COUNT(name, label) +1
    LM_FAILURE_REASONS(LM_COUNT)
#undef LM_COUNT
    ;

constexpr std::string_view failureLabel(Failure f) {
    constexpr std::string_view labels[] = {
#define LM_LABEL(name, label) label,
        LM_FAILURE_REASONS(LM_LABEL)
#undef LM_LABEL
    };
    return labels[static_cast<std::size_t>(f)];
}

// Relaxed atomics: one writer (the worker), readers only sum them for metrics.
struct WorkerCounters {
#define LM_FIELD(field, name, help) std::atomic<std::uint64_t> field{0};
    LM_DATAPLANE_COUNTERS(LM_FIELD)
#undef LM_FIELD
    std::array<std::atomic<std::uint64_t>, kFailureCount> failures{};
    std::atomic<std::int64_t> active{0};  // client connections open now
    std::atomic<std::int64_t> pooled{0};  // handshaken backend connections waiting in the pool
    std::atomic<std::uint64_t> ringSubmits{0};

    void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void fail(Failure f) { bump(failures[static_cast<std::size_t>(f)]); }
};

// A plain copy of the sum over workers.
struct DataplaneStats {
#define LM_FIELD(field, name, help) std::uint64_t field = 0;
    LM_DATAPLANE_COUNTERS(LM_FIELD)
#undef LM_FIELD
    std::array<std::uint64_t, kFailureCount> failures{};
    std::int64_t active = 0;
    std::int64_t pooled = 0;
    std::uint64_t ringSubmits = 0;
    unsigned workers = 0;

    void add(const WorkerCounters& w);
};

}  // namespace lastmile::dataplane
