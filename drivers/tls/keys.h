// SPDX-License-Identifier: Apache-2.0
// The record keys of an established session, derived the way OpenSSL derived its own.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include <string_view>

#include "base/result.h"

namespace lastmile::drivers::tls {

// The AEADs every engine outside OpenSSL may carry; CCM, SM4 and ARIA sessions stay on the
// openssl engine.
enum class Aead { Aes128Gcm, Aes256Gcm, Chacha20Poly1305 };
inline constexpr std::size_t kAeadCount = 3;
// "AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305".
std::string_view aeadName(Aead a) noexcept;
// Which of them the suite uses; nullopt for any other (CCM, CBC...).
std::optional<Aead> aeadOf(const SSL_CIPHER* cipher);

// One direction's AEAD state at the first application record.
struct DirectionKeys {
    std::array<std::uint8_t, 32> key{};
    std::size_t keyLen = 0;
    // TLS 1.3 and ChaCha20 (both versions): the 12-byte IV that is XORed with the record
    // sequence number. TLS 1.2 GCM: the 4-byte implicit salt; the other 8 nonce bytes are
    // the explicit nonce carried in each record.
    std::array<std::uint8_t, 12> iv{};
    std::size_t ivLen = 0;
    std::uint64_t sequence = 0;  // of the first record under these keys still to come
    // TLS 1.3: the application traffic secret the key and IV came from, which a KeyUpdate
    // turns into the next one (nextGeneration). Unused in TLS 1.2.
    std::array<std::uint8_t, 48> secret{};
    std::size_t secretLen = 0;
};

// Always from the client's side: tx = client_write, rx = server_write. Cleanses itself.
struct SessionKeys {
    int version = 0;  // TLS1_2_VERSION or TLS1_3_VERSION
    Aead cipher = Aead::Aes128Gcm;
    const EVP_MD* md = nullptr;  // the suite's handshake hash: TLS 1.3 HKDF's
    DirectionKeys tx;
    DirectionKeys rx;

    SessionKeys() = default;
    SessionKeys(const SessionKeys&) = default;
    SessionKeys& operator=(const SessionKeys&) = default;
    ~SessionKeys();
};

// Derives the keys a client holds right after its handshake completed, before any
// application record either way: TLS 1.2 sequence 1 both ways (each Finished was record 0),
// TLS 1.3 sequence 0. TLS 1.3 needs the secrets of captureTrafficSecrets (Errc::Unavailable
// without them); TLS 1.2 uses the session's master secret. Errc::Invalid for a version or
// cipher no engine but openssl carries, Errc::Internal when an OpenSSL KDF fails.
Result<SessionKeys> deriveClientKeys(const SSL* ssl);

// TLS 1.3 KeyUpdate (RFC 8446 §7.2): replaces `d` (keys.tx or keys.rx) with the next
// generation: secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length), then its
// key and IV, sequence 0. Errc::Invalid for TLS 1.2 keys, Errc::Internal when a KDF fails.
Status nextGeneration(const SessionKeys& keys, DirectionKeys& d);

}  // namespace lastmile::drivers::tls
