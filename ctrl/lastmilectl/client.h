// SPDX-License-Identifier: Apache-2.0
// HTTP access to lastmiled's API: a small Transport interface, its curl implementation and the
// paths.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ctrl/api/kinds.h"
#include "base/result.h"

namespace lastmile::ctl {

struct HttpResponse {
    long status = 0;   // HTTP status code
    std::string body;  // raw body (JSON for every API answer)
};

// One HTTP exchange with lastmiled. Tests substitute canned answers.
class Transport {
public:
    virtual ~Transport() = default;
    // `path` starts with '/'. An empty `body` sends none. Fails (Errc::Unavailable) only
    // when no HTTP answer arrived; the context is the complete one-line message for the user.
    virtual Result<HttpResponse> send(std::string_view method, const std::string& path,
                                      const std::string& body) = 0;
};

// "unix:///run/lastmile/api.sock" -> "/run/lastmile/api.sock". Anything else (tcp://, a bare
// path, an empty socket path) fails with Errc::Invalid and a message saying what is expected.
Result<std::string> parseServer(std::string_view server);

// Transport over libcurl and a unix socket (CURLOPT_UNIX_SOCKET_PATH).
class CurlTransport final : public Transport {
public:
    // `server` as given by --server; validated with parseServer.
    static Result<std::unique_ptr<CurlTransport>> create(std::string_view server);
    ~CurlTransport() override;
    CurlTransport(const CurlTransport&) = delete;
    CurlTransport& operator=(const CurlTransport&) = delete;

    Result<HttpResponse> send(std::string_view method, const std::string& path,
                              const std::string& body) override;

private:
    CurlTransport(std::string server, std::string socketPath, void* curl);

    std::string server_;
    std::string socketPath_;
    void* curl_;  // CURL*, kept opaque so that users of this header need no curl headers
};

// "/projects/P/apis/gateway.networking.k8s.io/v1/namespaces/NS/backendtlspolicies" for a
// namespace, ".../v1/backendtlspolicies" across all namespaces (ns empty). `apiVersion`
// "" means the kind's storage version.
std::string collectionPath(const std::string& project, const ctrl::KindInfo& kind,
                           const std::string& apiVersion, const std::string& ns);
// The collection path plus "/NAME".
std::string itemPath(const std::string& project, const ctrl::KindInfo& kind,
                     const std::string& apiVersion, const std::string& ns, const std::string& name);
// GET path of the project's compiled profiles.
std::string profilesPath(const std::string& project);
// The fleet's live nodes (lastmile.dev/v1 nodes): what `get nodes` shows.
std::string nodesPath(const std::string& project);

}  // namespace lastmile::ctl
