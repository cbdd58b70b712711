// SPDX-License-Identifier: Apache-2.0
// Listener claims: deterministic arbitration of overlapping bind addresses across projects.
#include "ctrl/reconcile/listener_claims.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <tuple>

namespace lastmile::ctrl {
namespace {

// An address reduced to what the kernel compares: IPv4 (mapped ones included) or IPv6 bytes.
struct Ip {
    bool v4 = false;
    std::array<unsigned char, 16> bytes{};

    bool wildcard() const {
        return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
    }
    bool operator==(const Ip&) const = default;
};

std::optional<Ip> parseIp(const std::string& text) {
    Ip ip;
    in6_addr v6{};
    if (::inet_pton(AF_INET, text.c_str(), ip.bytes.data()) == 1) {
        ip.v4 = true;
        return ip;
    }
    if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) {
        return std::nullopt;
    }
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        ip.v4 = true;
        std::memcpy(ip.bytes.data(), &v6.s6_addr[12], 4);
        return ip;
    }
    std::memcpy(ip.bytes.data(), v6.s6_addr, 16);
    return ip;
}

std::string hostPort(const ListenerClaim& c) {
    return (c.address.find(':') != std::string::npos ? "[" + c.address + "]" : c.address) + ":" +
           std::to_string(c.port);
}

}  // namespace

bool claimsOverlap(const ListenerClaim& a, const ListenerClaim& b) {
    if (a.port != b.port || a.port == 0) {
        return false;
    }
    auto ia = parseIp(a.address);
    auto ib = parseIp(b.address);
    return ia && ib && (ia->wildcard() || ib->wildcard() || *ia == *ib);
}

std::map<route::ListenerId, std::string> arbitrateClaims(std::vector<ListenerClaim> claims) {
    std::sort(claims.begin(), claims.end(), [](const ListenerClaim& a, const ListenerClaim& b) {
        return std::tie(a.created, a.id) < std::tie(b.created, b.id);
    });
    std::map<route::ListenerId, std::string> losers;
    std::vector<const ListenerClaim*> kept;
    for (const auto& claim : claims) {
        auto winner = std::find_if(kept.begin(), kept.end(), [&](const ListenerClaim* k) {
            return claimsOverlap(*k, claim);
        });
        if (winner == kept.end()) {
            kept.push_back(&claim);
            continue;
        }
        const route::ListenerId& w = (*winner)->id;
        std::string by = w.project == claim.id.project
                             ? "listener " + w.listener + " of Gateway " + w.gatewayNamespace +
                                   "/" + w.gateway
                             : "another Gateway";
        losers[claim.id] = "address " + hostPort(claim) + " is already claimed by " + by;
    }
    return losers;
}

}  // namespace lastmile::ctrl
