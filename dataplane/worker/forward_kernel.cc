// SPDX-License-Identifier: Apache-2.0
// Forwarding when the kernel frames the records: splice out, control records in.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

#include <system_error>

namespace lastmile::dataplane {

void Worker::Impl::pumpKernel(Connection& c) {
    if (c.stage != Stage::Forwarding) {
        return;  // pooled: only reading, to notice the backend going away
    }
    if (c.upIn && !c.upIn->empty()) {
        if (!has(c, BackendSend)) {
            send(c, c.backend.get(), *c.upIn, BackendSend);
        }
    } else if (c.piped > 0) {
        if (!has(c, BackendSplice) && !has(c, BackendWritable)) {
            splice(c, c.pipeRead.get(), c.backend.get(), c.piped, SPLICE_F_NONBLOCK,
                   BackendSplice);
        }
    } else if (c.clientEof && !c.backendWriteShut && !has(c, BackendSend) &&
               !has(c, BackendSplice) && !has(c, BackendWritable)) {
        auto sent = c.session->closeNotify();
        if (!sent) {
            // The backend is gone (a reset: it closed with our bytes unread), so what
            // the client sent last may never have been read: not a clean end.
            return breakStream(c, Failure::StreamError, sent.error().message());
        }
        if (!*sent) {
            poll(c, c.backend.get(), BackendWritable, POLLOUT);
        } else {
            ::shutdown(c.backend.get(), SHUT_WR);
            c.backendWriteShut = true;
        }
    }
    if (c.upIn && c.upIn->empty() && !has(c, BackendSend) && !has(c, ClientRecv)) {
        pool_chunks_.releaseReceive(c.upIn, c.downIn);
    }
    if (c.backendFin && !c.backendEof) {
        truncate(c);  // a FIN without close_notify
    }
    sendToClient(c, c.downIn);
}

void Worker::Impl::onControlRecord(Connection& c) {
    const auto result = c.session->open(*c.downIn);
    opened(c, result, *c.downIn);
}

}  // namespace lastmile::dataplane
