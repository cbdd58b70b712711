// SPDX-License-Identifier: Apache-2.0
// Refusing a connection: counted, logged, and an HTTP error answer where one fits.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

#include "base/log.h"
#include "dataplane/worker/http_reply.h"

namespace lastmile::dataplane {

void Worker::Impl::reject(Connection& c, Failure why, int httpStatus, const std::string& reason) {
    if (c.warm) {
        LM_LOG(Debug, kLog, "warm-pool connection failed: " << reason);
        abort(c);
        return;
    }
    counters_.fail(why);
    LM_LOG(Debug, kLog, "refused a connection (" << failureLabel(why) << "): " << reason);
    if (c.backend.valid()) {
        cancelOps(c, c.backend.get(), kBackendOps);
    }
    if (c.protocol != route::ListenerProtocol::Http || !c.client.valid()) {
        abort(c);
        return;
    }
    setStage(c, Stage::Replying);
    c.deadline = now_ + kLinger;
    ensure(c.downOut);
    // The client may be anyone the listener serves: by default it learns the class of
    // the failure, the operator's log and metrics the rest.
    const std::string answer = httpErrorResponse(
        httpStatus, shared_.options.errorDetail == ErrorDetail::Full
                        ? reason
                        : std::string(failureText(why).label) + ": " +
                              std::string(failureText(why).summary));
    c.downOut->append(answer.data(), answer.size());
    pump(c);
}

void Worker::Impl::pumpReply(Connection& c) {
    if (!has(c, ClientSend)) {
        if (c.downOut && !c.downOut->empty()) {
            send(c, c.client.get(), *c.downOut, ClientSend);
        } else if (!c.clientWriteShut) {
            ::shutdown(c.client.get(), SHUT_WR);
            c.clientWriteShut = true;
        }
    }
    if (c.clientEof && c.clientWriteShut) {
        c.closing = true;
    } else {
        readClient(c);
    }
}

}  // namespace lastmile::dataplane
