// SPDX-License-Identifier: Apache-2.0
// Address parsing, CIDR matching and the backend dial check.
#include "dataplane/net/address_filter.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "base/unique_fd.h"

namespace lastmile::net {
namespace {

bool allDigits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// True when some interface of this host has `ip`: binding to it succeeds only then. A host
// with ip_nonlocal_bind answers yes for everything, which refuses more, never less.
bool isLocal(const IpAddress& ip) {
    auto address = SocketAddress::parse(ip.toString(), 0);
    if (!address) {
        return false;
    }
    UniqueFd fd(::socket(address->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return true;  // cannot tell: treat as ours, the safe side
    }
    return ::bind(fd.get(), address->get(), address->length()) == 0;
}

struct Range {
    const char* network;
    std::string_view description;
};

// The descriptions follow "is" / "may not be".
constexpr Range kSpecialUse[] = {
    {"0.0.0.0/8", "unspecified (0.0.0.0/8, ::)"},
    {"::/128", "unspecified (0.0.0.0/8, ::)"},
    {"169.254.0.0/16", "in the link-local range (169.254.0.0/16, fe80::/10)"},
    {"fe80::/10", "in the link-local range (169.254.0.0/16, fe80::/10)"},
    {"224.0.0.0/4", "in the multicast range (224.0.0.0/4, ff00::/8)"},
    {"ff00::/8", "in the multicast range (224.0.0.0/4, ff00::/8)"},
    {"255.255.255.255/32", "the IPv4 broadcast address"},
};

bool isWildcard(const IpAddress& ip) {
    static const IpAddress any4 = *IpAddress::parse("0.0.0.0");
    static const IpAddress any6 = *IpAddress::parse("::");
    return ip == any4 || ip == any6;
}

const std::vector<Network>& loopback() {
    static const std::vector<Network> networks{*Network::parse("127.0.0.0/8"),
                                               *Network::parse("::1/128")};
    return networks;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    // inet_pton reads a C string: an embedded NUL would hide whatever follows it.
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN ||
        text.find('\0') != std::string_view::npos) {
        return std::nullopt;
    }
    const std::string s(text);
    IpAddress a;
    if (::inet_pton(AF_INET, s.c_str(), a.bytes_.data()) == 1) {
        a.family_ = AF_INET;
        return a;
    }
    in6_addr v6{};
    if (::inet_pton(AF_INET6, s.c_str(), &v6) != 1) {
        return std::nullopt;
    }
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        a.family_ = AF_INET;
        std::memcpy(a.bytes_.data(), &v6.s6_addr[12], 4);
    } else {
        a.family_ = AF_INET6;
        std::memcpy(a.bytes_.data(), v6.s6_addr, 16);
    }
    return a;
}

IpAddress IpAddress::of(const SocketAddress& address) {
    IpAddress a;
    if (address.family() == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6*>(address.get())->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&v6)) {
            std::memcpy(a.bytes_.data(), &v6.s6_addr[12], 4);
        } else {
            a.family_ = AF_INET6;
            std::memcpy(a.bytes_.data(), v6.s6_addr, 16);
        }
        return a;
    }
    std::memcpy(a.bytes_.data(), &reinterpret_cast<const sockaddr_in*>(address.get())->sin_addr, 4);
    return a;
}

std::string IpAddress::toString() const {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family_, bytes_.data(), text, sizeof(text));
    return text;
}

Result<Network> Network::parse(std::string_view text) {
    const auto bad = [&](const std::string& why) {
        return fail(Errc::Invalid, "network \"" + std::string(text) + "\": " + why);
    };
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) {
        return bad("use CIDR notation with a prefix length, e.g. 10.0.0.0/8 or 10.0.0.1/32");
    }
    std::string_view addressText = text.substr(0, slash);
    const std::string_view prefixText = text.substr(slash + 1);
    auto address = IpAddress::parse(addressText);
    if (!address) {
        return bad("\"" + std::string(addressText) +
                   "\" is not an IPv4 (dotted quad) or IPv6 address");
    }
    if (!allDigits(prefixText) || (prefixText.size() > 1 && prefixText[0] == '0') ||
        prefixText.size() > 3) {
        return bad("the prefix length must be a decimal number without leading zeros");
    }
    unsigned prefix = static_cast<unsigned>(std::stoul(std::string(prefixText)));
    const bool mapped =
        address->family_ == AF_INET && addressText.find(':') != std::string_view::npos;
    if (mapped) {
        // ::ffff:a.b.c.d/N covers IPv4 addresses only from N = 96 on.
        if (prefix < 96 || prefix > 128) {
            return bad("an IPv4-mapped network needs a prefix length from 96 to 128");
        }
        prefix -= 96;
    }
    const unsigned bits = address->family_ == AF_INET ? 32 : 128;
    if (prefix > bits) {
        return bad("the prefix length must be at most " + std::to_string(bits));
    }
    for (unsigned i = prefix; i < bits; ++i) {
        if ((address->bytes_[i / 8] >> (7 - i % 8) & 1) != 0) {
            return bad("host bits are set past the prefix length; write the network's first "
                       "address, or a /32 or /128 for one host");
        }
    }
    Network n;
    n.base_ = *address;
    n.prefix_ = prefix;
    return n;
}

