// SPDX-License-Identifier: Apache-2.0
// deriveClientKeys without a kernel: a record sealed with the derived client keys is read by a
// stock OpenSSL server, and its echo opens with the derived server keys.
#include "drivers/tls/keys.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"
#include "tests/unit/ktls/ktls_client.h"

namespace lastmile::drivers::tls {
namespace {

using test::BackendMode;
using test::KtlsClient;
using test::TlsBackend;
using test::TlsBackendOptions;
using Bytes = std::vector<std::uint8_t>;
using EvpCipherCtxPtr = Handle<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

constexpr std::size_t kTag = 16;

const EVP_CIPHER* evpOf(tls::Aead c) {
    switch (c) {
        case tls::Aead::Aes128Gcm:
            return EVP_aes_128_gcm();
        case tls::Aead::Aes256Gcm:
            return EVP_aes_256_gcm();
        case tls::Aead::Chacha20Poly1305:
            return EVP_chacha20_poly1305();
    }
    return nullptr;
}

void putBe(std::uint64_t v, std::uint8_t* out, int n) {
    for (int i = n - 1; i >= 0; --i) {
        out[i] = static_cast<std::uint8_t>(v & 0xff);
        v >>= 8;
    }
}

// The 12-byte nonce of the record with sequence `seq` (RFC 8446 §5.3, RFC 5288, RFC 7905),
// and for TLS 1.2 GCM the explicit part that travels in the record.
Bytes nonceOf(const SessionKeys& keys, const DirectionKeys& d, std::uint64_t seq,
              Bytes& explicitPart) {
    Bytes nonce(12, 0);
    if (keys.version == TLS1_2_VERSION && keys.cipher != tls::Aead::Chacha20Poly1305) {
        std::memcpy(nonce.data(), d.iv.data(), 4);
        putBe(seq, nonce.data() + 4, 8);
        explicitPart.assign(nonce.begin() + 4, nonce.end());
        return nonce;
    }
    putBe(seq, nonce.data() + 4, 8);
    for (std::size_t i = 0; i < 12; ++i) {
        nonce[i] ^= d.iv[i];
    }
    return nonce;
}

Bytes aead(bool seal, const SessionKeys& keys, const DirectionKeys& d, const Bytes& nonce,
           const Bytes& aad, const std::uint8_t* in, std::size_t len, const std::uint8_t* tag) {
    EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    Bytes out(len + kTag);
    int n = 0;
    int n2 = 0;
    bool ok =
        EVP_CipherInit_ex(ctx.get(), evpOf(keys.cipher), nullptr, d.key.data(), nonce.data(),
                          seal ? 1 : 0) == 1 &&
        EVP_CipherUpdate(ctx.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) == 1 &&
        EVP_CipherUpdate(ctx.get(), out.data(), &n, in, static_cast<int>(len)) == 1;
    if (ok && !seal) {
        ok = EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kTag,
                                 const_cast<std::uint8_t*>(tag)) == 1;
    }
    ok = ok && EVP_CipherFinal_ex(ctx.get(), out.data() + n, &n2) == 1;
    if (ok && seal) {
        ok = EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kTag, out.data() + len) == 1;
    }
    if (!ok) {
        throw std::runtime_error(seal ? "sealing failed" : "opening failed: wrong keys");
    }
    out.resize(seal ? len + kTag : len);
    return out;
}

// One application-data record, as the client would have sealed it.
Bytes sealRecord(const SessionKeys& keys, const std::string& text) {
    const DirectionKeys& d = keys.tx;
    Bytes plain(text.begin(), text.end());
    Bytes explicitPart;
    const Bytes nonce = nonceOf(keys, d, d.sequence, explicitPart);
    Bytes aad;
    if (keys.version == TLS1_3_VERSION) {
        plain.push_back(23);  // TLSInnerPlaintext content type
        aad = {23, 3, 3, 0, 0};
        putBe(plain.size() + kTag, aad.data() + 3, 2);
    } else {
        aad.resize(13);
        putBe(d.sequence, aad.data(), 8);
        aad[8] = 23;
        aad[9] = 3;
        aad[10] = 3;
        putBe(plain.size(), aad.data() + 11, 2);
    }
    const Bytes sealed = aead(true, keys, d, nonce, aad, plain.data(), plain.size(), nullptr);
    Bytes record = {23, 3, 3, 0, 0};
    putBe(explicitPart.size() + sealed.size(), record.data() + 3, 2);
    record.insert(record.end(), explicitPart.begin(), explicitPart.end());
    record.insert(record.end(), sealed.begin(), sealed.end());
    return record;
}

