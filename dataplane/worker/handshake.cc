// SPDX-License-Identifier: Apache-2.0
// The TLS handshake with the backend, driven through the ring.
#include "dataplane/worker/worker_impl.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dataplane/tls/handshake_profile.h"
#include "drivers/openssl/openssl_engine.h"
#include "drivers/openssl/wire_bio.h"

namespace lastmile::dataplane {

void Worker::Impl::startHandshake(Connection& c) {
    auto ssl = c.profile->newSession();
    if (ssl) {
        if (auto wired = drivers::openssl::attachWire(ssl->get(), c.wire); !wired) {
            ssl = fail(std::move(wired).error());
        }
    }
    if (!ssl) {
        reject(c, Failure::HandshakeFailed, 502, ssl.error().message());
        return;
    }
    c.ssl = std::move(*ssl);
    c.handshakeStart = now_;
    setStage(c, Stage::Handshaking);
    c.deadline = now_ + shared_.options.handshakeTimeout;
    handshake(c);
}

void Worker::Impl::bindWire(Connection& c) {
    ensure(c.upOut);
    c.wire.fromPeer = c.downIn.get();
    c.wire.toPeer = c.upOut.get();
    c.wire.owner = &c;
}

void Worker::Impl::handshake(Connection& c) {
    bindWire(c);
    const int r = SSL_do_handshake(c.ssl.get());
    if (r == 1) {
        established(c);
        return;
    }
    const int err = SSL_get_error(c.ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        sendToBackend(c);
        if (!has(c, BackendSend)) {
            // Nothing to send while the backend thinks: waiting with a buffer held would
            // take memory the receives that let handshakes finish need.
            pool_chunks_.release(c.upOut);
        }
        if (!has(c, BackendRecv) && reserve(c, c.downIn)) {
            c.downIn->compact();
            recv(c, c.backend.get(), *c.downIn, BackendRecv);
        }
        return;
    }
    failHandshake(c, drivers::openssl::lastSslError(c.ssl.get(), r));
}

void Worker::Impl::failHandshake(Connection& c, const std::string& detail) {
    bump(c.serviceStats->handshakesFailed);
    const std::string why = tls::verifyFailureReason(c.ssl.get());
    if (!why.empty()) {
        reject(c, Failure::VerifyFailed, 502, "backend certificate rejected: " + why);
    } else {
        reject(c, Failure::HandshakeFailed, 502,
               "TLS handshake with the backend failed: " + detail);
    }
}

void Worker::Impl::established(Connection& c) {
    if ((c.upOut && !c.upOut->empty()) || has(c, BackendSend)) {
        // Our last handshake records (the Finished) go out before an engine takes the
        // session: once the kernel holds it, the socket takes only plaintext. The send's
        // completion comes back here through handshake().
        sendToBackend(c);
        return;
    }
    // The verify callback already failed the handshake on any error; this is the
    // belt to its braces, since forwarding to an unverified peer (or one that presented
    // no certificate at all) must be impossible.
    if (!tls::peerVerified(c.ssl.get())) {
        failHandshake(c, "certificate not verified");
        return;
    }
    c.peerChain.reset(X509_chain_up_ref(SSL_get_peer_cert_chain(c.ssl.get())));
    if (!c.warm && !allowedByPolicy(c)) {
        // Its profile was superseded during the handshake by one this peer fails.
        closeForPolicy(c);
        return;
    }
    const bool resumed = SSL_session_reused(c.ssl.get()) == 1;
    bump(resumed ? counters_.handshakesResumed : counters_.handshakesFull);
    bump(resumed ? c.serviceStats->handshakesResumed : c.serviceStats->handshakesFull);
    counters_.handshakeSeconds.observe(
        std::chrono::duration<double>(now_ - c.handshakeStart).count());
    if (!resumed) {
        recordCertificateExpiry(c);
    }
    if (!attachEngine(c)) {
        return;
    }
    c.snapshot.reset();
    c.target = nullptr;
    c.deadline = now_ + shared_.options.idleTimeout;
    if (c.warm) {
        setStage(c, Stage::Pooled);
        warming_[PoolKey{c.project, c.backendKey}]--;
        pool_[PoolKey{c.project, c.backendKey}].push_back(&c);
        counters_.pooled.fetch_add(1, std::memory_order_relaxed);
    } else {
        setStage(c, Stage::Forwarding);
    }
    pump(c);
}

}  // namespace lastmile::dataplane
