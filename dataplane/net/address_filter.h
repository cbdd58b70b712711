// SPDX-License-Identifier: Apache-2.0
// AddressFilter: which backend addresses lastmiled may dial (allowed networks, own listeners).
#pragma once

#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "dataplane/net/socket.h"

namespace lastmile::net {

// An IP address as every check compares it: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
// its IPv4 form, because a dual-stack socket dialling one reaches the IPv4 address.
class IpAddress {
public:
    // Exactly what inet_pton takes: dotted-quad IPv4 (no "127.1", hex, octal or leading
    // zeros) or IPv6 without brackets or zone id. nullopt otherwise.
    static std::optional<IpAddress> parse(std::string_view text);
    // The address part of `address`.
    static IpAddress of(const SocketAddress& address);

    int family() const noexcept { return family_; }  // AF_INET or AF_INET6
    std::string toString() const;

    auto operator<=>(const IpAddress&) const = default;

private:
    friend class Network;
    int family_ = AF_INET;
    std::array<std::uint8_t, 16> bytes_{};  // IPv4 uses the first 4
};

// An IP network in CIDR notation.
class Network {
public:
    // "10.0.0.0/8", "fd00::/8": an address IpAddress::parse takes, "/", and a prefix length in
    // decimal without leading zeros, at most 32 (IPv4) or 128 (IPv6). The address must be the
    // network's first one ("10.0.0.1/8" is refused: it reads like a host but means a network).
    // An IPv4-mapped network (::ffff:0:0/96 or longer) becomes its IPv4 form. Errc::Invalid
    // otherwise, naming the text.
    static Result<Network> parse(std::string_view text);

    bool contains(const IpAddress& address) const noexcept;
    std::string toString() const;

    bool operator==(const Network&) const = default;

private:
    IpAddress base_;
    unsigned prefix_ = 0;
};

// Why `address` is never dialled whatever allowedBackendNetworks says, as a phrase that
// follows "is" / "may not be" ("in the link-local range (169.254.0.0/16, fe80::/10)"), or
// nullopt. Kubernetes refuses the same unspecified, link-local and multicast endpoints;
// IPv4-compatible IPv6 addresses are refused too, since a sit tunnel delivers them to the
// embedded IPv4 address past every IPv4 check.
std::optional<std::string_view> specialUse(const IpAddress& address);

// The dial check every backend connection passes. Thread-safe: workers check while the
// control thread records listeners.
class AddressFilter {
public:
    // `allowed`: the networks of allowedBackendNetworks; nullopt is the default, every
    // unicast address except loopback (127.0.0.0/8, ::1).
    explicit AddressFilter(std::optional<std::vector<Network>> allowed = std::nullopt);
    AddressFilter(const AddressFilter&) = delete;
    AddressFilter& operator=(const AddressFilter&) = delete;

    // OK when `address` may be dialled. Otherwise std::errc::permission_denied with a context
    // for the client and the Route's status that names the address and why: a special-use
    // address, outside allowedBackendNetworks, or one of lastmiled's own listening addresses.
    Status check(const SocketAddress& address) const;

    // lastmiled listens on `address` (a Gateway listener or the admin listener): it is never
    // dialled, whatever the networks allow, so a tenant cannot loop lastmiled into itself or
    // reach the admin endpoints. A wildcard address (0.0.0.0, ::) stands for every local
    // address on its port. Counted: one forget() per listen().
    void listen(const SocketAddress& address);
    void forget(const SocketAddress& address);

private:
    bool ownListener(const IpAddress& ip, std::uint16_t port) const;

    const std::optional<std::vector<Network>> allowed_;
    mutable std::mutex mu_;
    std::vector<std::pair<IpAddress, std::uint16_t>> listening_;  // guarded by mu_
};

}  // namespace lastmile::net
