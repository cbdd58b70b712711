// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: no request may crash or hang lastmiled's real API server.
//
// One server per process, as lastmiled runs it: libmicrohttpd on a unix socket in a temporary
// directory, handleApiRequest over a SQLite store there, the caller authorised by SO_PEERCRED.
// Each input becomes one connection. Input layout (first byte = flags):
//   bit 0 set: the rest is sent as raw bytes (request line, headers and body as they come);
//   otherwise byte 1 picks the method, then "PATH\nHEADER LINES...\n\nBODY": the target adds
//   Content-Length and Connection: close, so the body reaches the handler;
//   bit 1: only half of the body is sent before the write side closes (a truncated upload);
//   bit 2: PATH is prefixed with a valid collection prefix, so inputs reach the object routes.
// Objects written by one input stay for the next ones: the store is bounded by the input
// size (libFuzzer's -max_len) times the number of distinct names, never per-input files.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "ctrl/server/api_access.h"
#include "ctrl/server/api_routes.h"
#include "ctrl/server/controller.h"
#include "ctrl/server/http_server.h"
#include "ctrl/store/store.h"
#include "tests/support/client.h"
#include "tests/support/process.h"

namespace lastmile::ctrl {
namespace {

constexpr std::array<std::string_view, 8> kMethods{"GET",  "PUT",     "POST", "DELETE",
                                                   "HEAD", "OPTIONS", "PATCH", "G\xffT"};

class ApiUnderTest {
public:
    ApiUnderTest() {
        // The object is never destroyed (see LLVMFuzzerTestOneInput): remove its store and
        // socket at exit.
        static std::string dir = dir_.path();
        std::atexit([] { std::filesystem::remove_all(dir); });
        socketPath_ = dir_.path() + "/api.sock";
        Clock clock = [] {
            return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
        };
        auto store = openSqliteStore(dir_.path() + "/lastmile.db", clock);
        auto access = ApiAccess::resolve({}, ::geteuid());
        if (!store || !access) {
            std::abort();
        }
        store_ = std::move(*store);
        access_ = std::make_unique<ApiAccess>(std::move(*access));
        controller_ = std::make_unique<Controller>(*store_, ReconcilerConfig{}, profiles_, clock);
        auto listener = listenUnix(socketPath_);
        if (!controller_->start() || !listener) {
            std::abort();
        }
        auto server = HttpServer::serve(std::move(*listener), [this](const HttpRequest& r) {
            return handleApiRequest(*controller_, *access_, r);
        });
        if (!server) {
            std::abort();
        }
        server_ = std::move(*server);
    }

    // Sends `request` on a fresh connection, half-closes, and reads until the server closes.
    // A server that neither answers nor closes is a hang: libFuzzer's -timeout reports it
    // first; the socket timeout only bounds runs without one.
    void exchange(std::string_view request) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        timeval timeout{60, 0};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, socketPath_.c_str(), socketPath_.size() + 1);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == -1) {
            std::abort();  // the server stopped accepting
        }
        test::sendAll(fd.get(), request);  // may stop early when the server refuses the rest
        ::shutdown(fd.get(), SHUT_WR);
        if (!test::readToEnd(fd.get()).ended) {
            std::abort();
        }
    }

private:
    test::TempDir dir_;
    std::string socketPath_;
    std::unique_ptr<Store> store_;
    tls::ProfileRegistry profiles_;
    std::unique_ptr<ApiAccess> access_;
    std::unique_ptr<Controller> controller_;
    std::unique_ptr<HttpServer> server_;
};

std::string structuredRequest(std::uint8_t flags, std::string_view rest) {
    if (rest.empty()) {
        return {};
    }
    std::string_view method = kMethods[static_cast<std::uint8_t>(rest[0]) % kMethods.size()];
    rest.remove_prefix(1);
    auto pathEnd = rest.find('\n');
    std::string_view path = rest.substr(0, pathEnd);
    rest = pathEnd == std::string_view::npos ? std::string_view() : rest.substr(pathEnd + 1);
    auto headersEnd = rest.find("\n\n");
    std::string_view headers = rest.substr(0, headersEnd);
    std::string_view body =
        headersEnd == std::string_view::npos ? std::string_view() : rest.substr(headersEnd + 2);

    std::string request(method);
    request += ' ';
    if ((flags & 4) != 0) {
        request += "/projects/fuzz/api/v1/namespaces/default/";
    }
    request.append(path);
    request += " HTTP/1.1\r\nHost: lastmile\r\n";
    for (std::size_t start = 0; start < headers.size();) {
        auto end = std::min(headers.find('\n', start), headers.size());
        request.append(headers.substr(start, end - start));
        request += "\r\n";
        start = end + 1;
    }
    request += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    request.append((flags & 2) != 0 ? body.substr(0, body.size() / 2) : body);
    return request;
}

}  // namespace
}  // namespace lastmile::ctrl

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace lastmile::ctrl;
    // Never destroyed: the server thread runs until the process exits. Stopping it from a
    // static destructor would leave OpenSSL's per-thread random state (drawn for object uids)
    // unreachable before LeakSanitizer's exit check, a leak report for a thread that ended.
    static ApiUnderTest& api = *new ApiUnderTest();
    if (size == 0) {
        return 0;
    }
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    if ((data[0] & 1) != 0) {
        api.exchange(rest);
    } else {
        api.exchange(structuredRequest(data[0], rest));
    }
    return 0;
}
