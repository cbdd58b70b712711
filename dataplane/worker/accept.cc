// SPDX-License-Identifier: Apache-2.0
// Listeners and accepting: a new client gets its listener's route and a backend.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace lastmile::dataplane {

namespace {

// Client sockets are non-blocking like backend ones. io_uring runs every splice on an
// io-wq thread, where a splice from a blocking socket with nothing to read sleeps inside
// the kernel holding the pipe's lock: the splice draining that pipe into the backend
// then waits for the lock, so an interactive client waiting for the answer to bytes
// still in the pipe stalled both for good (the hung iou-wrk thread of issue 14). A
// non-blocking splice returns EAGAIN instead, and the worker waits for readability.
constexpr int kClientSocketFlags = SOCK_CLOEXEC | SOCK_NONBLOCK;

}  // namespace

const route::ListenerPlan* Worker::Impl::findPlan(const route::ListenerId& id) const {
    auto p = snapshot_->listeners.find(id.project);
    if (p == snapshot_->listeners.end()) {
        return nullptr;
    }
    auto it = std::lower_bound(p->second.begin(), p->second.end(), id,
                               [](const route::ListenerPlan& plan, const route::ListenerId& key) {
                                   return plan.id < key;
                               });
    return it != p->second.end() && it->id == id ? &*it : nullptr;
}

void Worker::Impl::armAccept(Listener& l) {
    io_uring_sqe* s = ring_->sqe();
    if (ring_->features().multishotAccept) {
        io_uring_prep_multishot_accept(s, l.fd.get(), nullptr, nullptr, kClientSocketFlags);
    } else {
        io_uring_prep_accept(s, l.fd.get(), nullptr, nullptr, kClientSocketFlags);
    }
    io_uring_sqe_set_data64(s, uring::packUserData(Accept, reinterpret_cast<std::uint64_t>(&l)));
    l.armed = true;
}

void Worker::Impl::stopAccepting(Listener& l) {
    if (l.armed) {
        io_uring_sqe* s = ring_->sqe();
        io_uring_prep_cancel64(
            s, uring::packUserData(Accept, reinterpret_cast<std::uint64_t>(&l)), 0);
        io_uring_sqe_set_data64(s, uring::packUserData(Ignore, 0));
    }
}

// The id may be bound again at once (a port change), so a listener whose accept is still
// in flight leaves listeners_ now and is freed when that accept's last completion comes.
void Worker::Impl::removeListener(const route::ListenerId& id) {
    auto it = listeners_.find(id);
    if (it == listeners_.end()) {
        return;
    }
    std::unique_ptr<Listener> l = std::move(it->second);
    listeners_.erase(it);
    l->removing = true;
    l->plan = nullptr;
    if (l->armed) {
        stopAccepting(*l);
        retiring_.push_back(std::move(l));
    }
}

void Worker::Impl::onAccept(Listener& l, int res, unsigned flags) {
    if ((flags & IORING_CQE_F_MORE) == 0) {
        l.armed = false;
    }
    const bool shutDown = res == -EINVAL && !net::isListening(l.fd.get());
    if (res >= 0) {
        newClient(l, UniqueFd(res));
    } else if (shutDown) {
        // The dataplane shut the socket down to free its address; the removal follows.
    } else if (res == -EINVAL && ring_->features().multishotAccept) {
        LM_LOG(Warning, kLog, "multishot accept refused by the kernel; accepting one at a time");
        ring_->disableMultishotAccept();
    } else if (res != -ECANCELED) {
        LM_LOG(Warning, kLog, "accept on " << l.id.gateway << "/" << l.id.listener << ": "
                                           << std::strerror(-res));
    }
    if (!l.armed) {
        if (l.removing) {
            std::erase_if(retiring_, [&l](const auto& r) { return r.get() == &l; });
        } else if (!draining_ && !shutDown) {
            armAccept(l);
        }
    }
}

void Worker::Impl::newClient(Listener& l, UniqueFd fd) {
    const auto limit = static_cast<std::int64_t>(shared_.options.maxConnections);
    if (shared_.connections.fetch_add(1, std::memory_order_relaxed) >= limit) {
        shared_.connections.fetch_sub(1, std::memory_order_relaxed);
        counters_.fail(Failure::ConnectionLimit);
        return;  // fd closes: the client sees the connection end at once
    }
    bump(counters_.accepted);
    counters_.active.fetch_add(1, std::memory_order_relaxed);
    net::setNoDelay(fd.get());
    if (l.plan == nullptr) {
        // Bound before its generation was published: the publish is a moment away.
        refreshSnapshot();
    }
    auto* c = new Connection();
    link(*c);
    c->client = std::move(fd);
    c->snapshot = snapshot_;
    c->lastActivity = now_;
    c->listenerStats = &listenerCounters(l.id);
    bump(c->listenerStats->connections);
    c->listenerStats->active.fetch_add(1, std::memory_order_relaxed);
    if (l.intercepting && shared_.interceptor != nullptr) {
        if (auto mode = shared_.interceptor->interceptedBy(c->client.get())) {
            bump(c->listenerStats->intercepted[static_cast<std::size_t>(*mode)]);
        }
    }
    if (l.plan == nullptr) {
        c->protocol = route::ListenerProtocol::Tcp;
        reject(*c, Failure::NoBackend, 503, "the listener is being reconfigured");
        return;
    }
    const route::ListenerPlan& plan = *l.plan;
    c->protocol = plan.protocol;
    c->project = plan.id.project;
    if (plan.backends.empty()) {
        reject(*c, Failure::NoBackend, 503,
               "no backend: no accepted Route of this listener reaches a Service");
        return;
    }
    const route::Backend& backend = Balancer::pickBackend(plan.backends, l.cursor);
    c->target = &backend;
    c->backendKey = backend.key;
    c->profile = backend.profile;
    countService(*c);
    if (c->profile && c->profile->isFailClosed()) {
        reject(*c, Failure::FailClosed, 503, c->profile->failClosedReason());
        return;
    }
    if (!backend.externalName.empty()) {
        c->resolved = backend;
        for (auto& ip : shared_.resolver->addresses(backend.externalName)) {
            c->resolved->endpoints.push_back({std::move(ip), backend.externalPort});
        }
        c->target = &*c->resolved;
    }
    if (c->profile && c->profile->spec().warmPool > 0) {
        if (Connection* pooled = takePooled(*c)) {
            bump(counters_.warmPoolHits);
            pooled->client = std::move(c->client);
            pooled->protocol = c->protocol;
            pooled->listenerStats = c->listenerStats;
            pooled->serviceStats = c->serviceStats;
            pooled->warm = false;
            setStage(*pooled, Stage::Forwarding);
            pooled->deadline = now_ + shared_.options.idleTimeout;
            unlink(*c);
            delete c;
            // Refilled once this client has its first answer: a handshake started now
            // would compete with that first exchange, on this worker and on the backend.
            pooled->refillAfterAnswer = true;
            pump(*pooled);
            return;
        }
        bump(counters_.warmPoolMisses);
    }
    connectNext(*c);
    pump(*c);
}

}  // namespace lastmile::dataplane
