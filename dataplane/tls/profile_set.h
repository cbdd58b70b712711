// SPDX-License-Identifier: Apache-2.0
// ProfileSet: one immutable generation of compiled profiles, published with one atomic store.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/route/plan.h"
#include "dataplane/tls/handshake_profile.h"

namespace lastmile::tls {

struct ProfileSet {
    std::uint64_t generation = 0;
    // Keyed by project, then backend: tenants never share a profile.
    std::map<std::string, std::map<BackendKey, std::shared_ptr<const HandshakeProfile>>> projects;
    // Keyed by project: the listeners of its implemented Gateways, sorted by ListenerId.
    std::map<std::string, std::vector<route::ListenerPlan>> listeners;

    // nullptr when no policy governs the backend.
    std::shared_ptr<const HandshakeProfile> find(const std::string& project,
                                                 const BackendKey& backend) const;
};

// Readers take a snapshot per handshake (never per packet: std::atomic<shared_ptr> is not
// lock-free in libstdc++ 12); an in-flight handshake keeps the generation it started with.
class ProfileRegistry {
public:
    ProfileRegistry() : current_(std::make_shared<const ProfileSet>()) {}

    std::shared_ptr<const ProfileSet> snapshot() const {
        return current_.load(std::memory_order_acquire);
    }
    void publish(std::shared_ptr<const ProfileSet> next) {
        current_.store(std::move(next), std::memory_order_release);
        if (onPublish_) {
            onPublish_();
        }
    }
    // Called after every publish, on the publishing thread: the dataplane wakes its workers
    // so a new generation serves new connections at once. Set before the first publish.
    void setOnPublish(std::function<void()> hook) { onPublish_ = std::move(hook); }

private:
    std::atomic<std::shared_ptr<const ProfileSet>> current_;
    std::function<void()> onPublish_;
};

}  // namespace lastmile::tls
