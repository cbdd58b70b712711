// SPDX-License-Identifier: Apache-2.0
// Forwarding: completions of a connection, and moving bytes whatever the framing.
#include "dataplane/worker/worker_impl.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace lastmile::dataplane {

namespace {

// A receive that brought less than this (a trickle, an interactive exchange) parks its side
// at once: the next bytes are waited for without a buffer, so a client sending a byte at a
// time cannot pin one.
constexpr int kSmallRead = 4096;

}  // namespace

void Worker::Impl::onEvent(Connection& c, Op op, int res) {
    if (c.closing) {
        maybeDestroy(c);
        return;
    }
    if (c.stage == Stage::Replying && (kBackendOps & bit(op)) != 0) {
        pump(c);  // a cancelled backend operation of a refused connection
        return;
    }
    const bool bytes = res > 0;
    if (bytes && (op == ClientRecv || op == ClientSend || op == BackendRecv || op == BackendSend)) {
        bump(counters_.userspaceBytes, static_cast<std::uint64_t>(res));
    }
    switch (op) {
        case ClientPoll:
            if (res < 0) {
                return abort(c);
            }
            c.clientParked = false;
            break;
        case ClientRecv:
            if (std::exchange(c.clientParking, false) && res == -ECANCELED) {
                c.clientParked = true;
                pool_chunks_.releaseReceive(c.upIn, c.downIn);
                noteRelease();
                break;
            }
            if (res < 0) {
                return abort(c);
            }
            if (res == 0) {
                c.clientEof = true;
            } else if (c.stage == Stage::Replying) {
                c.upIn->clear();  // a refused client's request is read and dropped
            } else {
                c.upIn->commit(static_cast<std::size_t>(res));
            }
            c.clientParked = res > 0 && res < kSmallRead;
            break;
        case ClientSend:
            if (res < 0) {
                return abort(c);
            }
            c.clientSendFrom->consume(static_cast<std::size_t>(res));
            if (c.stage == Stage::Forwarding) {
                c.answered = true;
                if (std::exchange(c.refillAfterAnswer, false)) {
                    refillPools();
                }
                countToClient(c, static_cast<std::uint64_t>(res));
            }
            break;
        case BackendPoll:
            if (res < 0) {
                return backendGone(c, "polling the backend failed");
            }
            c.backendParked = false;
            break;
        case BackendRecv:
            if (std::exchange(c.backendParking, false) && res == -ECANCELED) {
                c.backendParked = true;
                pool_chunks_.releaseReceive(c.downIn, c.upIn);
                noteRelease();
                break;
            }
            if (res == -EIO && c.kernelFramed) {
                onControlRecord(c);
                if (c.closing) {
                    return;
                }
                break;
            }
            if (res <= 0) {
                if (c.stage == Stage::Handshaking) {
                    return failHandshake(c, res == 0 ? "the backend closed the connection"
                                                     : std::strerror(-res));
                }
                if (res < 0) {
                    return backendGone(c, std::string("receiving from the backend: ") +
                                              std::strerror(-res));
                }
                if (c.stage == Stage::Pooled) {
                    return backendGone(c, "the backend closed the connection");
                }
                c.backendFin = true;
                c.backendEof = c.backendEof || !c.profile;
                break;
            }
            c.downIn->commit(static_cast<std::size_t>(res));
            if (c.stage == Stage::Handshaking) {
                return handshake(c);
            }
            c.backendParked = res < kSmallRead;
            break;
        case BackendSend:
            if (res < 0) {
                return backendGone(c, std::string("sending to the backend: ") +
                                          std::strerror(-res));
            }
            c.backendSendFrom->consume(static_cast<std::size_t>(res));
            if (plaintextWire(c) && c.stage == Stage::Forwarding) {
                countToBackend(c, static_cast<std::uint64_t>(res));
            }
            if (c.stage == Stage::Handshaking) {
                return handshake(c);
            }
            break;
        case Connect:
            onConnect(c, res);
            break;
        case ClientSplice:
            if (res == -EAGAIN && c.piped > 0) {
                // The pipe holds fewer bytes than its capacity in more pages than
                // expected (small segments): splice again once it has drained.
                c.pipeFull = true;
            } else if (res == -EAGAIN) {
                c.clientParked = true;  // nothing to read: wait for readability
            } else if (res < 0) {
                return abort(c);
            } else if (res == 0) {
                c.clientEof = true;
            } else {
                c.piped += static_cast<std::size_t>(res);
            }
            break;
        case BackendWritable:
            if (res < 0) {
                return backendGone(c, "waiting for room to send to the backend");
            }
            break;
        case BackendSplice:
            if (res == -EAGAIN) {
                // The socket is non-blocking, so a full send buffer ends the splice.
                poll(c, c.backend.get(), BackendWritable, POLLOUT);
                break;
            }
            if (res <= 0) {
                return backendGone(c, res == 0 ? "the backend took no bytes"
                                               : std::string("splicing to the backend: ") +
                                                     std::strerror(-res));
            }
            c.piped -= static_cast<std::size_t>(res);
            c.pipeFull = false;
            countToBackend(c, static_cast<std::uint64_t>(res));
            break;
        default:
            break;
    }
    if (bytes) {
        c.lastActivity = now_;
        if (c.stage == Stage::Forwarding) {
            c.deadline = now_ + shared_.options.idleTimeout;
        }
    }
    pump(c);
}

