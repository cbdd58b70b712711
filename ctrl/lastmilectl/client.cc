// SPDX-License-Identifier: Apache-2.0
// HTTP access to lastmiled's API over a unix socket with libcurl.
#include "ctrl/lastmilectl/client.h"

#include <curl/curl.h>

#include <cctype>
#include <mutex>
#include <system_error>

namespace lastmile::ctl {

namespace {

constexpr std::string_view kUnixScheme = "unix://";

size_t appendBody(char* data, size_t size, size_t count, void* user) {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
}

// Path segments come from the command line, so anything outside the unreserved set is
// escaped rather than trusted to be a DNS name.
std::string segment(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
        }
    }
    return out;
}

}  // namespace

Result<std::string> parseServer(std::string_view server) {
    if (server.substr(0, kUnixScheme.size()) != kUnixScheme) {
        return fail(Errc::Invalid, "invalid --server \"" + std::string(server) +
                                       "\": expected unix:///path/to/socket");
    }
    std::string path(server.substr(kUnixScheme.size()));
    if (path.empty() || path.front() != '/') {
        return fail(Errc::Invalid, "invalid --server \"" + std::string(server) +
                                       "\": the socket path must be absolute, as in "
                                       "unix:///run/lastmile/api.sock");
    }
    return path;
}

Result<std::unique_ptr<CurlTransport>> CurlTransport::create(std::string_view server) {
    auto path = parseServer(server);
    if (!path) {
        return fail(std::move(path).error());
    }
    static std::once_flag once;
    static CURLcode globalInit = CURLE_OK;
    std::call_once(once, [] { globalInit = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (globalInit != CURLE_OK) {
        return fail(Errc::Internal,
                    std::string("initializing libcurl: ") + curl_easy_strerror(globalInit));
    }
    CURL* curl = curl_easy_init();
    if (curl == nullptr) {
        return fail(Errc::Internal, "initializing libcurl: curl_easy_init failed");
    }
    return std::unique_ptr<CurlTransport>(new CurlTransport(std::string(server), *path, curl));
}

CurlTransport::CurlTransport(std::string server, std::string socketPath, void* curl)
    : server_(std::move(server)), socketPath_(std::move(socketPath)), curl_(curl) {}

CurlTransport::~CurlTransport() {
    curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<HttpResponse> CurlTransport::send(std::string_view method, const std::string& path,
                                         const std::string& body) {
    CURL* curl = static_cast<CURL*>(curl_);
    curl_easy_reset(curl);
    HttpResponse response;
    char errbuf[CURL_ERROR_SIZE] = {};
    std::string url = "http://localhost" + path;
    std::string verb(method);
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Accept: application/json");
    if (!body.empty()) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    // Without this curl waits for "100 Continue" before sending larger bodies.
    headers = curl_slist_append(headers, "Expect:");

    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socketPath_.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, verb.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, appendBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
    if (!body.empty()) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        // curl's own buffer talks about "localhost port 80", which means nothing for a unix
        // socket; the socket's errno (ENOENT, ECONNREFUSED, EACCES) is what the user needs.
        std::string reason = curl_easy_strerror(rc);
        long osErrno = 0;
        if (curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &osErrno) == CURLE_OK && osErrno != 0) {
            reason += ": " +
                      std::error_code(static_cast<int>(osErrno), std::generic_category()).message();
        } else if (errbuf[0] != '\0') {
            reason = errbuf;
        }
        return fail(Errc::Unavailable,
                    "cannot reach lastmiled at " + server_ + ": " + reason +
                        " (is lastmiled running? set --server or LASTMILE_SERVER)");
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    return response;
}

std::string collectionPath(const std::string& project, const ctrl::KindInfo& kind,
                           const std::string& apiVersion, const std::string& ns) {
    std::string version = apiVersion.empty() ? kind.storageApiVersion() : apiVersion;
    std::string path = "/projects/" + segment(project);
    path += kind.group.empty() ? "/api/" + version : "/apis/" + version;
    if (!ns.empty()) {
        path += "/namespaces/" + segment(ns);
    }
    return path + "/" + kind.plural;
}

std::string itemPath(const std::string& project, const ctrl::KindInfo& kind,
                     const std::string& apiVersion, const std::string& ns,
                     const std::string& name) {
    return collectionPath(project, kind, apiVersion, ns) + "/" + segment(name);
}

std::string profilesPath(const std::string& project) {
    return "/projects/" + segment(project) + "/apis/lastmile.dev/v1/profiles";
}

std::string nodesPath(const std::string& project) {
    return "/projects/" + segment(project) + "/apis/lastmile.dev/v1/nodes";
}

}  // namespace lastmile::ctl
