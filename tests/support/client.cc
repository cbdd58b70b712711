// SPDX-License-Identifier: Apache-2.0
// Blocking test clients on loopback.
#include "tests/support/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace lastmile::test {
namespace {

sockaddr_in parseAddress(const std::string& hostPort) {
    const auto colon = hostPort.rfind(':');
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(hostPort.substr(colon + 1))));
    ::inet_pton(AF_INET, hostPort.substr(0, colon).c_str(), &a.sin_addr);
    return a;
}

}  // namespace

std::uint16_t freePort() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == -1) {
        throw std::runtime_error(std::string("binding a probe socket: ") + std::strerror(errno));
    }
    socklen_t len = sizeof(a);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

UniqueFd dial(const std::string& hostPort, const char* source, int timeoutSeconds) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
    timeval tv{timeoutSeconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (source != nullptr) {
        const int one = 1;
        ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        sockaddr_in local{};
        local.sin_family = AF_INET;
        ::inet_pton(AF_INET, source, &local.sin_addr);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) == -1) {
            throw std::runtime_error(std::string("bind ") + source + ": " + std::strerror(errno));
        }
    }
    const sockaddr_in a = parseAddress(hostPort);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == -1) {
        throw std::runtime_error("connect " + hostPort + ": " + std::strerror(errno));
    }
    return fd;
}

bool sendAll(int fd, std::string_view data) {
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR) {
            continue;  // a signal (e.g. libFuzzer's timeout alarm), not the peer
        }
        if (n <= 0) {
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

ReadResult readToEnd(int fd) {
    ReadResult r;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            r.data.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n == -1 && errno == EINTR) {
            continue;
        }
        r.error = n == 0 ? 0 : errno;
        r.ended = n == 0 || errno == ECONNRESET || errno == EPIPE;
        return r;
    }
}

std::string readExactly(int fd, std::size_t size) {
    std::string out;
    char buf[65536];
    while (out.size() < size) {
        const ssize_t n = ::recv(fd, buf, std::min(sizeof(buf), size - out.size()), 0);
        if (n <= 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

ReadResult exchangeUnix(const std::string& socketPath, const std::string& bytes,
                        int timeoutSeconds) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval timeout{timeoutSeconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socketPath.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == -1) {
        throw std::runtime_error("cannot connect to " + socketPath);
    }
    sendAll(fd.get(), bytes);
    ::shutdown(fd.get(), SHUT_WR);
    return readToEnd(fd.get());
}

ApiResponse apiRequest(const std::string& socketPath, const std::string& method,
                       const std::string& path, const std::string& body) {
    auto answer = exchangeUnix(socketPath, method + " " + path + " HTTP/1.1\r\nHost: lastmile\r\n" +
                                               "Content-Type: application/json\r\n" +
                                               "Connection: close\r\nContent-Length: " +
                                               std::to_string(body.size()) + "\r\n\r\n" + body)
                      .data;
    auto headEnd = answer.find("\r\n\r\n");
    if (answer.rfind("HTTP/1.1 ", 0) != 0 || headEnd == std::string::npos) {
        return {};
    }
    return {std::stoi(answer.substr(9, 3)), answer.substr(headEnd + 4)};
}

}  // namespace lastmile::test
