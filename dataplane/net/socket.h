// SPDX-License-Identifier: Apache-2.0
// Socket addresses and the few socket calls the dataplane makes outside io_uring.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lastmile::net {

class SocketAddress {
public:
    // An IPv4 or IPv6 literal (no brackets, no names) and a port; Errc::Invalid otherwise.
    static Result<SocketAddress> parse(std::string_view ip, std::uint16_t port);
    // What getsockname() reports for `fd`.
    static Result<SocketAddress> localOf(int fd);

    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
    socklen_t length() const noexcept { return length_; }
    int family() const noexcept { return storage_.ss_family; }
    std::uint16_t port() const noexcept;
    // "127.0.0.1:8443" or "[::1]:8443".
    std::string toString() const;

private:
    sockaddr_storage storage_{};
    socklen_t length_ = 0;
};

// A non-blocking listening TCP socket on `address`, without SO_REUSEPORT: a listener binds
// once and its workers share that one socket (dup), so no other socket, of this process or
// another of the same user, can join it and be handed its connections. `beforeListen` runs
// on the bound socket before listen(), for options that must precede it (IP_TRANSPARENT).
Result<UniqueFd> listenTcp(const SocketAddress& address, int backlog = 4096,
                           const std::function<Status(int fd)>& beforeListen = {});

// Another descriptor (close-on-exec) of the socket `fd`.
Result<UniqueFd> duplicate(int fd);

// False once `fd` no longer listens, e.g. after shutdown() of a listening socket.
bool isListening(int fd) noexcept;

// A non-blocking TCP socket for connecting to `family` addresses, TCP_NODELAY set.
Result<UniqueFd> tcpSocket(int family);

// Small writes of request/response traffic go out at once.
void setNoDelay(int fd) noexcept;

}  // namespace lastmile::net
