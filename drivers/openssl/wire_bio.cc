// SPDX-License-Identifier: Apache-2.0
// The wire BIO: a BIO_METHOD whose read and write copy between OpenSSL and the worker's chunks.
#include "drivers/openssl/wire_bio.h"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <cstring>

namespace lastmile::drivers::openssl {
namespace {

Wire* wireOf(BIO* b) { return static_cast<Wire*>(BIO_get_data(b)); }

int wireWrite(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    Chunk* sink = wireOf(b)->toPeer;
    const std::size_t n = sink == nullptr ? 0 : sink->append(data, static_cast<std::size_t>(len));
    if (n == 0) {
        BIO_set_retry_write(b);
        return -1;
    }
    return static_cast<int>(n);
}

int wireRead(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    Chunk* source = wireOf(b)->fromPeer;
    if (source == nullptr || source->empty()) {
        BIO_set_retry_read(b);
        return -1;
    }
    std::size_t n = source->size() < static_cast<std::size_t>(len) ? source->size()
                                                                  : static_cast<std::size_t>(len);
    std::memcpy(out, source->data(), n);
    source->consume(n);
    return static_cast<int>(n);
}

long wireCtrl(BIO*, int cmd, long, void*) {
    // Flushing is the worker's send; OpenSSL only needs to hear that it succeeded.
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int wireCreate(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

const BIO_METHOD* wireMethod() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lastmile wire");
        if (m != nullptr) {
            BIO_meth_set_write(m, wireWrite);
            BIO_meth_set_read(m, wireRead);
            BIO_meth_set_ctrl(m, wireCtrl);
            BIO_meth_set_create(m, wireCreate);
        }
        return m;
    }();
    return method;
}

}  // namespace

Status attachWire(SSL* ssl, Wire& wire) {
    const BIO_METHOD* method = wireMethod();
    BIO* bio = method == nullptr ? nullptr : BIO_new(method);
    if (bio == nullptr) {
        ERR_clear_error();
        return fail(Errc::Internal, "creating the wire BIO");
    }
    BIO_set_data(bio, &wire);
    // One BIO for both directions: SSL_set_bio then consumes our single reference.
    SSL_set_bio(ssl, bio, bio);
    // The sealer retries a short write with the rest of the same plaintext; an idle session
    // gives its record buffers back (thousands of idle connections must stay small).
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    return {};
}

}  // namespace lastmile::drivers::openssl
