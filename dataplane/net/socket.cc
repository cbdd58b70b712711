// SPDX-License-Identifier: Apache-2.0
// Socket addresses and listening/connecting sockets.
#include "dataplane/net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>

namespace lastmile::net {

Result<SocketAddress> SocketAddress::parse(std::string_view ip, std::uint16_t port) {
    SocketAddress a;
    const std::string text(ip);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a.length_ = sizeof(sockaddr_in);
        return a;
    }
    if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.length_ = sizeof(sockaddr_in6);
        return a;
    }
    return fail(Errc::Invalid, "\"" + text + "\" is not an IPv4 or IPv6 address");
}

Result<SocketAddress> SocketAddress::localOf(int fd) {
    SocketAddress a;
    a.length_ = sizeof(a.storage_);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage_), &a.length_) == -1) {
        return failErrno("getsockname");
    }
    return a;
}

std::uint16_t SocketAddress::port() const noexcept {
    if (family() == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    }
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

std::string SocketAddress::toString() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                    sizeof(buf));
        return "[" + std::string(buf) + "]:" + std::to_string(port());
    }
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                sizeof(buf));
    return std::string(buf) + ":" + std::to_string(port());
}

Result<UniqueFd> listenTcp(const SocketAddress& address, int backlog,
                           const std::function<Status(int fd)>& beforeListen) {
    UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return failErrno("socket for " + address.toString());
    }
    const int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
        return failErrno("socket options for " + address.toString());
    }
    if (address.family() == AF_INET6 &&
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1) {
        return failErrno("IPV6_V6ONLY for " + address.toString());
    }
    if (::bind(fd.get(), address.get(), address.length()) == -1) {
        return failErrno("binding " + address.toString());
    }
    if (beforeListen) {
        if (auto s = beforeListen(fd.get()); !s) {
            return fail(s.error().code(), s.error().context() + " for " + address.toString());
        }
    }
    if (::listen(fd.get(), backlog) == -1) {
        return failErrno("listening on " + address.toString());
    }
    return fd;
}

Result<UniqueFd> duplicate(int fd) {
    UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!copy.valid()) {
        return failErrno("duplicating a listening socket");
    }
    return copy;
}

bool isListening(int fd) noexcept {
    int listening = 0;
    socklen_t len = sizeof(listening);
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening != 0;
}

Result<UniqueFd> tcpSocket(int family) {
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return failErrno("socket");
    }
    setNoDelay(fd.get());
    return fd;
}

void setNoDelay(int fd) noexcept {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace lastmile::net
