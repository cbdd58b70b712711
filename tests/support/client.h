// SPDX-License-Identifier: Apache-2.0
// Blocking test clients on loopback. Every socket has send and receive timeouts, so a broken
// proxy fails the test instead of hanging it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/unique_fd.h"

namespace lastmile::test {

// A port nobody listens on right now: bind 127.0.0.1:0, read it, close.
std::uint16_t freePort();

// Connects to "IPv4:PORT", from `source` (an IPv4 address) when given. Throws
// std::runtime_error when the socket cannot be made or the connect fails.
UniqueFd dial(const std::string& hostPort, const char* source = nullptr, int timeoutSeconds = 10);

// False when the peer stopped taking bytes (closed, reset, or the send timed out).
bool sendAll(int fd, std::string_view data);

// How a read loop ended.
struct ReadResult {
    std::string data;
    bool ended = false;  // EOF or connection reset; false: the receive timed out
    int error = 0;       // errno of the receive that ended it (ECONNRESET: a reset); 0: EOF
};

// Everything until EOF, a reset or the receive timeout.
ReadResult readToEnd(int fd);

// `size` bytes, or fewer when the stream ended or the receive timed out first.
std::string readExactly(int fd, std::size_t size);

// Sends `bytes` on a new connection to the unix socket `socketPath` (lastmiled's API),
// half-closes it, and reads until the server closes it or `timeoutSeconds` pass (ended =
// false). Throws when the connect fails.
ReadResult exchangeUnix(const std::string& socketPath, const std::string& bytes,
                        int timeoutSeconds = 30);

struct ApiResponse {
    int status = 0;  // 0: no HTTP answer (the connection died)
    std::string body;
};

// One HTTP/1.1 exchange on lastmiled's API socket, for requests lastmilectl does not make.
ApiResponse apiRequest(const std::string& socketPath, const std::string& method,
                       const std::string& path, const std::string& body);

}  // namespace lastmile::test