void Worker::Impl::backendGone(Connection& c, const std::string& why) {
    if (c.stage == Stage::Pooled) {
        bump(counters_.warmPoolDiscarded);
        return abort(c);
    }
    if (c.stage == Stage::Handshaking) {
        return failHandshake(c, why);
    }
    breakStream(c, Failure::StreamError, why);
}

void Worker::Impl::pump(Connection& c) {
    if (c.dead) {
        return;
    }
    if (c.closing) {
        return maybeDestroy(c);
    }
    switch (c.stage) {
        case Stage::Replying:
            pumpReply(c);
            break;
        case Stage::Connecting:
        case Stage::Handshaking:
            readClient(c);
            break;
        case Stage::Pooled:
        case Stage::Forwarding:
            if (c.kernelFramed) {
                pumpKernel(c);
            } else if (c.profile) {
                if (!pumpTls(c)) {
                    return;
                }
            } else {
                pumpPlain(c);
            }
            if (c.closing) {
                break;  // the client was reset (a truncated backend stream)
            }
            readClient(c);
            readBackend(c);
            if (c.session && !c.upIn && !c.upOut && !c.downIn && !c.downOut) {
                c.session->releaseIdleMemory();
            }
            if (c.stage == Stage::Forwarding && c.clientWriteShut && c.backendWriteShut &&
                !has(c, ClientSend) && !has(c, BackendSend)) {
                c.closing = true;  // both ways ended cleanly
            }
            break;
    }
    maybeDestroy(c);
}

void Worker::Impl::sendToBackend(Connection& c) {
    if (!has(c, BackendSend) && c.upOut && !c.upOut->empty()) {
        send(c, c.backend.get(), *c.upOut, BackendSend);
    }
}

void Worker::Impl::truncate(Connection& c) {
    bump(counters_.truncatedByBackend);
    counters_.fail(Failure::Truncated);
    logBroken(c, Failure::Truncated, "the backend's TLS stream ended without close_notify");
    c.backendEof = true;
    c.resetClient = true;
}

void Worker::Impl::breakStream(Connection& c, Failure why, const std::string& what) {
    counters_.fail(why);
    logBroken(c, why, what);
    c.resetClient = true;
    abort(c);
}

