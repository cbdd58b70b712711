// SPDX-License-Identifier: Apache-2.0
// TLS 1.3 traffic secrets kept per SSL, so record engines can derive the session's keys.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace lastmile::drivers::tls {

// The first application traffic secrets of one TLS 1.3 connection (48 bytes at most: SHA-384).
struct TrafficSecrets {
    std::array<std::uint8_t, 48> client{};
    std::array<std::uint8_t, 48> server{};
    std::size_t clientLen = 0;
    std::size_t serverLen = 0;
};

// OpenSSL 3.0 has no API that returns traffic secrets; its keylog callback is the only
// place they appear. Installs a keylog callback on `ctx` (replacing any other: SSLKEYLOGFILE
// style logging and engines that need the secrets are exclusive) that keeps CLIENT_TRAFFIC_SECRET_0 and
// SERVER_TRAFFIC_SECRET_0 in the SSL's ex_data and drops every other line. The copy is
// OPENSSL_cleanse'd and freed with the SSL, or earlier by forgetTrafficSecrets().
void captureTrafficSecrets(SSL_CTX* ctx);

// The secrets captured for `ssl`, or null when none were (not a TLS 1.3 session, or its
// SSL_CTX did not go through captureTrafficSecrets). Both lengths are non-zero when set.
const TrafficSecrets* capturedTrafficSecrets(const SSL* ssl);

// Cleanses and frees the captured secrets now: once the keys are installed nothing needs them.
void forgetTrafficSecrets(SSL* ssl);

}  // namespace lastmile::drivers::tls
