// SPDX-License-Identifier: Apache-2.0
// The openssl record engine.
#include "drivers/openssl/openssl_engine.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <algorithm>

namespace lastmile::drivers::openssl {
namespace {

constexpr int kMaxPlaintextRecord = 16 * 1024;

class OpensslSession final : public RecordSession {
public:
    OpensslSession(SSL* ssl, Wire& wire) : ssl_(ssl), wire_(wire) {}

    std::string_view engine() const noexcept override { return "openssl"; }
    bool hasBufferedPlaintext() const noexcept override { return SSL_pending(ssl_) > 0; }

    Result<std::size_t> seal(Chunk& plain) override {
        std::size_t consumed = 0;
        Chunk& out = *wire_.toPeer;
        while (!plain.empty()) {
            if (out.room() < Chunk::kRecordRoom) {
                out.compact();
                if (out.room() < Chunk::kRecordRoom) {
                    break;  // backpressure: the worker sends, then seals the rest
                }
            }
            const int len = static_cast<int>(std::min<std::size_t>(plain.size(), kMaxPlaintextRecord));
            const int n = SSL_write(ssl_, plain.data(), len);
            if (n <= 0) {
                if (SSL_get_error(ssl_, n) == SSL_ERROR_WANT_WRITE) {
                    break;
                }
                return fail(Errc::Unavailable, "sealing records: " + lastSslError(ssl_, n));
            }
            plain.consume(static_cast<std::size_t>(n));
            consumed += static_cast<std::size_t>(n);
        }
        return consumed;
    }

    Result<OpenResult> open(Chunk& plain) override {
        OpenResult result;
        for (;;) {
            if (plain.room() < kMaxPlaintextRecord) {
                plain.compact();
                if (plain.room() == 0) {
                    return result;
                }
            }
            const int n = SSL_read(ssl_, plain.tail(), static_cast<int>(plain.room()));
            if (n > 0) {
                plain.commit(static_cast<std::size_t>(n));
                result.plaintext += static_cast<std::size_t>(n);
                continue;
            }
            switch (SSL_get_error(ssl_, n)) {
                case SSL_ERROR_WANT_READ:
                case SSL_ERROR_WANT_WRITE:
                    return result;
                case SSL_ERROR_ZERO_RETURN:
                    result.closeNotify = true;
                    return result;
                default:
                    return fail(Errc::Unavailable, "opening records: " + lastSslError(ssl_, n));
            }
        }
    }

    Result<bool> closeNotify() override {
        const int r = SSL_shutdown(ssl_);
        if (r >= 0) {
            return true;
        }
        if (SSL_get_error(ssl_, r) == SSL_ERROR_WANT_WRITE) {
            return false;  // the wire is full: SSL_shutdown sends it when called again
        }
        return fail(Errc::Unavailable, "sending close_notify: " + lastSslError(ssl_, r));
    }

    // OpenSSL keeps a 16 KiB read buffer per session even with SSL_MODE_RELEASE_BUFFERS;
    // a thousand idle connections would hold 16 MiB for nothing.
    void releaseIdleMemory() override { SSL_free_buffers(ssl_); }

private:
    SSL* ssl_;
    Wire& wire_;
};

}  // namespace

EngineProbe OpensslEngine::probe() const {
    return EngineProbe{true, OpenSSL_version(OPENSSL_VERSION), {}, {}};
}

Attach OpensslEngine::attach(SSL* ssl, int, Wire& wire) {
    return Attach::taken(std::make_unique<OpensslSession>(ssl, wire));
}

std::string lastSslError(SSL* ssl, int ret) {
    const int code = SSL_get_error(ssl, ret);
    const unsigned long err = ERR_peek_last_error();
    std::string text;
    if (err != 0) {
        const char* reason = ERR_reason_error_string(err);
        text = reason != nullptr ? reason : "OpenSSL error " + std::to_string(err);
    } else if (code == SSL_ERROR_SYSCALL) {
        text = "unexpected end of stream";
    } else {
        text = "SSL error " + std::to_string(code);
    }
    ERR_clear_error();
    return text;
}

}  // namespace lastmile::drivers::openssl
