// SPDX-License-Identifier: Apache-2.0
// Allow-lists for the TLS names a policy option may carry: cipher suites, groups, signature
// algorithms, ALPN protocols.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lastmile::tls {

// An option's list reaches OpenSSL's list parsers, which also understand keywords (ALL,
// aNULL...), operators (!, +, -), @SECLEVEL directives and several separators: any of them
// could switch off authentication or encryption. So each entry must be one exact name, checked
// alone against what this OpenSSL offers, before any list is handed to OpenSSL. The control
// plane checks options with these functions to report them, and compile() checks again, so a
// spec that bypassed the control plane still cannot weaken a context.

struct CipherSuiteName {
    std::string opensslName;  // the form SSL_CTX_set_cipher_list / set_ciphersuites take
    bool tls13 = false;       // set with SSL_CTX_set_ciphersuites, not the TLS 1.2 cipher list
};

// `name` in OpenSSL form (ECDHE-ECDSA-AES128-GCM-SHA256) or IANA form
// (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256), case-sensitive. Allowed are the suites this
// OpenSSL offers to a TLS 1.2/1.3 client at security level 2 that authenticate the server with
// a certificate and encrypt. Errc::Invalid otherwise; the context says why, without the name:
// a known suite without authentication or encryption is refused for that reason.
Result<CipherSuiteName> allowedCipherSuite(std::string_view name);

// One group name (X25519, P-256, secp384r1, ffdhe2048...) that this OpenSSL accepts alone.
Status allowedGroup(std::string_view name);

// One signature algorithm in the TLS name form (ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256,
// ed25519...) that this OpenSSL accepts alone; the "RSA+SHA256" form is not taken.
Status allowedSignatureAlgorithm(std::string_view name);

// One ALPN protocol: 1..255 bytes of printable ASCII without space or comma.
Status allowedAlpnProtocol(std::string_view name);

enum class NameKind { CipherSuite, Group, SignatureAlgorithm, AlpnProtocol };

// One entry per name the allow-list of `kind` refuses, `"NAME" REASON`, in list order. Empty
// when every name is allowed.
std::vector<std::string> refusedNames(NameKind kind, const std::vector<std::string>& names);

}  // namespace lastmile::tls
