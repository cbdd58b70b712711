// SPDX-License-Identifier: Apache-2.0
// Socket addresses and the few socket calls the dataplane makes outside io_uring.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/base/result.h"
#include "dataplane/base/unique_fd.h"

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

// A non-blocking listening TCP socket on `address`. With `reusePort` every worker binds its
// own socket to the same address and the kernel spreads connections across them.
Result<UniqueFd> listenTcp(const SocketAddress& address, bool reusePort, int backlog = 4096);

// A non-blocking TCP socket for connecting to `family` addresses, TCP_NODELAY set.
Result<UniqueFd> tcpSocket(int family);

// Small writes of request/response traffic go out at once.
void setNoDelay(int fd) noexcept;

}  // namespace lastmile::net
