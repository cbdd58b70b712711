// SPDX-License-Identifier: Apache-2.0
// The keylog callback that keeps TLS 1.3 traffic secrets in ex_data instead of logging them.
#include "drivers/tls/secrets.h"

#include <openssl/crypto.h>

#include <string_view>

namespace lastmile::drivers::tls {
namespace {

void freeSecrets(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
    auto* s = static_cast<TrafficSecrets*>(ptr);
    if (s != nullptr) {
        OPENSSL_cleanse(s, sizeof *s);
        delete s;
    }
}

int secretsIndex() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, freeSecrets);
    return index;
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// Decodes `hex` into `out`; false (and `out` left partly written) if it does not fit.
bool decodeHex(std::string_view hex, std::array<std::uint8_t, 48>& out, std::size_t& len) {
    if (hex.size() % 2 != 0 || hex.size() / 2 > out.size() || hex.empty()) {
        return false;
    }
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = hexValue(hex[i]);
        const int lo = hexValue(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i / 2] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    len = hex.size() / 2;
    return true;
}

// Lines are "LABEL <client_random hex> <secret hex>" (NSS key log format).
void keepTrafficSecret(const SSL* constSsl, const char* line) {
    constexpr std::string_view kClient = "CLIENT_TRAFFIC_SECRET_0 ";
    constexpr std::string_view kServer = "SERVER_TRAFFIC_SECRET_0 ";
    const std::string_view text(line);
    const bool client = text.starts_with(kClient);
    if (!client && !text.starts_with(kServer)) {
        return;
    }
    const std::size_t space = text.rfind(' ');
    const std::string_view secretHex = text.substr(space + 1);
    // OpenSSL passes a const SSL but owns the ex_data on it; storing there is the point.
    SSL* ssl = const_cast<SSL*>(constSsl);
    auto* secrets = static_cast<TrafficSecrets*>(SSL_get_ex_data(ssl, secretsIndex()));
    if (secrets == nullptr) {
        secrets = new TrafficSecrets;
        if (SSL_set_ex_data(ssl, secretsIndex(), secrets) != 1) {
            delete secrets;
            return;
        }
    }
    if (client) {
        if (!decodeHex(secretHex, secrets->client, secrets->clientLen)) {
            secrets->clientLen = 0;
        }
    } else if (!decodeHex(secretHex, secrets->server, secrets->serverLen)) {
        secrets->serverLen = 0;
    }
}

}  // namespace

void captureTrafficSecrets(SSL_CTX* ctx) {
    secretsIndex();  // allocated now, off the handshake path
    SSL_CTX_set_keylog_callback(ctx, keepTrafficSecret);
}

const TrafficSecrets* capturedTrafficSecrets(const SSL* ssl) {
    const auto* s = static_cast<const TrafficSecrets*>(SSL_get_ex_data(ssl, secretsIndex()));
    return s != nullptr && s->clientLen != 0 && s->serverLen != 0 ? s : nullptr;
}

void forgetTrafficSecrets(SSL* ssl) {
    auto* s = static_cast<TrafficSecrets*>(SSL_get_ex_data(ssl, secretsIndex()));
    if (s != nullptr) {
        SSL_set_ex_data(ssl, secretsIndex(), nullptr);
        freeSecrets(nullptr, s, nullptr, 0, 0, nullptr);
    }
}

}  // namespace lastmile::drivers::tls
