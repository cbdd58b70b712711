// SPDX-License-Identifier: Apache-2.0
// checkEalArguments: the exact forms an operator may add to DPDK's EAL command line.
#include "drivers/cryptodev/config.h"

#include <regex>

namespace lastmile::drivers::cryptodev {
namespace {

// The forms an operator may add to the EAL command line: creating software crypto devices,
// allowing PCI devices, memory, IOVA mode, log levels. Never a help switch (rte_eal_init
// exits on those) nor anything that names files lastmiled did not choose.
const std::regex& ealForms() {
    static const std::regex forms(
        "--vdev=crypto_(aesni_gcm|aesni_mb|openssl)[0-9]{1,2}"
        "(,(max_nb_queue_pairs|socket_id)=[0-9]{1,3})*"
        "|--allow=[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]"
        "|-m[1-9][0-9]{1,5}"
        "|--huge-dir=/[A-Za-z0-9_./-]{1,200}"
        "|--iova-mode=(va|pa)"
        "|--log-level=([a-z0-9_.*]{1,64}:)?(emergency|alert|critical|error|warning|notice|info|"
        "debug|[1-8])");
    return forms;
}

}  // namespace

Status checkEalArguments(const std::vector<std::string>& eal) {
    for (const auto& a : eal) {
        if (!std::regex_match(a, ealForms())) {
            return fail(Errc::Invalid,
                        "EAL argument \"" + a +
                            "\" is not allowed (allowed: "
                            "--vdev=crypto_{aesni_gcm,aesni_mb,openssl}N[,...], "
                            "--allow=PCI-ADDRESS, -mMEGABYTES, --huge-dir=PATH, "
                            "--iova-mode=va|pa, --log-level=[TYPE:]LEVEL)");
        }
    }
    return {};
}

}  // namespace lastmile::drivers::cryptodev
