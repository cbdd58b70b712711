// SPDX-License-Identifier: Apache-2.0
// Prometheus text format. No C++ client library is packaged in Debian 12, and the format is
// a few lines per family: HELP, TYPE, samples.
#include "ctrl/lastmiled/metrics.h"

#include <functional>
#include <map>
#include <sstream>
#include <string_view>
#include <tuple>
#include <utility>

#include "base/text.h"

namespace lastmile::ctrl {
namespace {

void family(std::ostringstream& out, const char* name, const char* type, const char* help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

// Label values are user data (names from manifests): escaped as the format requires.
std::string escape(std::string_view value) {
    std::string out;
    for (char ch : value) {
        switch (ch) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += ch;
        }
    }
    return out;
}

using Labels = std::vector<std::pair<const char*, std::string>>;

std::string labels(const Labels& pairs) {
    std::string out = "{";
    for (const auto& [name, value] : pairs) {
        if (out.size() > 1) {
            out += ',';
        }
        out += name;
        out += "=\"";
        out += escape(value);
        out += '"';
    }
    return out + "}";
}

Labels serviceLabels(const dataplane::ServiceKey& key) {
    return {{"project", key.project},
            {"namespace", key.backend.ns},
            {"service", key.backend.service},
            {"port", std::to_string(key.backend.port)}};
}

void renderServices(std::ostringstream& out, const MetricsInput& in) {
    const auto& services = in.dataplane.services;
    struct Series {
        const char* name;
        const char* type;
        const char* help;
        std::function<std::int64_t(const dataplane::ServiceStats&)> value;
    };
    const Series series[] = {
        {"lastmile_service_connections_total", "counter", "client connections sent to the Service port",
         [](const auto& s) { return static_cast<std::int64_t>(s.connections); }},
        {"lastmile_service_connections_active", "gauge", "client connections open to the Service port",
         [](const auto& s) { return s.active; }},
        {"lastmile_service_sent_bytes_total", "counter", "plaintext bytes forwarded to the Service port",
         [](const auto& s) { return static_cast<std::int64_t>(s.sentBytes); }},
        {"lastmile_service_received_bytes_total", "counter",
         "plaintext bytes forwarded from the Service port",
         [](const auto& s) { return static_cast<std::int64_t>(s.receivedBytes); }},
    };
    for (const auto& f : series) {
        family(out, f.name, f.type, f.help);
        for (const auto& [key, s] : services) {
            out << f.name << labels(serviceLabels(key)) << ' ' << f.value(s) << '\n';
        }
    }
    family(out, "lastmile_service_handshakes_total", "counter",
           "backend TLS handshakes by result (full, resumed, failed)");
    for (const auto& [key, s] : services) {
        const std::pair<const char*, std::uint64_t> results[] = {
            {"full", s.handshakesFull}, {"resumed", s.handshakesResumed}, {"failed", s.handshakesFailed}};
        for (const auto& [result, n] : results) {
            Labels l = serviceLabels(key);
            l.emplace_back("result", result);
            out << "lastmile_service_handshakes_total" << labels(l) << ' ' << n << '\n';
        }
    }
    family(out, "lastmile_service_certificate_expiry_timestamp_seconds", "gauge",
           "notAfter of the last certificate the Service port presented (unix time)");
    for (const auto& [key, s] : services) {
        if (s.certificateNotAfter > 0) {
            out << "lastmile_service_certificate_expiry_timestamp_seconds"
                << labels(serviceLabels(key)) << ' ' << s.certificateNotAfter << '\n';
        }
    }
    // One info series per Service port a listener reaches: its policy, SNI and engine.
    family(out, "lastmile_service_info", "gauge",
           "1 per backend Service port: the governing policy, the SNI sent, the record engine");
    std::map<dataplane::ServiceKey, Labels> info;
    if (in.profiles) {
        for (const auto& [project, plans] : in.profiles->listeners) {
            for (const auto& plan : plans) {
                for (const auto& b : plan.backends) {
                    dataplane::ServiceKey key{project, b.key};
                    Labels l = serviceLabels(key);
                    l.emplace_back("policy", b.profile ? b.profile->spec().policy : "");
                    l.emplace_back("sni", b.profile ? b.profile->spec().sni : "");
                    auto seen = services.find(key);
                    l.emplace_back("engine", seen == services.end() ? "" : seen->second.engine);
                    info[key] = std::move(l);
                }
            }
        }
    }
    for (const auto& [key, l] : info) {
        out << "lastmile_service_info" << labels(l) << " 1\n";
    }
}

void renderTrustAnchors(std::ostringstream& out, const MetricsInput& in) {
    family(out, "lastmile_ca_certificate_expiry_timestamp_seconds", "gauge",
           "notAfter of each trust anchor of a policy's CA bundle (unix time)");
    if (!in.profiles) {
        return;
    }
    std::map<std::string, std::int64_t> seen;  // rendered label set -> notAfter
    for (const auto& [project, profiles] : in.profiles->projects) {
        for (const auto& [backend, profile] : profiles) {
            const std::string& policy = profile->spec().policy;
            for (const auto& anchor : profile->trustAnchors()) {
                auto notAfter = parseRfc3339(anchor.notAfter);
                if (!notAfter) {
                    continue;
                }
                seen[labels({{"project", project},
                             {"namespace", backend.ns},
                             {"policy", policy.substr(policy.find('/') + 1)},
                             {"subject", anchor.subject}})] = *notAfter;
            }
        }
    }
    for (const auto& [l, t] : seen) {
        out << "lastmile_ca_certificate_expiry_timestamp_seconds" << l << ' ' << t << '\n';
    }
}

// Record engines in their configured order, with what each found on this host at start.
void renderEngines(std::ostringstream& out, const drivers::EngineSet* engines) {
    if (engines == nullptr) {
        return;
    }
    family(out, "lastmile_record_engine_usable", "gauge",
           "1 when the record engine can take sessions on this host");
    for (std::size_t i = 0; i < engines->size(); ++i) {
        out << "lastmile_record_engine_usable" << labels({{"engine", std::string(engines->at(i).name())}})
            << ' ' << (engines->usable(i) ? 1 : 0) << '\n';
    }
    family(out, "lastmile_record_engine_feature", "gauge",
           "1 when the host offers what an engine can use (kernel TLS ULP, a cipher per TLS "
           "version, TLS 1.3 receive, rekey), found at start");
    for (std::size_t i = 0; i < engines->size(); ++i) {
        const std::string engine(engines->at(i).name());
        for (const auto& [feature, present] : engines->probe(i).features) {
            out << "lastmile_record_engine_feature" << labels({{"engine", engine}, {"feature", feature}})
                << ' ' << (present ? 1 : 0) << '\n';
        }
    }
    family(out, "lastmile_record_engine_device", "gauge",
           "1 when a device an engine drives offers the feature (a NIC's TLS offload per "
           "direction: tx, rx), found at start");
    for (std::size_t i = 0; i < engines->size(); ++i) {
        const std::string engine(engines->at(i).name());
        for (const auto& device : engines->probe(i).devices) {
            for (const auto& [feature, present] : device.features) {
                out << "lastmile_record_engine_device"
                    << labels({{"engine", engine}, {"device", device.name}, {"feature", feature}})
                    << ' ' << (present ? 1 : 0) << '\n';
            }
        }
    }
}

// Only when interception is configured: without it no connection can be intercepted.
void renderInterception(std::ostringstream& out, const dataplane::DataplaneStats& s,
                        const std::function<Labels(const route::ListenerId&)>& listenerPairs) {
    if (s.interception.empty()) {
        return;
    }
    family(out, "lastmile_intercepted_connections_total", "counter",
           "client connections a listener took over at one of its Gateway's virtual addresses, "
           "by interception mode");
    for (const auto& [id, l] : s.listeners) {
        for (dataplane::InterceptMode mode : dataplane::kInterceptModes) {
            Labels pairs = listenerPairs(id);
            pairs.emplace_back("mode", dataplane::modeName(mode));
            out << "lastmile_intercepted_connections_total" << labels(pairs) << ' '
                << l.intercepted[static_cast<std::size_t>(mode)] << '\n';
        }
    }
    using Value = std::function<std::uint64_t(const dataplane::InterceptionStats&)>;
    const auto perMode = [&](const char* name, const char* type, const char* help,
                             const Value& value) {
        family(out, name, type, help);
        for (const auto& [mode, stats] : s.interception) {
            out << name << labels({{"mode", std::string(dataplane::modeName(mode))}}) << ' '
                << value(stats) << '\n';
        }
    };
    perMode("lastmile_interception_usable", "gauge",
            "1 when the interception mode loaded and attached, 0 when it cannot work (the log "
            "and the Gateway status say why)",
            [](const auto& m) -> std::uint64_t { return m.usable ? 1 : 0; });
    perMode("lastmile_interception_redirects_total", "counter",
            "connections the mode's programs took over (host: connects rewritten; routed: SYNs "
            "steered, retransmissions included)",
            [](const auto& m) { return m.counters.redirected; });
    perMode("lastmile_interception_refused_total", "counter",
            "connections to a virtual address the mode's programs matched but left alone (no "
            "listening socket, origin not storable)",
            [](const auto& m) { return m.counters.refused; });
}

}  // namespace

std::string renderMetrics(const MetricsInput& in) {
    std::ostringstream out;
    const auto& s = in.dataplane;
#define LM_RENDER(field, name, help)    \
    family(out, name, "counter", help); \
    out << name << ' ' << s.field << '\n';
    LM_DATAPLANE_COUNTERS(LM_RENDER)
#undef LM_RENDER

    family(out, "lastmile_failures_total", "counter",
           "client connections refused or cut, by reason");
    for (std::size_t i = 0; i < dataplane::kFailureCount; ++i) {
        out << "lastmile_failures_total{reason=\""
            << dataplane::failureLabel(static_cast<dataplane::Failure>(i)) << "\"} "
            << s.failures[i] << '\n';
    }
    family(out, "lastmile_connections_closed_total", "counter",
           "client connections finished; policy_change: closed because a published policy no "
           "longer allowed them (plaintext to a now covered backend, a peer the new profile "
           "refuses)");
    out << "lastmile_connections_closed_total{reason=\"policy_change\"} " << s.closedByPolicy
        << "\nlastmile_connections_closed_total{reason=\"other\"} " << s.closed - s.closedByPolicy
        << '\n';
    family(out, "lastmile_connections_active", "gauge", "client connections open now");
    out << "lastmile_connections_active " << s.active << '\n';
    family(out, "lastmile_warm_pool_connections", "gauge",
           "handshaken backend connections waiting in warm pools");
    out << "lastmile_warm_pool_connections " << s.pooled << '\n';
    const std::tuple<const char*, const char*, std::int64_t> budgets[] = {
        {"lastmile_backend_connections", "backend connections open now, warm-pool ones included",
         s.backendConnections},
        {"lastmile_backend_connections_limit",
         "maxBackendConnections: backend connections the process may open",
         s.backendConnectionLimit},
        {"lastmile_buffer_memory_bytes",
         "forwarding buffer memory the workers hold (in use or kept for reuse)",
         static_cast<std::int64_t>(s.bufferMemory)},
        {"lastmile_buffer_memory_limit_bytes",
         "maxBufferMemory: beyond it receives wait for memory instead of allocating",
         static_cast<std::int64_t>(s.bufferMemoryLimit)},
    };
    for (const auto& [name, help, value] : budgets) {
        family(out, name, "gauge", help);
        out << name << ' ' << value << '\n';
    }
    family(out, "lastmile_resumption_ratio", "gauge",
           "share of backend TLS handshakes that resumed a session (0 before any)");
    const std::uint64_t handshakes = s.handshakesFull + s.handshakesResumed;
    out << "lastmile_resumption_ratio "
        << (handshakes == 0 ? 0.0 : static_cast<double>(s.handshakesResumed) / handshakes) << '\n';
    family(out, "lastmile_workers", "gauge", "dataplane worker threads");
    out << "lastmile_workers " << s.workers << '\n';
    family(out, "lastmile_heap_in_use_bytes", "gauge",
           "bytes allocated from the heap and not freed (RSS also counts freed memory kept)");
    out << "lastmile_heap_in_use_bytes " << in.heapInUseBytes << '\n';
    renderEngines(out, in.engines);
    family(out, "lastmile_handshake_duration_seconds", "histogram",
           "backend TLS handshake time, from ClientHello to an established session");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < dataplane::kHandshakeBuckets.size(); ++i) {
        cumulative += s.handshakeSeconds.buckets[i];
        out << "lastmile_handshake_duration_seconds_bucket{le=\"" << dataplane::kHandshakeBuckets[i]
            << "\"} " << cumulative << '\n';
    }
    out << "lastmile_handshake_duration_seconds_bucket{le=\"+Inf\"} " << s.handshakeSeconds.count
        << "\nlastmile_handshake_duration_seconds_sum " << s.handshakeSeconds.sum
        << "\nlastmile_handshake_duration_seconds_count " << s.handshakeSeconds.count << '\n';
    family(out, "lastmile_engine_sessions_total", "counter", "TLS sessions each record engine took");
    for (const auto& [engine, n] : s.engineSessions) {
        out << "lastmile_engine_sessions_total" << labels({{"engine", engine}}) << ' ' << n << '\n';
    }
    family(out, "lastmile_engine_declines_total", "counter",
           "sessions an engine declined, by reason; each went to the next engine (the openssl "
           "floor takes every session)");
    for (const auto& [key, n] : s.engineDeclines) {
        out << "lastmile_engine_declines_total" << labels({{"engine", key.first}, {"reason", key.second}})
            << ' ' << n << '\n';
    }
    const auto listenerPairs = [](const route::ListenerId& id) -> Labels {
        return {{"project", id.project}, {"namespace", id.gatewayNamespace},
                {"gateway", id.gateway}, {"listener", id.listener}};
    };
    const auto listenerLabels = [&](const route::ListenerId& id) {
        return labels(listenerPairs(id));
    };
    family(out, "lastmile_listener_connections_total", "counter",
           "client connections accepted per listener");
    for (const auto& [id, l] : s.listeners) {
        out << "lastmile_listener_connections_total" << listenerLabels(id) << ' ' << l.connections
            << '\n';
    }
    family(out, "lastmile_listener_connections_active", "gauge",
           "client connections open per listener");
    for (const auto& [id, l] : s.listeners) {
        out << "lastmile_listener_connections_active" << listenerLabels(id) << ' ' << l.active << '\n';
    }
    renderInterception(out, s, listenerPairs);
    renderServices(out, in);
    renderTrustAnchors(out, in);
    family(out, "lastmile_worker_ring_submits_total", "counter", "io_uring submissions per worker");
    for (std::size_t i = 0; i < s.perWorker.size(); ++i) {
        out << "lastmile_worker_ring_submits_total{worker=\"" << i << "\"} "
            << s.perWorker[i].ringSubmits << '\n';
    }
    family(out, "lastmile_worker_connections_active", "gauge", "client connections open per worker");
    for (std::size_t i = 0; i < s.perWorker.size(); ++i) {
        out << "lastmile_worker_connections_active{worker=\"" << i << "\"} " << s.perWorker[i].active
            << '\n';
    }
    family(out, "lastmile_profile_generation", "gauge", "generation of the live ProfileSet");
    out << "lastmile_profile_generation " << in.profileGeneration << '\n';
    family(out, "lastmile_profile_compile_failures_total", "counter",
           "profile compilations that failed for internal reasons (previous profiles kept)");
    out << "lastmile_profile_compile_failures_total " << in.compileFailures << '\n';
    return out.str();
}

}  // namespace lastmile::ctrl
