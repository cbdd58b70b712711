// SPDX-License-Identifier: Apache-2.0
// Deadlines checked every tick: timeouts, stalled operations, quiet sides to park.
#include "dataplane/worker/worker_impl.h"

namespace lastmile::dataplane {

namespace {

// A side with no traffic for this long gives its read buffer back (see park()).
constexpr std::chrono::seconds kParkAfter{1};
// An operation moving bytes that has waited this long while its socket was ready is stuck, not
// slowed by a peer: the connection is closed as stalled (scanDeadlines). Generous, since a loaded
// host can delay any completion by a second or more.
constexpr std::chrono::seconds kStallAfter{10};

}  // namespace

void Worker::Impl::scanDeadlines() {
    for (Connection* c = head_; c != nullptr;) {
        Connection* next = c->next;
        if (!c->closing && now_ >= c->deadline) {
            onDeadline(*c);
        } else if (!c->closing && c->resetWhenDelivered) {
            resetWhenDelivered(*c);
        } else if (!c->closing && c->stage == Stage::Forwarding && stalled(*c)) {
            breakStream(*c, Failure::Stalled,
                        "an operation waited " + std::to_string(kStallAfter.count()) +
                            " s while its socket was ready");
        } else if (!c->closing && now_ - c->lastActivity >= kParkAfter &&
                   (c->stage == Stage::Forwarding || c->stage == Stage::Pooled)) {
            park(*c);
        }
        c = next;
    }
}

bool Worker::Impl::stalled(const Connection& c) const {
    const auto stuck = [this](Clock::time_point since, int fd, short ready) {
        if (since == Clock::time_point::max() || now_ - since < kStallAfter) {
            return false;
        }
        pollfd p{fd, ready, 0};
        return ::poll(&p, 1, 0) == 1 && (p.revents & ready) != 0;
    };
    return stuck(c.toBackendSince, c.backend.get(), POLLOUT) ||
           stuck(c.toClientSince, c.client.get(), POLLOUT) ||
           stuck(c.fromClientSince, c.client.get(), POLLIN);
}

void Worker::Impl::onDeadline(Connection& c) {
    c.deadline = Clock::time_point::max();
    switch (c.stage) {
        case Stage::Connecting:
            if (c.slotWaiting) {
                leaveSlotWait(c);
                reject(c, Failure::BackendConnectionLimit, 503,
                       "too many backend connections (maxBackendConnections)");
                break;
            }
            c.connectTimedOut = true;
            cancelOps(c, c.backend.get(), bit(Connect));
            break;
        case Stage::Handshaking:
            reject(c, Failure::HandshakeTimeout, 504, "TLS handshake with the backend timed out");
            pump(c);
            break;
        case Stage::Forwarding:
            counters_.fail(Failure::IdleTimeout);
            abort(c);
            break;
        case Stage::Pooled:
            bump(counters_.warmPoolDiscarded);
            abort(c);
            break;
        case Stage::Replying:
            abort(c);
            break;
    }
}

}  // namespace lastmile::dataplane
