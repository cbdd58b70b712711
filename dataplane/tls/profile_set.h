// SPDX-License-Identifier: Apache-2.0
// ProfileSet: one immutable generation of compiled profiles, published with one atomic store.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "dataplane/tls/handshake_profile.h"

namespace lastmile::tls {

struct ProfileSet {
    std::uint64_t generation = 0;
    // Keyed by project, then backend: tenants never share a profile.
    std::map<std::string, std::map<BackendKey, std::shared_ptr<const HandshakeProfile>>> projects;

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
    }

private:
    std::atomic<std::shared_ptr<const ProfileSet>> current_;
};

}  // namespace lastmile::tls
