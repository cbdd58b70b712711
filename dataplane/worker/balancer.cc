// SPDX-License-Identifier: Apache-2.0
// Weighted round robin and endpoint backoff.
#include "dataplane/worker/balancer.h"

#include <algorithm>

namespace lastmile::dataplane {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{1'000};
constexpr std::chrono::milliseconds kMaxBackoff{30'000};

bool contains(const std::vector<route::Endpoint>& list, const route::Endpoint& e) {
    return std::find(list.begin(), list.end(), e) != list.end();
}

}  // namespace

const route::Backend& Balancer::pickBackend(const std::vector<route::Backend>& backends,
                                            std::uint64_t& cursor) {
    std::uint64_t total = 0;
    for (const auto& b : backends) {
        total += b.weight;
    }
    std::uint64_t slot = total == 0 ? 0 : cursor++ % total;
    for (const auto& b : backends) {
        if (slot < b.weight) {
            return b;
        }
        slot -= b.weight;
    }
    return backends.front();
}

std::optional<route::Endpoint> Balancer::pickEndpoint(const std::string& project,
                                                      const route::Backend& backend,
                                                      const std::vector<route::Endpoint>& tried,
                                                      bool allowBackedOff,
                                                      Clock::time_point now) {
    const auto& endpoints = backend.endpoints;
    if (endpoints.empty()) {
        return std::nullopt;
    }
    std::uint64_t& cursor = cursors_[BackendId{project, backend.key}];
    const std::size_t start = cursor++ % endpoints.size();
    std::optional<route::Endpoint> fallback;
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        const auto& e = endpoints[(start + i) % endpoints.size()];
        if (contains(tried, e)) {
            continue;
        }
        if (!backedOff(project, e, now)) {
            return e;
        }
        if (!fallback) {
            fallback = e;
        }
    }
    // Every untried endpoint is backed off: trying one beats refusing the client outright.
    return allowBackedOff ? fallback : std::nullopt;
}

void Balancer::failed(const std::string& project, const route::Endpoint& e,
                      Clock::time_point now) {
    Backoff& b = backoff_[EndpointKey{project, e.address, e.port}];
    b.step = b.step.count() == 0 ? kFirstBackoff : std::min(b.step * 2, kMaxBackoff);
    b.until = now + b.step;
}

void Balancer::succeeded(const std::string& project, const route::Endpoint& e) {
    backoff_.erase(EndpointKey{project, e.address, e.port});
}

bool Balancer::backedOff(const std::string& project, const route::Endpoint& e,
                         Clock::time_point now) const {
    auto it = backoff_.find(EndpointKey{project, e.address, e.port});
    return it != backoff_.end() && now < it->second.until;
}

}  // namespace lastmile::dataplane
