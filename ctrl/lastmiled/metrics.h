// SPDX-License-Identifier: Apache-2.0
// /metrics: lastmiled's counters in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/worker/counters.h"
#include "dataplane/tls/profile_set.h"
#include "drivers/engines.h"

namespace lastmile::ctrl {

struct MetricsInput {
    dataplane::DataplaneStats dataplane;
    std::shared_ptr<const tls::ProfileSet> profiles;  // policy, SNI and CA of each Service
    const drivers::EngineSet* engines = nullptr;  // what each record engine found at start
    std::uint64_t profileGeneration = 0;
    std::uint64_t compileFailures = 0;
    // Bytes malloc has handed out and not had back (mallinfo2): unlike RSS, it does not
    // depend on whether freed memory went back to the kernel, so growth means a leak.
    std::uint64_t heapInUseBytes = 0;
};

std::string renderMetrics(const MetricsInput& in);

}  // namespace lastmile::ctrl
