// SPDX-License-Identifier: Apache-2.0
// libmicrohttpd glue: buffers request bodies and hands whole requests to the handler.
#include "ctrl/server/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace lastmile::ctrl {

struct HttpServer::State {
    HttpHandler handler;
    UniqueFd listener;  // MHD borrows it; closed after the daemon stops
    // SO_PEERCRED means something only on unix sockets: on TCP Linux answers with the
    // overflow uid, which must not pass for a local user.
    bool unixSocket = false;
};

namespace {

struct PendingRequest {
    std::string body;
    bool tooLarge = false;
    std::optional<PeerCredentials> peer;
};

std::optional<PeerCredentials> peerOf(MHD_Connection* connection) {
    const MHD_ConnectionInfo* info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (info == nullptr ||
        ::getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
        return std::nullopt;
    }
    return PeerCredentials{cred.uid, cred.gid};
}

MHD_Result queue(MHD_Connection* connection, const HttpResponse& r) {
    MHD_Response* response = MHD_create_response_from_buffer(
        r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) {
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, r.contentType.c_str());
    MHD_Result ok = MHD_queue_response(connection, static_cast<unsigned>(r.status), response);
    MHD_destroy_response(response);
    return ok;
}

MHD_Result onRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char* /*version*/, const char* uploadData, size_t* uploadDataSize,
                     void** perRequest) {
    auto* state = static_cast<HttpServer::State*>(cls);
    if (*perRequest == nullptr) {
        auto* pending = new PendingRequest();
        if (state->unixSocket) {
            pending->peer = peerOf(connection);
        }
        *perRequest = pending;
        return MHD_YES;
    }
    auto* pending = static_cast<PendingRequest*>(*perRequest);
    if (*uploadDataSize != 0) {
        if (pending->body.size() + *uploadDataSize > kMaxRequestBody) {
            pending->tooLarge = true;
        } else {
            pending->body.append(uploadData, *uploadDataSize);
        }
        *uploadDataSize = 0;
        return MHD_YES;
    }
    if (pending->tooLarge) {
        return queue(connection, {413, "text/plain", "request body too large\n"});
    }
    HttpRequest request{method, url, std::move(pending->body), pending->peer};
    return queue(connection, state->handler(request));
}

void onCompleted(void* /*cls*/, MHD_Connection* /*connection*/, void** perRequest,
                 MHD_RequestTerminationCode /*code*/) {
    delete static_cast<PendingRequest*>(*perRequest);
    *perRequest = nullptr;
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<State> state, MHD_Daemon* daemon)
    : state_(std::move(state)), daemon_(daemon) {}

HttpServer::~HttpServer() { MHD_stop_daemon(daemon_); }

Result<std::unique_ptr<HttpServer>> HttpServer::serve(UniqueFd listener, HttpHandler handler) {
    sockaddr_storage bound{};
    socklen_t boundLen = sizeof(bound);
    if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &boundLen) == -1) {
        return failErrno("reading the listener's address");
    }
    auto state = std::make_unique<State>(
        State{std::move(handler), std::move(listener), bound.ss_family == AF_UNIX});
    // One internal polling thread: control-plane requests are few and handled in order. poll,
    // not epoll: libmicrohttpd 0.9.75 with epoll leaves a connection whose client half-closed
    // mid-request (a truncated upload) open until the 30 s timeout; with poll it sees the
    // end of input and closes it at once.
    MHD_Daemon* daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr,
        &onRequest, state.get(), MHD_OPTION_LISTEN_SOCKET, state->listener.get(),
        MHD_OPTION_NOTIFY_COMPLETED, &onCompleted, nullptr, MHD_OPTION_CONNECTION_TIMEOUT,
        30U, MHD_OPTION_END);
    if (daemon == nullptr) {
        return fail(Errc::Internal, "starting the HTTP server");
    }
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(state), daemon));
}

Result<UniqueFd> listenUnix(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        return fail(Errc::Invalid, "unix socket path \"" + path + "\" is empty or too long");
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return failErrno("creating unix socket");
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return fail(Errc::AlreadyExists, path + " exists and is not a socket");
        }
        // Another live server answers on it: refuse rather than steal its socket.
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (probe.valid() &&
            ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
            return fail(Errc::AlreadyExists, "another server is listening on " + path);
        }
        if (::unlink(path.c_str()) == -1) {
            return failErrno("removing stale socket " + path);
        }
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == -1) {
        return failErrno("binding " + path);
    }
    if (::chmod(path.c_str(), 0660) == -1) {
        return failErrno("setting mode of " + path);
    }
    if (::listen(fd.get(), 64) == -1) {
        return failErrno("listening on " + path);
    }
    return fd;
}

Result<std::string> localAddress(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == -1) {
        return failErrno("reading the bound address");
    }
    char host[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    if (addr.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
    }
    return fail(Errc::Invalid, "not a TCP socket");
}

Result<UniqueFd> listenTcp(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) {
        return fail(Errc::Invalid, "address \"" + address + "\" is not host:port");
    }
    std::string host = address.substr(0, colon);
    std::string port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
        rc != 0) {
        return fail(Errc::Invalid,
                    "address \"" + address + "\": " + ::gai_strerror(rc) + " (numeric host:port expected)");
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
    UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return failErrno("creating socket for " + address);
    }
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
        return failErrno("setting SO_REUSEADDR on " + address);
    }
    if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) == -1) {
        return failErrno("binding " + address);
    }
    if (::listen(fd.get(), 64) == -1) {
        return failErrno("listening on " + address);
    }
    return fd;
}

}  // namespace lastmile::ctrl
