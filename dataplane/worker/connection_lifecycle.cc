// SPDX-License-Identifier: Apache-2.0
// The end of a connection, its stage bookkeeping and the list of connections.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

#include <algorithm>

namespace lastmile::dataplane {

void Worker::Impl::abort(Connection& c) {
    c.closing = true;
    if (c.client.valid() && c.resetClient) {
        // The close is a reset (SO_LINGER {1, 0}); SHUT_RD ends a pending receive, poll
        // or splice without the FIN that SHUT_WR would send.
        const linger abortive{1, 0};
        ::setsockopt(c.client.get(), SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
        if (has(c, ClientSend)) {
            cancel(c, ClientSend);
        }
        if ((c.pending & kClientOps & ~bit(ClientSend)) != 0) {
            ::shutdown(c.client.get(), SHUT_RD);
        }
    } else if (c.client.valid()) {
        cancelOps(c, c.client.get(), kClientOps);
    }
    if (c.backend.valid()) {
        cancelOps(c, c.backend.get(), kBackendOps);
    }
    maybeDestroy(c);
}

void Worker::Impl::maybeDestroy(Connection& c) {
    if (!c.closing || c.pending != 0 || c.dead || (c.session && c.session->onDevice())) {
        return;  // the lane pumps it again once the device gave its buffers back
    }
    if (c.stage == Stage::Handshaking) {
        setStage(c, Stage::Connecting);  // only to keep the handshake count right
    }
    if (c.stage == Stage::Pooled) {
        auto& list = pool_[PoolKey{c.project, c.backendKey}];
        list.erase(std::remove(list.begin(), list.end(), &c), list.end());
        counters_.pooled.fetch_sub(1, std::memory_order_relaxed);
    } else if (c.warm) {
        warming_[PoolKey{c.project, c.backendKey}]--;
    }
    if (c.backend.valid()) {
        releaseBackendSlot();
    }
    if (c.starved) {
        std::erase(starved_, &c);
    }
    if (c.slotWaiting) {
        leaveSlotWait(c);
    }
    if (c.client.valid()) {
        bump(counters_.closed);
        counters_.active.fetch_sub(1, std::memory_order_relaxed);
        shared_.connections.fetch_sub(1, std::memory_order_relaxed);
        c.listenerStats->active.fetch_sub(1, std::memory_order_relaxed);
        if (c.serviceStats != nullptr) {
            c.serviceStats->active.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    pool_chunks_.releaseReceive(c.upIn, c.downIn);
    pool_chunks_.releaseReceive(c.downIn, c.upIn);
    pool_chunks_.release(c.upOut);
    pool_chunks_.release(c.downOut);
    unlink(c);
    c.dead = true;
    dead_.push_back(&c);
}

void Worker::Impl::buryDead() {
    for (Connection* c : dead_) {
        delete c;
        // A connection closed while it still held its buffers (clients that trickle
        // bytes never park) frees them here: a burst of such closes must trim too.
        noteRelease();
    }
    dead_.clear();
}

void Worker::Impl::setStage(Connection& c, Stage stage) {
    if (c.stage == Stage::Handshaking) {
        --handshaking_;
        noteRelease();
    }
    if (stage == Stage::Handshaking) {
        ++handshaking_;
    }
    c.stage = stage;
}

void Worker::Impl::link(Connection& c) {
    c.next = head_;
    if (head_ != nullptr) {
        head_->prev = &c;
    }
    head_ = &c;
}

void Worker::Impl::unlink(Connection& c) {
    (c.prev != nullptr ? c.prev->next : head_) = c.next;
    if (c.next != nullptr) {
        c.next->prev = c.prev;
    }
}

}  // namespace lastmile::dataplane
