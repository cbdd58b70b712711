// SPDX-License-Identifier: Apache-2.0
// Forwarding through a userspace record engine: sealing and opening records.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

namespace lastmile::dataplane {

bool Worker::Impl::pumpTls(Connection& c) {
    const bool forwarding = c.stage == Stage::Forwarding;
    // Client -> backend: seal only while no send reads upOut, since sealing may compact it.
    if (forwarding && !has(c, BackendSend)) {
        bindWire(c);
        if (c.upIn && !c.upIn->empty()) {
            auto sealed = c.session->seal(*c.upIn);
            if (!sealed) {
                breakStream(c, Failure::StreamError, sealed.error().message());
                return false;
            }
            countToBackend(c, *sealed);
        }
        if (c.clientEof && (!c.upIn || c.upIn->empty()) && !c.closeNotifyQueued) {
            // Not yet (no room, or the device is still sealing): the next pump asks again.
            // A failure ends in the FIN below.
            const auto queued = c.session->closeNotify();
            c.closeNotifyQueued = !queued || *queued;
        }
    }
    // Backend -> client: open only while no send reads downOut.
    if (!has(c, ClientSend) &&
        ((c.downIn && !c.downIn->empty()) || c.session->hasBufferedPlaintext())) {
        ensure(c.downOut);
        bindWire(c);
        if (!opened(c, c.session->open(*c.downOut), *c.downOut)) {
            return false;
        }
    }
    // A FIN without close_notify ends the stream once every record that came before it
    // was opened: a truncation, counted, and passed on as a reset (sendToClient).
    if (c.backendFin && !c.backendEof && (!c.downIn || c.downIn->empty()) &&
        !c.session->hasBufferedPlaintext()) {
        truncate(c);
    }
    sendToBackend(c);
    if (c.closeNotifyQueued && !c.backendWriteShut && !has(c, BackendSend) &&
        (!c.upOut || c.upOut->empty())) {
        ::shutdown(c.backend.get(), SHUT_WR);
        c.backendWriteShut = true;
    }
    if (forwarding) {
        sendToClient(c, c.downOut);
    }
    // Idle connections give their record buffers back.
    if (c.upOut && c.upOut->empty() && !has(c, BackendSend) && !unsettled(c)) {
        pool_chunks_.release(c.upOut);
    }
    if (c.downOut && c.downOut->empty() && !has(c, ClientSend) && !unsettled(c)) {
        pool_chunks_.release(c.downOut);
    }
    return true;
}

bool Worker::Impl::opened(Connection& c, const Result<drivers::OpenResult>& result,
                          const Chunk& plain) {
    if (!result) {
        if (c.stage == Stage::Pooled) {
            backendGone(c, result.error().message());
        } else if (!c.answered && plain.empty()) {
            // TLS 1.3 finishes the client's handshake before the server has judged it:
            // a refused client certificate arrives as an alert on the first read.
            // Nothing reached the client yet, so it can still be told why.
            bump(c.serviceStats->handshakesFailed);
            reject(c, Failure::HandshakeFailed, 502,
                   "the backend refused the TLS session: " + result.error().context());
        } else {
            breakStream(c, Failure::StreamError, result.error().message());
        }
        return false;
    }
    if (result->closeNotify) {
        if (c.stage == Stage::Pooled) {
            backendGone(c, "close_notify");
            return false;
        }
        c.backendEof = true;
    }
    return true;
}

}  // namespace lastmile::dataplane
