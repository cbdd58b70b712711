// SPDX-License-Identifier: Apache-2.0
// The cryptodev engine's configuration and the allow-list of what may reach DPDK's EAL; built
// with or without DPDK, so that every lastmiled reads the same configuration file.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace lastmile::drivers::cryptodev {

// `cryptodev:` in the daemon configuration.
struct CryptodevConfig {
    // Extra DPDK EAL arguments, each one of the forms checkEalArguments accepts (devices to
    // create or allow, memory, IOVA mode, log levels). lastmiled adds its own: one lcore, a
    // per-process file prefix, no shared config, no telemetry, no hugepages when the host
    // has none, no PCI scan unless a device is allowed.
    std::vector<std::string> eal;
    // Crypto devices to use, by DPDK name ("crypto_aesni_gcm0", "0000:3d:01.0_qat_sym").
    // Empty: the engine is unusable (DPDK is never started).
    std::vector<std::string> devices;

    bool operator==(const CryptodevConfig&) const = default;
};

// Each entry must match one allow-listed form exactly; Errc::Invalid naming the first that
// does not. Nothing else reaches rte_eal_init (which exits the process on some arguments).
Status checkEalArguments(const std::vector<std::string>& eal);

}  // namespace lastmile::drivers::cryptodev
