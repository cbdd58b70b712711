// SPDX-License-Identifier: Apache-2.0
// The record-engine registry: which engines this build has, and the set a daemon runs with,
// built in one place in the configured order.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "drivers/cryptodev/config.h"
#include "drivers/record_engine.h"

namespace lastmile::drivers {

// The engines built into this binary, cheapest first: the default `recordEngines:` order.
std::span<const std::string_view> builtEngines() noexcept;

// `order` names engines of builtEngines(), each at most once. Errc::Invalid naming the
// culprit and what is built otherwise.
Status checkEngineOrder(const std::vector<std::string>& order);

// The engines of one daemon, in the order sessions are offered to them. Immutable once made,
// so workers and the profile compiler share it without locks.
class EngineSet {
public:
    // Builds `order` (checkEngineOrder; empty: every built engine) and probes each on this
    // host. Engines that cannot work here stay in the set, unusable, so that describe and
    // /metrics say why.
    static Result<EngineSet> create(const std::vector<std::string>& order,
                                    const cryptodev::CryptodevConfig& cryptodev = {});
    // Test seam: a set of engines made elsewhere, in this order.
    static EngineSet of(std::vector<std::unique_ptr<RecordEngine>> engines);

    EngineSet(EngineSet&&) noexcept = default;
    EngineSet& operator=(EngineSet&&) noexcept = default;

    std::size_t size() const noexcept { return engines_.size(); }
    RecordEngine& at(std::size_t i) const noexcept { return *engines_[i]; }
    const EngineProbe& probe(std::size_t i) const noexcept { return probes_[i]; }
    bool usable(std::size_t i) const noexcept { return probes_[i].usable; }

    // Lets every usable engine that serves `preference` prepare a profile's SSL_CTX.
    void prepareContext(SSL_CTX* ctx, Offload preference, const ContextFacts& facts) const;

private:
    EngineSet() = default;

    std::vector<std::unique_ptr<RecordEngine>> engines_;
    std::vector<EngineProbe> probes_;  // found once, at creation
};

}  // namespace lastmile::drivers
