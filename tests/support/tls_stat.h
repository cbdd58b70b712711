// SPDX-License-Identifier: Apache-2.0
// The kernel's TLS counters, the proof that a session really moved into the kernel.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>

namespace lastmile::test {

// /proc/net/tls_stat ("TlsCurrTxSw   1" per line) as name -> value; empty when the tls
// module is not loaded.
inline std::map<std::string, std::uint64_t> tlsStat() {
    std::map<std::string, std::uint64_t> stat;
    std::ifstream in("/proc/net/tls_stat");
    std::string name;
    std::uint64_t value = 0;
    while (in >> name >> value) {
        stat[name] = value;
    }
    return stat;
}

}  // namespace lastmile::test
