// SPDX-License-Identifier: Apache-2.0
// TestPki: a fresh in-memory CA per test and leaves issued from it (no files, no openssl CLI).
#pragma once

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dataplane/tls/openssl_handles.h"

namespace lastmile::test {

// A certificate with its key, all PEM.
struct IssuedCert {
    std::string certPem;   // the leaf alone
    std::string keyPem;    // PKCS#8
    std::string chainPem;  // leaf first, then the issuing CA
};

class TestPki;

struct IssueOptions {
    std::vector<std::string> dnsNames;  // added after the names passed to issueServer()
    std::vector<std::string> uris;      // URI SANs, e.g. "spiffe://cluster.local/ns/x/sa/y"
    std::vector<std::string> ipAddresses;  // IP SANs, e.g. "127.0.0.1" (servers reached by address)
    // Server leaves: also EKU clientAuth, for servers that dial their own port with their
    // certificate (etcd's JSON gateway does, and then needs it under --client-cert-auth).
    bool alsoClientAuth = false;
    std::string commonName;             // default: the first DNS name (or "lastmile test leaf")
    // Validity relative to `at` (default: the current time when issuing). Offsets build
    // expired (both negative) and not-yet-valid (both positive) certificates.
    std::optional<std::time_t> at;
    std::chrono::seconds notBeforeOffset = std::chrono::hours(-1);
    std::chrono::seconds notAfterOffset = std::chrono::hours(24 * 30);
    // Issue from this CA instead (e.g. one the profile under test does not trust).
    const TestPki* issuer = nullptr;
};

class TestPki {
public:
    // A new ECDSA P-256 CA named "lastmile test CA <random>". Throws on OpenSSL failure.
    TestPki();
    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;
    ~TestPki();

    const std::string& caPem() const noexcept { return caPem_; }
    const std::string& caName() const noexcept { return caName_; }

    // A server leaf (EKU serverAuth) with `dnsNames` as DNS SANs. Throws on OpenSSL failure.
    IssuedCert issueServer(const std::vector<std::string>& dnsNames,
                           const IssueOptions& options = {}) const;
    // One DNS name; a template so that a braced list of names picks the overload above.
    template <typename S>
    requires std::is_convertible_v<const S&, std::string_view> IssuedCert
    issueServer(const S& dnsName, const IssueOptions& options = {})
    const {
        return issueServer(std::vector<std::string>{std::string(std::string_view(dnsName))},
                           options);
    }
    // A client leaf (EKU clientAuth) with subject CN `cn`.
    IssuedCert issueClient(const std::string& cn, const IssueOptions& options = {}) const;

private:
    IssuedCert issue(bool server, const std::vector<std::string>& dnsNames,
                     const IssueOptions& options) const;

    tls::EvpPkeyPtr caKey_;
    tls::X509Ptr caCert_;
    std::string caName_;
    std::string caPem_;
};

// A TLS server context presenting `leaf` (cert chain + key). Throws on OpenSSL failure.
tls::SslCtxPtr makeServerContext(const IssuedCert& leaf);

}  // namespace lastmile::test
