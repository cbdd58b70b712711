// SPDX-License-Identifier: Apache-2.0
// HttpServer: a small libmicrohttpd front for the API (unix socket) and admin (TCP) listeners.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ctrl/server/api_access.h"
#include "base/result.h"
#include "base/unique_fd.h"

struct MHD_Daemon;

namespace lastmile::ctrl {

struct HttpRequest {
    std::string method;  // "GET", "PUT", ...
    std::string path;    // without the query string
    std::string body;
    // The connecting process, on a unix socket (SO_PEERCRED); absent on TCP.
    std::optional<PeerCredentials> peer;
};

struct HttpResponse {
    int status = 200;
    std::string contentType = "application/json";
    std::string body;
};

// Called on the server's own thread, one request at a time. Must not throw.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Largest request body accepted; a manifest bigger than this is refused with 413.
inline constexpr std::size_t kMaxRequestBody = 4 * 1024 * 1024;

class HttpServer {
public:
    // Serves `handler` on an already listening socket (unix or TCP), taking ownership of it.
    static Result<std::unique_ptr<HttpServer>> serve(UniqueFd listener, HttpHandler handler);
    ~HttpServer();  // stops accepting and waits for the request in flight

    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    struct State;  // opaque: what the libmicrohttpd callbacks need

private:
    HttpServer(std::unique_ptr<State> state, MHD_Daemon* daemon);

    std::unique_ptr<State> state_;
    MHD_Daemon* daemon_;
};

// A listening unix socket at `path` (mode 0660). A stale socket file is replaced, but if
// another process still accepts on it, fails with Errc::AlreadyExists.
Result<UniqueFd> listenUnix(const std::string& path);

// "host:port" a TCP socket is bound to (what port 0 became), "[v6]:port" for IPv6.
Result<std::string> localAddress(int fd);

// A listening TCP socket on "host:port" ("127.0.0.1:9090", "[::1]:9090", ":9090" = all).
Result<UniqueFd> listenTcp(const std::string& address);

}  // namespace lastmile::ctrl
