// SPDX-License-Identifier: Apache-2.0
// isLocalAddress: the literal against every interface address getifaddrs reports.
#include "dataplane/net/local_addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace lastmile::net {
namespace {

using Bytes = std::array<std::uint8_t, 16>;  // IPv6 form; IPv4 as ::ffff:a.b.c.d

Bytes mapped(const in_addr& v4) {
    Bytes b{};
    b[10] = 0xff;
    b[11] = 0xff;
    std::memcpy(b.data() + 12, &v4, 4);
    return b;
}

std::optional<Bytes> fromSockaddr(const sockaddr* a) {
    if (a == nullptr) {
        return std::nullopt;
    }
    if (a->sa_family == AF_INET) {
        return mapped(reinterpret_cast<const sockaddr_in*>(a)->sin_addr);
    }
    if (a->sa_family == AF_INET6) {
        Bytes b{};
        std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, 16);
        return b;
    }
    return std::nullopt;
}

// Equal under `mask` (a netmask in the same IPv6 form; all ones compares whole addresses).
bool sameNetwork(const Bytes& a, const Bytes& b, const Bytes& mask) {
    for (std::size_t i = 0; i < a.size(); ++i) {
        if ((a[i] & mask[i]) != (b[i] & mask[i])) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool isLocalAddress(std::string_view ip) {
    const std::string text(ip);
    Bytes want{};
    in_addr v4{};
    in6_addr v6{};
    if (text.find('\0') != std::string::npos) {
        return false;
    } else if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
        want = mapped(v4);
    } else if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
        std::memcpy(want.data(), &v6, 16);
    } else {
        return false;
    }
    const Bytes any4 = mapped(in_addr{});
    if (want == Bytes{} || want == any4) {
        return true;
    }
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == -1) {
        return false;
    }
    Bytes all{};
    all.fill(0xff);
    bool local = false;
    for (const ifaddrs* i = list; i != nullptr && !local; i = i->ifa_next) {
        const auto address = fromSockaddr(i->ifa_addr);
        if (!address) {
            continue;
        }
        auto mask = all;
        if ((i->ifa_flags & IFF_LOOPBACK) != 0) {
            if (auto netmask = fromSockaddr(i->ifa_netmask)) {
                mask = *netmask;
                if (i->ifa_addr->sa_family == AF_INET) {
                    std::fill(mask.begin(), mask.begin() + 12, 0xff);  // the ::ffff: prefix
                }
            }
        }
        local = sameNetwork(want, *address, mask);
    }
    ::freeifaddrs(list);
    return local;
}

}  // namespace lastmile::net
