// SPDX-License-Identifier: Apache-2.0
// Balancer: a worker's choice of backend and endpoint (weighted round robin, failed endpoints
// backed off). Single-threaded: each worker has its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "dataplane/route/plan.h"

namespace lastmile::dataplane {

class Balancer {
public:
    using Clock = std::chrono::steady_clock;

    // Weighted round robin over `backends` (non-empty); `cursor` is the listener's position.
    static const route::Backend& pickBackend(const std::vector<route::Backend>& backends,
                                             std::uint64_t& cursor);

    // The next endpoint of `backend` for a connection that has already tried `tried`: round
    // robin, endpoints in backoff last. nullopt when every endpoint was tried, or, with
    // `allowBackedOff` false (warm-pool refills), when only backed-off ones are left.
    std::optional<route::Endpoint> pickEndpoint(const std::string& project,
                                                const route::Backend& backend,
                                                const std::vector<route::Endpoint>& tried,
                                                bool allowBackedOff, Clock::time_point now);

    // A refused or timed-out connect backs the endpoint off: 1 s, doubling up to 30 s.
    void failed(const std::string& project, const route::Endpoint& e, Clock::time_point now);
    void succeeded(const std::string& project, const route::Endpoint& e);
    bool backedOff(const std::string& project, const route::Endpoint& e,
                   Clock::time_point now) const;

private:
    using EndpointKey = std::tuple<std::string, std::string, std::uint16_t>;
    using BackendId = std::pair<std::string, tls::BackendKey>;
    struct Backoff {
        Clock::time_point until;
        std::chrono::milliseconds step{0};
    };
    std::map<EndpointKey, Backoff> backoff_;
    std::map<BackendId, std::uint64_t> cursors_;
};

}  // namespace lastmile::dataplane
