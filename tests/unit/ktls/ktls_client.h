// SPDX-License-Identifier: Apache-2.0
// A blocking TLS client for the kernel TLS tests: handshakes over a plain socket with SSL_set_fd.
#pragma once

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "base/unique_fd.h"
#include "dataplane/tls/openssl_handles.h"
#include "drivers/tls/secrets.h"

namespace lastmile::test {

inline constexpr char kBackendName[] = "backend.ktls.test";

struct KtlsClientOptions {
    int version = TLS1_3_VERSION;
    // TLS 1.3 suite ("TLS_AES_128_GCM_SHA256") or TLS 1.2 cipher ("ECDHE-ECDSA-AES128-GCM-SHA256").
    std::string cipher;
    bool captureSecrets = true;
};

// Connected and handshaken; OpenSSL read no further than the server's Finished (no
// read-ahead), so every later record is still in the socket.
class KtlsClient {
public:
    KtlsClient(std::uint16_t port, const std::string& caPem, const KtlsClientOptions& o)
        : ctx_(SSL_CTX_new(TLS_client_method())) {
        fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        timeval tv{20, 0};  // a broken engine fails the test instead of hanging it
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == -1) {
            throw std::runtime_error("connect: " + std::string(std::strerror(errno)));
        }
        tls::BioPtr bio(BIO_new_mem_buf(caPem.data(), static_cast<int>(caPem.size())));
        tls::X509Ptr ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), ca.get());
        SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
        SSL_CTX_set_min_proto_version(ctx_.get(), o.version);
        SSL_CTX_set_max_proto_version(ctx_.get(), o.version);
        const bool ok = o.version == TLS1_3_VERSION
                            ? SSL_CTX_set_ciphersuites(ctx_.get(), o.cipher.c_str()) == 1
                            : SSL_CTX_set_cipher_list(ctx_.get(), o.cipher.c_str()) == 1;
        if (!ok) {
            throw std::runtime_error("unknown cipher " + o.cipher);
        }
        if (o.captureSecrets) {
            drivers::tls::captureTrafficSecrets(ctx_.get());
        }
        ssl_.reset(SSL_new(ctx_.get()));
        SSL_set_fd(ssl_.get(), fd_.get());
        SSL_set_tlsext_host_name(ssl_.get(), kBackendName);
        SSL_set1_host(ssl_.get(), kBackendName);
        if (SSL_connect(ssl_.get()) != 1) {
            char err[256];
            ERR_error_string_n(ERR_get_error(), err, sizeof err);
            throw std::runtime_error(std::string("handshake failed: ") + err);
        }
    }

    int fd() const { return fd_.get(); }
    SSL* ssl() { return ssl_.get(); }
    // What the worker does once a kernel-framed session is attached.
    void freeSsl() { ssl_.reset(); }

private:
    UniqueFd fd_;
    tls::SslCtxPtr ctx_;
    tls::SslPtr ssl_;
};

}  // namespace lastmile::test
