// SPDX-License-Identifier: Apache-2.0
// Endpoint: an IPv4 or IPv6 address and port as the interception programs key them.
#pragma once

#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace lastmile::bpf {

// bpf/ sits below dataplane/, so it cannot take net::SocketAddress; convert through
// fromSockaddr(address.get(), address.length()). IPv4 is held as ::ffff:a.b.c.d, so an
// IPv4-mapped IPv6 address and the plain IPv4 one are the same Endpoint.
class Endpoint {
public:
    // An IPv4 or IPv6 literal (no brackets, no names) and a port; Errc::Invalid otherwise.
    static Result<Endpoint> parse(std::string_view ip, std::uint16_t port);
    // AF_INET or AF_INET6 only; Errc::Invalid for another family or a short length.
    static Result<Endpoint> fromSockaddr(const sockaddr* address, socklen_t length);
    // getsockname() and getpeername() of `fd`.
    static Result<Endpoint> localOf(int fd);
    static Result<Endpoint> peerOf(int fd);
    // Built from the 16 network-order bytes and a host-order port, as the BPF maps hold them.
    static Endpoint fromBytes(const std::array<std::uint8_t, 16>& bytes, std::uint16_t port);

    const std::array<std::uint8_t, 16>& bytes() const noexcept { return bytes_; }
    std::uint16_t port() const noexcept { return port_; }
    // IPv4, or IPv4-mapped IPv6.
    bool isV4() const noexcept;
    // AF_INET for isV4(), else AF_INET6; `length` receives the size to pass to connect/bind.
    sockaddr_storage toSockaddr(socklen_t& length) const noexcept;
    // "10.0.0.1:443" or "[fd00::1]:443".
    std::string toString() const;

    auto operator<=>(const Endpoint&) const = default;

private:
    std::array<std::uint8_t, 16> bytes_{};
    std::uint16_t port_ = 0;
};

}  // namespace lastmile::bpf