Bytes readExactly(int fd, std::size_t n) {
    Bytes out(n);
    std::size_t off = 0;
    while (off < n) {
        const ssize_t r = ::recv(fd, out.data() + off, n - off, 0);
        if (r <= 0) {
            throw std::runtime_error("the backend closed or timed out");
        }
        off += static_cast<std::size_t>(r);
    }
    return out;
}

// Reads the next record from the socket and opens it with the server's derived keys.
std::string openRecord(int fd, const SessionKeys& keys) {
    const Bytes header = readExactly(fd, 5);
    const std::size_t len = std::size_t{header[3]} << 8 | header[4];
    Bytes body = readExactly(fd, len);
    const DirectionKeys& d = keys.rx;
    Bytes explicitPart;
    Bytes nonce = nonceOf(keys, d, d.sequence, explicitPart);
    std::size_t off = 0;
    Bytes aad(header);
    if (keys.version == TLS1_2_VERSION) {
        if (!explicitPart.empty()) {
            std::memcpy(nonce.data() + 4, body.data(), 8);  // the server's own explicit nonce
            off = 8;
        }
        aad.assign(13, 0);
        putBe(d.sequence, aad.data(), 8);
        aad[8] = header[0];
        aad[9] = 3;
        aad[10] = 3;
        putBe(len - off - kTag, aad.data() + 11, 2);
    }
    Bytes plain = aead(false, keys, d, nonce, aad, body.data() + off, len - off - kTag,
                       body.data() + len - kTag);
    if (keys.version == TLS1_3_VERSION) {
        while (!plain.empty() && plain.back() == 0) {
            plain.pop_back();
        }
        EXPECT_FALSE(plain.empty());
        EXPECT_EQ(plain.back(), 23) << "not application data";
        plain.pop_back();
    } else {
        EXPECT_EQ(header[0], 23);
    }
    return std::string(plain.begin(), plain.end());
}

struct Suite {
    int version;
    const char* cipher;
    tls::Aead expected;
};

class ClientKeysTest : public ::testing::TestWithParam<Suite> {};

TEST_P(ClientKeysTest, SealAndOpenRecordsAStockServerAgreesWith) {
    test::TestPki pki;
    TlsBackendOptions o;
    o.serverCert = pki.issueServer(test::kBackendName);
    o.mode = BackendMode::Echo;
    o.sessionTickets = false;  // the echo is then the server's first application record
    auto backend = TlsBackend::start(std::move(o));
    ASSERT_TRUE(backend) << backend.error().message();
    KtlsClient client((*backend)->port(), pki.caPem(), {GetParam().version, GetParam().cipher});

    auto keys = deriveClientKeys(client.ssl());
    ASSERT_TRUE(keys) << keys.error().message();
    EXPECT_EQ(keys->cipher, GetParam().expected);
    EXPECT_EQ(keys->tx.sequence, GetParam().version == TLS1_3_VERSION ? 0U : 1U);

    const std::string text = "sealed by hand with derived keys";
    const Bytes record = sealRecord(*keys, text);
    ASSERT_EQ(::send(client.fd(), record.data(), record.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(record.size()));
    // The echo proves the server opened our record, and opening it proves the server keys.
    EXPECT_EQ(openRecord(client.fd(), *keys), text);
}

INSTANTIATE_TEST_SUITE_P(
    Suites, ClientKeysTest,
    ::testing::Values(
        Suite{TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", tls::Aead::Aes128Gcm},
        Suite{TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", tls::Aead::Aes256Gcm},
        Suite{TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", tls::Aead::Chacha20Poly1305},
        Suite{TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", tls::Aead::Aes128Gcm},
        Suite{TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", tls::Aead::Aes256Gcm},
        Suite{TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", tls::Aead::Chacha20Poly1305}),
    [](const auto& p) {
        std::string name = std::string(p.param.version == TLS1_3_VERSION ? "Tls13_" : "Tls12_") +
                           std::string(tls::aeadName(p.param.expected));
        for (char& ch : name) {
            if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
                ch = '_';
            }
        }
        return name;
    });

TEST(ClientKeysRefusalTest, Tls13WithoutCapturedSecretsIsUnavailable) {
    test::TestPki pki;
    TlsBackendOptions o;
    o.serverCert = pki.issueServer(test::kBackendName);
    auto backend = TlsBackend::start(std::move(o));
    ASSERT_TRUE(backend) << backend.error().message();
    KtlsClient client((*backend)->port(), pki.caPem(),
                      {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", false});
    auto keys = deriveClientKeys(client.ssl());
    ASSERT_FALSE(keys);
    EXPECT_EQ(keys.error().code(), make_error_code(Errc::Unavailable));
}

}  // namespace
}  // namespace lastmile::drivers::tls
