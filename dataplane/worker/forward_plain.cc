// SPDX-License-Identifier: Apache-2.0
// Forwarding to a backend without TLS.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

namespace lastmile::dataplane {

void Worker::Impl::pumpPlain(Connection& c) {
    if (!has(c, BackendSend) && c.upIn && !c.upIn->empty()) {
        send(c, c.backend.get(), *c.upIn, BackendSend);
    } else if (c.clientEof && !c.backendWriteShut && !has(c, BackendSend) &&
               (!c.upIn || c.upIn->empty())) {
        ::shutdown(c.backend.get(), SHUT_WR);
        c.backendWriteShut = true;
    }
    sendToClient(c, c.downIn);
}

}  // namespace lastmile::dataplane
