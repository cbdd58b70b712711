// SPDX-License-Identifier: Apache-2.0
// Key derivation through OpenSSL's own KDFs (TLS13-KDF, TLS1-PRF), so labels and hashes match it.
#include "drivers/tls/keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <tuple>

#include "base/handle.h"
#include "drivers/tls/secrets.h"

namespace lastmile::drivers::tls {
namespace {

using EvpKdfCtxPtr = Handle<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using EvpKdfPtr = Handle<EVP_KDF, EVP_KDF_free>;

struct CipherSizes {
    std::size_t key;
    std::size_t tls12Iv;  // the key block's fixed IV: 4-byte salt for GCM, 12 for ChaCha20
};

CipherSizes sizesOf(Aead c) {
    switch (c) {
        case Aead::Aes128Gcm:
            return {16, 4};
        case Aead::Aes256Gcm:
            return {32, 4};
        case Aead::Chacha20Poly1305:
            return {32, 12};
    }
    return {0, 0};
}

Result<EvpKdfCtxPtr> newKdf(const char* name) {
    EvpKdfPtr kdf(EVP_KDF_fetch(nullptr, name, nullptr));
    EvpKdfCtxPtr ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
    if (!ctx) {
        ERR_clear_error();
        return fail(Errc::Internal, std::string("fetching the ") + name + " KDF");
    }
    return ctx;
}

// HKDF-Expand-Label(secret, label, "", len) of RFC 8446 §7.1; the KDF adds the "tls13 " prefix
// we pass and builds the HkdfLabel structure.
Status expandLabel(const EVP_MD* md, const std::uint8_t* secret, std::size_t secretLen,
                   std::string_view label, std::uint8_t* out, std::size_t outLen) {
    auto ctx = newKdf(OSSL_KDF_NAME_TLS1_3_KDF);
    LM_TRY(ctx);
    static constexpr char kPrefix[] = "tls13 ";
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                         const_cast<char*>(EVP_MD_get0_name(md)), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(secret),
                                          secretLen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, const_cast<char*>(kPrefix),
                                          sizeof kPrefix - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, const_cast<char*>(label.data()),
                                          label.size()),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(ctx->get(), out, outLen, params) != 1) {
        ERR_clear_error();
        return fail(Errc::Internal, "HKDF-Expand-Label \"" + std::string(label) + "\"");
    }
    return {};
}

// A direction's key and IV from its traffic secret (RFC 8446 §7.3), at sequence 0.
Status keysFromSecret(const EVP_MD* md, Aead cipher, DirectionKeys& d) {
    const std::size_t keyLen = sizesOf(cipher).key;
    LM_TRY(expandLabel(md, d.secret.data(), d.secretLen, "key", d.key.data(), keyLen));
    LM_TRY(expandLabel(md, d.secret.data(), d.secretLen, "iv", d.iv.data(), d.iv.size()));
    d.keyLen = keyLen;
    d.ivLen = d.iv.size();
    d.sequence = 0;
    return {};
}

Status deriveTls13(const SSL* ssl, const EVP_MD* md, SessionKeys& keys) {
    const TrafficSecrets* secrets = capturedTrafficSecrets(ssl);
    if (secrets == nullptr) {
        return fail(Errc::Unavailable, "no TLS 1.3 traffic secrets were captured for this session");
    }
    for (auto [dir, secret, len] :
         {std::tuple{&keys.tx, secrets->client.data(), secrets->clientLen},
          std::tuple{&keys.rx, secrets->server.data(), secrets->serverLen}}) {
        std::copy(secret, secret + len, dir->secret.begin());
        dir->secretLen = len;
        LM_TRY(keysFromSecret(md, keys.cipher, *dir));
    }
    return {};
}

