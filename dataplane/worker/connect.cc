// SPDX-License-Identifier: Apache-2.0
// Connecting to a backend endpoint, within the backend connection slots.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace lastmile::dataplane {

void Worker::Impl::connectNext(Connection& c) {
    const std::string service = c.backendKey.ns + "/" + c.backendKey.service + ":" +
                                std::to_string(c.backendKey.port);
    std::optional<route::Endpoint> ep;
    if (c.target != nullptr) {
        ep = balancer_.pickEndpoint(c.project, *c.target, c.tried, !c.warm, now_);
    }
    if (!ep) {
        if (c.slotWaiting) {
            leaveSlotWait(c);
        }
        if (c.warm) {
            abort(c);
        } else if (c.tried.empty() && c.resolved) {
            reject(c, Failure::NoBackend, 503,
                   "service " + service + ": ExternalName " + c.resolved->externalName +
                       " has no address (not resolved yet, or the lookup failed)");
        } else if (c.tried.empty()) {
            reject(c, Failure::NoBackend, 503, "no ready endpoint for service " + service);
        } else if (c.notPermitted == c.tried.size()) {
            reject(c, Failure::NotPermitted, 503,
                   "service " + service + ": " + c.lastConnectError);
        } else {
            reject(c, Failure::ConnectFailed, 503,
                   "no endpoint of service " + service + " accepted a connection (last: " +
                       c.lastConnectError + ")");
        }
        return;
    }
    if (!c.tried.empty()) {
        bump(counters_.endpointRetries);
    }
    if (!takeBackendSlot(c.warm)) {
        if (c.warm) {
            abort(c);
        } else {
            waitForSlot(c);
        }
        return;
    }
    if (c.slotWaiting) {
        leaveSlotWait(c);
    }
    c.tried.push_back(*ep);
    c.endpoint = *ep;
    auto address = net::SocketAddress::parse(ep->address, ep->port);
    if (auto permitted = address ? shared_.backendFilter->check(*address) : Status{};
        !permitted) {
        // No socket was opened for the slot taken above: it goes back now, or every refused
        // dial would use up one of maxBackendConnections for good.
        releaseBackendSlot();
        // Backed off like a refused connect, so refills and later clients try others first.
        balancer_.failed(c.project, c.endpoint, now_);
        ++c.notPermitted;
        c.lastConnectError = permitted.error().context();
        connectNext(c);
        return;
    }
    auto fd = address ? net::tcpSocket(address->family()) : Result<UniqueFd>(fail(address.error()));
    if (!fd) {
        releaseBackendSlot();
        c.lastConnectError = fd.error().message();
        connectNext(c);
        return;
    }
    // Interception never takes over a marked socket: a backend whose address is a virtual
    // address is still reached, not looped back into a listener.
    if (const std::uint32_t mark = shared_.backendMark;
        mark != 0 && ::setsockopt(fd->get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == -1) {
        releaseBackendSlot();
        c.lastConnectError = std::string("setting SO_MARK: ") + std::strerror(errno);
        connectNext(c);
        return;
    }
    c.backend = std::move(*fd);
    c.endpointAddress = *address;
    setStage(c, Stage::Connecting);
    c.connectTimedOut = false;
    c.deadline = now_ + shared_.options.connectTimeout;
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_connect(s, c.backend.get(), c.endpointAddress->get(),
                          c.endpointAddress->length());
    submit(c, s, Connect);
}

void Worker::Impl::onConnect(Connection& c, int res) {
    if (res == 0 && !c.connectTimedOut) {
        balancer_.succeeded(c.project, c.endpoint);
        if (c.profile) {
            startHandshake(c);
        } else if (!c.warm && !allowedByPolicy(c)) {
            closeForPolicy(c);  // a policy for this backend was published meanwhile
        } else {
            bump(counters_.plainBackend);
            c.serviceStats->engine.store("none", std::memory_order_relaxed);
            c.snapshot.reset();
            c.target = nullptr;
            setStage(c, Stage::Forwarding);
            c.deadline = now_ + shared_.options.idleTimeout;
        }
        return;
    }
    balancer_.failed(c.project, c.endpoint, now_);
    c.lastConnectError = c.endpointAddress->toString() + ": " +
                         (c.connectTimedOut ? std::string("connect timed out")
                                            : std::string(std::strerror(-res)));
    c.backend.reset();
    releaseBackendSlot();
    connectNext(c);
}

std::int64_t Worker::Impl::backendCap(bool warm) const {
    const std::int64_t limit = shared_.options.backendConnectionLimit();
    return warm ? limit / 2 : limit;
}

bool Worker::Impl::takeBackendSlot(bool warm) {
    if (shared_.backendConnections.fetch_add(1, std::memory_order_relaxed) >= backendCap(warm)) {
        releaseBackendSlot();
        return false;
    }
    return true;
}

void Worker::Impl::releaseBackendSlot() {
shared_.backendConnections.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::Impl::waitForSlot(Connection& c) {
    if (!c.slotWaiting) {
        c.slotWaiting = true;
        slotWaiters_.push_back(&c);
        shared_.slotWanted.fetch_add(1, std::memory_order_relaxed);
        c.deadline = now_ + shared_.options.connectTimeout;
    }
}

void Worker::Impl::leaveSlotWait(Connection& c) {
    c.slotWaiting = false;
    std::erase(slotWaiters_, &c);
    shared_.slotWanted.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::Impl::serveSlotWaiters() {
    if (shared_.slotWanted.load(std::memory_order_relaxed) > 0) {
        for (auto& [key, list] : pool_) {
            for (Connection* p : std::vector<Connection*>(list)) {
                if (!p->closing) {
                    bump(counters_.warmPoolDiscarded);
                    abort(*p);
                }
            }
        }
    }
    for (Connection* c : std::vector<Connection*>(slotWaiters_)) {
        if (c->closing) {
            leaveSlotWait(*c);  // the client went away meanwhile
            continue;
        }
        connectNext(*c);
        pump(*c);
    }
}

}  // namespace lastmile::dataplane