bool Network::contains(const IpAddress& address) const noexcept {
    if (address.family_ != base_.family_) {
        return false;
    }
    const unsigned whole = prefix_ / 8;
    if (!std::equal(base_.bytes_.begin(), base_.bytes_.begin() + whole, address.bytes_.begin())) {
        return false;
    }
    const unsigned rest = prefix_ % 8;
    if (rest == 0) {
        return true;
    }
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (base_.bytes_[whole] & mask) == (address.bytes_[whole] & mask);
}

std::string Network::toString() const {
    return base_.toString() + "/" + std::to_string(prefix_);
}

std::optional<std::string_view> specialUse(const IpAddress& address) {
    static const auto ranges = [] {
        std::vector<std::pair<Network, std::string_view>> out;
        for (const auto& r : kSpecialUse) {
            out.emplace_back(*Network::parse(r.network), r.description);
        }
        return out;
    }();
    for (const auto& [network, description] : ranges) {
        if (network.contains(address)) {
            return description;
        }
    }
    // ::/96 apart from :: and ::1 (which keep their own meaning).
    static const Network compatible = *Network::parse("::/96");
    static const Network loopbackV6 = *Network::parse("::1/128");
    if (compatible.contains(address) && !loopbackV6.contains(address)) {
        return "an IPv4-compatible IPv6 address (::/96, deprecated)";
    }
    return std::nullopt;
}

AddressFilter::AddressFilter(std::optional<std::vector<Network>> allowed)
    : allowed_(std::move(allowed)) {}

Status AddressFilter::check(const SocketAddress& address) const {
    const IpAddress ip = IpAddress::of(address);
    const std::string endpoint = "endpoint " + ip.toString();
    const auto refuse = [](std::string why) {
        return fail(std::make_error_code(std::errc::permission_denied), std::move(why));
    };
    if (auto use = specialUse(ip)) {
        return refuse(endpoint + " is never dialled: it is " + std::string(*use));
    }
    const auto in = [&ip](const std::vector<Network>& networks) {
        return std::any_of(networks.begin(), networks.end(),
                           [&ip](const Network& n) { return n.contains(ip); });
    };
    if (allowed_ ? !in(*allowed_) : in(loopback())) {
        return refuse(endpoint + " is outside allowedBackendNetworks" +
                      (allowed_ ? "" : " (by default every address except loopback)"));
    }
    if (ownListener(ip, address.port())) {
        return refuse(endpoint + " port " + std::to_string(address.port()) +
                      " is one of lastmiled's own listening addresses");
    }
    return {};
}

bool AddressFilter::ownListener(const IpAddress& ip, std::uint16_t port) const {
    bool wildcard = false;
    {
        std::lock_guard lock(mu_);
        for (const auto& [listening, p] : listening_) {
            if (p != port) {
                continue;
            }
            if (listening == ip) {
                return true;
            }
            wildcard = wildcard || isWildcard(listening);
        }
    }
    // Outside the lock: a syscall, and only for a port some wildcard listener holds.
    return wildcard && isLocal(ip);
}

void AddressFilter::listen(const SocketAddress& address) {
    std::lock_guard lock(mu_);
    listening_.emplace_back(IpAddress::of(address), address.port());
}

void AddressFilter::forget(const SocketAddress& address) {
    std::lock_guard lock(mu_);
    auto it = std::find(listening_.begin(), listening_.end(),
                        std::make_pair(IpAddress::of(address), address.port()));
    if (it != listening_.end()) {
        listening_.erase(it);
    }
}

}  // namespace lastmile::net