void Worker::Impl::logBroken(const Connection& c, Failure why, const std::string& what) {
    const auto size = [](const ChunkPtr& chunk) { return chunk ? chunk->size() : 0; };
    LM_LOG(Notice, kLog,
           "stream " << failureLabel(why) << ": " << c.project << "/" << c.backendKey.ns
                     << "/" << c.backendKey.service << ":" << c.backendKey.port << " via "
                     << c.endpoint.address << ":" << c.endpoint.port << ": " << what
                     << " (" << c.toClientBytes
                     << " bytes sent to the client, " << c.toBackendBytes
                     << " to the backend, "
                     << size(c.upIn) + size(c.upOut) + c.piped
                     << " held for the backend); the client gets a reset");
}

void Worker::Impl::sendToClient(Connection& c, ChunkPtr& from) {
    if (has(c, ClientSend)) {
        return;
    }
    if (from && !from->empty()) {
        send(c, c.client.get(), *from, ClientSend);
    } else if (c.backendEof && c.resetClient) {
        resetWhenDelivered(c);
    } else if (c.backendEof && !c.clientWriteShut) {
        ::shutdown(c.client.get(), SHUT_WR);
        c.clientWriteShut = true;
    }
}

void Worker::Impl::resetWhenDelivered(Connection& c) {
    if (!c.resetWhenDelivered) {
        c.resetWhenDelivered = true;
        c.resetBy = now_ + kLinger;
    }
    int undelivered = 0;
    if (::ioctl(c.client.get(), SIOCOUTQ, &undelivered) == -1 || undelivered == 0 ||
        now_ >= c.resetBy) {
        abort(c);
    }
}

void Worker::Impl::readClient(Connection& c) {
    if (c.clientParked && c.upIn && c.upIn->empty() && !has(c, ClientRecv) &&
        !(plaintextWire(c) && has(c, BackendSend))) {
        pool_chunks_.releaseReceive(c.upIn, c.downIn);
    }
    if (!c.client.valid() || c.clientEof || has(c, ClientRecv) || has(c, ClientPoll) ||
        has(c, ClientSplice)) {
        return;
    }
    if (c.clientParked) {
        poll(c, c.client.get(), ClientPoll);
        return;
    }
    if (c.kernelFramed) {
        // Splicing starts once what was read during the handshake has gone out.
        if (!c.upIn && !c.pipeFull && c.piped < c.pipeCapacity) {
            splice(c, c.client.get(), c.pipeWrite.get(), c.pipeCapacity - c.piped,
                   SPLICE_F_NONBLOCK, ClientSplice);
        }
        return;
    }
    if (!reserve(c, c.upIn)) {
        return;
    }
    const bool plainSending = plaintextWire(c) && has(c, BackendSend);
    if (!plainSending && !unsettled(c)) {
        c.upIn->compact();
    }
    if (c.upIn->room() > 0) {
        recv(c, c.client.get(), *c.upIn, ClientRecv);
    }
}

void Worker::Impl::readBackend(Connection& c) {
    if (c.backendParked && c.downIn && c.downIn->empty() && !has(c, BackendRecv) &&
        !(plaintextWire(c) && has(c, ClientSend))) {
        pool_chunks_.releaseReceive(c.downIn, c.upIn);
    }
    if (c.backendEof || c.backendFin || has(c, BackendRecv) || has(c, BackendPoll)) {
        return;
    }
    if (c.backendParked) {
        poll(c, c.backend.get(), BackendPoll);
        return;
    }
    if (!reserve(c, c.downIn)) {
        return;
    }
    const bool plainSending = plaintextWire(c) && has(c, ClientSend);
    if (!plainSending && !unsettled(c)) {
        c.downIn->compact();
    }
    // A kernel-framed receive may stop at a control record, which is read into the
    // same room: keep room for a whole record.
    const std::size_t minRoom = c.kernelFramed ? Chunk::kRecordRoom : 1;
    if (c.downIn->room() >= minRoom) {
        recv(c, c.backend.get(), *c.downIn, BackendRecv);
    }
}

}  // namespace lastmile::dataplane
