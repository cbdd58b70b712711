// SPDX-License-Identifier: Apache-2.0
// ProfileSpec: what one backend's TLS origination must do, as plain comparable data (STYLE.md §6).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "drivers/offload.h"

namespace lastmile::tls {

enum class TlsVersion { Tls12, Tls13 };

using drivers::Offload;

struct SanMatcher {
    enum class Type { Hostname, Uri };
    Type type = Type::Hostname;
    std::string value;  // Hostname entries may start with "*." (matches only a literal "*." SAN)

    bool operator==(const SanMatcher&) const = default;
};

struct ClientCertificate {
    std::string certChainPem;  // leaf first
    std::string keyPem;

    bool operator==(const ClientCertificate&) const = default;
};

// Identifies the (Service, port) a profile serves.
struct BackendKey {
    std::string ns;
    std::string service;
    std::uint16_t port = 0;

    auto operator<=>(const BackendKey&) const = default;
};

struct ProfileSpec {
    BackendKey backend;
    std::string policy;  // "namespace/name" of the governing BackendTLSPolicy

    std::string sni;  // always validation.hostname
    // Trust: the system store, or the concatenation of every referenced bundle.
    bool systemTrust = false;
    std::string caBundlePem;
    // Empty: the certificate must match `sni`. Otherwise at least one entry must match.
    std::vector<SanMatcher> subjectAltNames;

    TlsVersion minVersion = TlsVersion::Tls12;
    TlsVersion maxVersion = TlsVersion::Tls13;
    std::vector<std::string> cipherSuites;  // TLS 1.2 OpenSSL/IANA names and TLS 1.3 suites; empty = default
    std::vector<std::string> ecdhCurves;    // empty = default
    std::vector<std::string> signatureAlgorithms;
    std::vector<std::string> alpnProtocols;
    bool sessionResumption = true;
    Offload offload = Offload::Auto;
    // `lastmile.dev/warm-pool`: idle TLS connections to keep open to the backend; 0 = none.
    std::uint32_t warmPool = 0;
    std::optional<ClientCertificate> clientCertificate;  // from the Gateway, not the policy

    // Non-empty: the policy cannot be honoured; every connection is refused with this reason.
    std::string failClosedReason;

    bool operator==(const ProfileSpec&) const = default;
};

}  // namespace lastmile::tls
