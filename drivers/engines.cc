// SPDX-License-Identifier: Apache-2.0
// EngineSet: the one place that knows every engine class.
#include "drivers/engines.h"

#include <algorithm>
#include <array>
#include <optional>

#include "drivers/ktls/ktls_engine.h"
#include "drivers/openssl/openssl_engine.h"
#include "lastmile_config.h"
#if LM_HAVE_DPDK
#include "drivers/cryptodev/cryptodev_engine.h"
#endif

namespace lastmile::drivers {
namespace {

#if LM_HAVE_DPDK
constexpr std::array<std::string_view, 4> kBuilt = {"nic", "kernel", "cryptodev", "openssl"};
#else
constexpr std::array<std::string_view, 3> kBuilt = {"nic", "kernel", "openssl"};
#endif

}  // namespace

std::span<const std::string_view> builtEngines() noexcept { return kBuilt; }

Status checkEngineOrder(const std::vector<std::string>& order) {
    for (auto it = order.begin(); it != order.end(); ++it) {
        if (std::find(kBuilt.begin(), kBuilt.end(), *it) == kBuilt.end()) {
            std::string built;
            for (auto name : kBuilt) {
                built += (built.empty() ? "" : ", ") + std::string(name);
            }
            return fail(Errc::Invalid, "record engine \"" + *it +
                                           "\" is not built into this lastmiled (built: " +
                                           built + ")");
        }
        if (std::find(order.begin(), it, *it) != it) {
            return fail(Errc::Invalid, "record engine \"" + *it + "\" is listed twice");
        }
    }
    return {};
}

Result<EngineSet> EngineSet::create(const std::vector<std::string>& order,
                                    [[maybe_unused]] const cryptodev::CryptodevConfig& cryptodev) {
    LM_TRY(checkEngineOrder(order));
    std::vector<std::string> names = order;
    if (names.empty()) {
        names.assign(kBuilt.begin(), kBuilt.end());
    }
    // Both kernel-framed engines read the same host facts; probing takes milliseconds.
    std::optional<ktls::KernelTlsCapabilities> kernel;
    std::vector<std::unique_ptr<RecordEngine>> engines;
    for (const auto& name : names) {
        if (name == "openssl") {
            engines.push_back(std::make_unique<openssl::OpensslEngine>());
            continue;
        }
#if LM_HAVE_DPDK
        if (name == "cryptodev") {
            engines.push_back(std::make_unique<cryptodev::CryptodevEngine>(cryptodev));
            continue;
        }
#endif
        if (!kernel) {
            kernel = ktls::probeKernelTls();
        }
        engines.push_back(std::make_unique<ktls::KernelEngine>(
            *kernel, name == "nic" ? ktls::KernelEngine::Mode::Nic
                                   : ktls::KernelEngine::Mode::Software));
    }
    return of(std::move(engines));
}

EngineSet EngineSet::of(std::vector<std::unique_ptr<RecordEngine>> engines) {
    EngineSet set;
    for (const auto& engine : engines) {
        set.probes_.push_back(engine->probe());
    }
    set.engines_ = std::move(engines);
    return set;
}

void EngineSet::prepareContext(SSL_CTX* ctx, Offload preference,
                               const ContextFacts& facts) const {
    for (std::size_t i = 0; i < engines_.size(); ++i) {
        if (usable(i) && engines_[i]->serves(preference)) {
            engines_[i]->prepareContext(ctx, facts);
        }
    }
}

}  // namespace lastmile::drivers