// RFC 5246 §6.3: key_block = PRF(master_secret, "key expansion", server_random + client_random);
// AEAD suites have no MAC keys, so it is client key, server key, client IV, server IV.
Status deriveTls12(const SSL* ssl, const EVP_MD* md, SessionKeys& keys) {
    std::uint8_t master[SSL_MAX_MASTER_KEY_LENGTH];
    const std::size_t masterLen =
        SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof master);
    static constexpr std::string_view kLabel = "key expansion";
    std::uint8_t seed[kLabel.size() + 2 * SSL3_RANDOM_SIZE];
    kLabel.copy(reinterpret_cast<char*>(seed), kLabel.size());
    if (masterLen == 0 ||
        SSL_get_server_random(ssl, seed + kLabel.size(), SSL3_RANDOM_SIZE) != SSL3_RANDOM_SIZE ||
        SSL_get_client_random(ssl, seed + kLabel.size() + SSL3_RANDOM_SIZE, SSL3_RANDOM_SIZE) !=
            SSL3_RANDOM_SIZE) {
        OPENSSL_cleanse(master, sizeof master);
        return fail(Errc::Internal, "reading the TLS 1.2 master secret and randoms");
    }
    const CipherSizes sizes = sizesOf(keys.cipher);
    std::uint8_t block[2 * 32 + 2 * 12];
    const std::size_t blockLen = 2 * sizes.key + 2 * sizes.tls12Iv;
    auto ctx = newKdf(OSSL_KDF_NAME_TLS1_PRF);
    bool ok = false;
    if (ctx) {
        const OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                             const_cast<char*>(EVP_MD_get0_name(md)), 0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, masterLen),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof seed),
            OSSL_PARAM_construct_end(),
        };
        ok = EVP_KDF_derive(ctx->get(), block, blockLen, params) == 1;
        ERR_clear_error();
    }
    OPENSSL_cleanse(master, sizeof master);
    if (ok) {
        const std::uint8_t* p = block;
        for (DirectionKeys* d : {&keys.tx, &keys.rx}) {
            std::copy(p, p + sizes.key, d->key.begin());
            d->keyLen = sizes.key;
            p += sizes.key;
        }
        for (DirectionKeys* d : {&keys.tx, &keys.rx}) {
            std::copy(p, p + sizes.tls12Iv, d->iv.begin());
            d->ivLen = sizes.tls12Iv;
            d->sequence = 1;
            p += sizes.tls12Iv;
        }
    }
    OPENSSL_cleanse(block, sizeof block);
    if (!ok) {
        return fail(Errc::Internal, "deriving the TLS 1.2 key block");
    }
    return {};
}

}  // namespace

SessionKeys::~SessionKeys() {
    OPENSSL_cleanse(&tx, sizeof tx);
    OPENSSL_cleanse(&rx, sizeof rx);
}

std::string_view aeadName(Aead a) noexcept {
    switch (a) {
        case Aead::Aes128Gcm:
            return "AES-128-GCM";
        case Aead::Aes256Gcm:
            return "AES-256-GCM";
        case Aead::Chacha20Poly1305:
            return "ChaCha20-Poly1305";
    }
    return "?";
}

std::optional<Aead> aeadOf(const SSL_CIPHER* cipher) {
    switch (cipher == nullptr ? NID_undef : SSL_CIPHER_get_cipher_nid(cipher)) {
        case NID_aes_128_gcm:
            return Aead::Aes128Gcm;
        case NID_aes_256_gcm:
            return Aead::Aes256Gcm;
        case NID_chacha20_poly1305:
            return Aead::Chacha20Poly1305;
        default:
            return std::nullopt;
    }
}

Result<SessionKeys> deriveClientKeys(const SSL* ssl) {
    SessionKeys keys;
    keys.version = SSL_version(ssl);
    if (keys.version != TLS1_2_VERSION && keys.version != TLS1_3_VERSION) {
        return fail(Errc::Invalid,
                    std::string("record engines carry TLS 1.2 and 1.3, not ") + SSL_get_version(ssl));
    }
    const SSL_CIPHER* suite = SSL_get_current_cipher(ssl);
    const auto cipher = aeadOf(suite);
    if (!cipher) {
        return fail(Errc::Invalid, std::string("cipher ") +
                                       (suite ? SSL_CIPHER_get_name(suite) : "(none)") +
                                       " is not AES-GCM or ChaCha20-Poly1305");
    }
    keys.cipher = *cipher;
    const EVP_MD* md = SSL_CIPHER_get_handshake_digest(suite);
    if (md == nullptr) {
        return fail(Errc::Internal, "the suite has no handshake digest");
    }
    keys.md = md;
    if (keys.version == TLS1_3_VERSION) {
        LM_TRY(deriveTls13(ssl, md, keys));
    } else {
        LM_TRY(deriveTls12(ssl, md, keys));
    }
    return keys;
}

Status nextGeneration(const SessionKeys& keys, DirectionKeys& d) {
    if (keys.version != TLS1_3_VERSION || keys.md == nullptr || d.secretLen == 0) {
        return fail(Errc::Invalid, "KeyUpdate exists in TLS 1.3 only");
    }
    std::array<std::uint8_t, 48> next{};
    LM_TRY(expandLabel(keys.md, d.secret.data(), d.secretLen, "traffic upd", next.data(),
                       d.secretLen));
    std::copy(next.begin(), next.begin() + static_cast<std::ptrdiff_t>(d.secretLen),
              d.secret.begin());
    OPENSSL_cleanse(next.data(), next.size());
    return keysFromSecret(keys.md, keys.cipher, d);
}

}  // namespace lastmile::drivers::tls
