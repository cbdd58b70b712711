// SPDX-License-Identifier: Apache-2.0
// Endpoint conversions from and to socket addresses and text.
#include "bpf/endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace lastmile::bpf {
namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

using SockNameFn = int (*)(int, sockaddr*, socklen_t*);

Result<Endpoint> nameOf(int fd, SockNameFn fn, const char* what) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    if (fn(fd, reinterpret_cast<sockaddr*>(&storage), &length) == -1) {
        return failErrno(what);
    }
    return Endpoint::fromSockaddr(reinterpret_cast<const sockaddr*>(&storage), length);
}

}  // namespace

Result<Endpoint> Endpoint::parse(std::string_view ip, std::uint16_t port) {
    const std::string text(ip);
    Endpoint e;
    e.port_ = port;
    in_addr v4{};
    if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
        std::memcpy(e.bytes_.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
        std::memcpy(e.bytes_.data() + 12, &v4, sizeof(v4));
        return e;
    }
    if (::inet_pton(AF_INET6, text.c_str(), e.bytes_.data()) == 1) {
        return e;
    }
    return fail(Errc::Invalid, "\"" + text + "\" is not an IPv4 or IPv6 address");
}

Result<Endpoint> Endpoint::fromSockaddr(const sockaddr* address, socklen_t length) {
    Endpoint e;
    if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
        std::memcpy(e.bytes_.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
        std::memcpy(e.bytes_.data() + 12, &v4->sin_addr, sizeof(v4->sin_addr));
        e.port_ = ntohs(v4->sin_port);
        return e;
    }
    if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
        std::memcpy(e.bytes_.data(), &v6->sin6_addr, sizeof(v6->sin6_addr));
        e.port_ = ntohs(v6->sin6_port);
        return e;
    }
    return fail(Errc::Invalid, "not an IPv4 or IPv6 socket address");
}

Result<Endpoint> Endpoint::localOf(int fd) { return nameOf(fd, ::getsockname, "getsockname"); }

Result<Endpoint> Endpoint::peerOf(int fd) { return nameOf(fd, ::getpeername, "getpeername"); }

Endpoint Endpoint::fromBytes(const std::array<std::uint8_t, 16>& bytes, std::uint16_t port) {
    Endpoint e;
    e.bytes_ = bytes;
    e.port_ = port;
    return e;
}

bool Endpoint::isV4() const noexcept {
    return std::memcmp(bytes_.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

sockaddr_storage Endpoint::toSockaddr(socklen_t& length) const noexcept {
    sockaddr_storage storage{};
    if (isV4()) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
        v4->sin_family = AF_INET;
        std::memcpy(&v4->sin_addr, bytes_.data() + 12, sizeof(v4->sin_addr));
        v4->sin_port = htons(port_);
        length = sizeof(sockaddr_in);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
        v6->sin6_family = AF_INET6;
        std::memcpy(&v6->sin6_addr, bytes_.data(), sizeof(v6->sin6_addr));
        v6->sin6_port = htons(port_);
        length = sizeof(sockaddr_in6);
    }
    return storage;
}

std::string Endpoint::toString() const {
    char text[INET6_ADDRSTRLEN] = {};
    if (isV4()) {
        ::inet_ntop(AF_INET, bytes_.data() + 12, text, sizeof(text));
        return std::string(text) + ":" + std::to_string(port_);
    }
    ::inet_ntop(AF_INET6, bytes_.data(), text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(port_);
}

}  // namespace lastmile::bpf
