// SPDX-License-Identifier: Apache-2.0
// Prometheus text format. No C++ client library is packaged in Debian 12, and the format is
// a few lines per family: HELP, TYPE, samples.
#include "ctrl/lastmiled/metrics.h"

#include <sstream>

namespace lastmile::ctrl {
namespace {

void family(std::ostringstream& out, const char* name, const char* type, const char* help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
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
    family(out, "lastmile_connections_active", "gauge", "client connections open now");
    out << "lastmile_connections_active " << s.active << '\n';
    family(out, "lastmile_warm_pool_connections", "gauge",
           "handshaken backend connections waiting in warm pools");
    out << "lastmile_warm_pool_connections " << s.pooled << '\n';
    family(out, "lastmile_resumption_ratio", "gauge",
           "share of backend TLS handshakes that resumed a session (0 before any)");
    const std::uint64_t handshakes = s.handshakesFull + s.handshakesResumed;
    out << "lastmile_resumption_ratio "
        << (handshakes == 0 ? 0.0 : static_cast<double>(s.handshakesResumed) / handshakes) << '\n';
    family(out, "lastmile_workers", "gauge", "dataplane worker threads");
    out << "lastmile_workers " << s.workers << '\n';
    family(out, "lastmile_ring_submits_total", "counter", "io_uring submissions of all workers");
    out << "lastmile_ring_submits_total " << s.ringSubmits << '\n';
    family(out, "lastmile_record_engine_usable", "gauge",
           "1 when the record engine can take sessions on this host");
    for (const auto& e : in.engines) {
        out << "lastmile_record_engine_usable{engine=\"" << e.name << "\"} "
            << (e.probe.usable ? 1 : 0) << '\n';
    }
    family(out, "lastmile_profile_generation", "gauge", "generation of the live ProfileSet");
    out << "lastmile_profile_generation " << in.profileGeneration << '\n';
    family(out, "lastmile_profile_compile_failures_total", "counter",
           "profile compilations that failed for internal reasons (previous profiles kept)");
    out << "lastmile_profile_compile_failures_total " << in.compileFailures << '\n';
    return out.str();
}

}  // namespace lastmile::ctrl
