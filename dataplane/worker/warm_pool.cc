// SPDX-License-Identifier: Apache-2.0
// The warm pool: handshaken backend connections waiting for clients.
#include "dataplane/worker/worker_impl.h"

#include <algorithm>

namespace lastmile::dataplane {

namespace {

// Warm-pool connections per backend Service port, whole process (the warm-pool option's
// maximum): N per endpoint is capped there for Services with many endpoints.
constexpr std::size_t kMaxPooledPerBackend = 64;

}  // namespace

Connection* Worker::Impl::takePooled(const Connection& client) {
    auto it = pool_.find(PoolKey{client.project, client.backendKey});
    if (it == pool_.end()) {
        return nullptr;
    }
    auto& list = it->second;
    while (!list.empty()) {
        Connection* p = list.front();
        list.erase(list.begin());
        counters_.pooled.fetch_sub(1, std::memory_order_relaxed);
        // No longer in the pool's accounting, whatever happens next.
        setStage(*p, Stage::Forwarding);
        p->warm = false;
        if (!p->closing && p->profile == client.profile && !p->backendEof && !p->backendFin) {
            return p;
        }
        bump(counters_.warmPoolDiscarded);  // stale: closed, or an older profile
        abort(*p);
    }
    return nullptr;
}

void Worker::Impl::refillPools() {
    if (draining_) {
        return;
    }
    std::map<PoolKey, const route::Backend*> wanted;
    for (const auto& [id, l] : listeners_) {
        if (l->plan == nullptr) {
            continue;
        }
        for (const auto& b : l->plan->backends) {
            if (b.profile && !b.profile->isFailClosed() && b.profile->spec().warmPool > 0) {
                wanted[PoolKey{id.project, b.key}] = &b;
            }
        }
    }
    for (auto& [key, list] : pool_) {
        auto w = wanted.find(key);
        for (Connection* p : std::vector<Connection*>(list)) {
            if (!p->closing && (w == wanted.end() || p->profile != w->second->profile)) {
                bump(counters_.warmPoolDiscarded);
                abort(*p);
            }
        }
    }
    for (const auto& [key, backend] : wanted) {
        const std::size_t endpoints = std::max<std::size_t>(1, backend->endpoints.size());
        const std::size_t target =
            (backend->profile->spec().warmPool * endpoints + shared_.workerCount - 1) /
            shared_.workerCount;
        const std::size_t cap =
            (kMaxPooledPerBackend + shared_.workerCount - 1) / shared_.workerCount;
        std::size_t have = pool_[key].size() + static_cast<std::size_t>(warming_[key]);
        for (; have < std::min(target, cap); ++have) {
            if (!startWarm(key.first, *backend)) {
                break;
            }
        }
    }
}

bool Worker::Impl::startWarm(const std::string& project, const route::Backend& backend) {
    if (!balancer_.pickEndpoint(project, backend, {}, false, now_) ||
        shared_.backendConnections.load(std::memory_order_relaxed) >= backendCap(true) ||
        shared_.slotWanted.load(std::memory_order_relaxed) > 0) {
        return false;  // every endpoint is backed off, or no slot: the next scan tries again
    }
    auto* c = new Connection();
    link(*c);
    c->warm = true;
    c->lastActivity = now_;
    c->project = project;
    c->snapshot = snapshot_;
    c->target = &backend;
    c->backendKey = backend.key;
    c->profile = backend.profile;
    c->serviceStats = &serviceCounters(ServiceKey{project, backend.key});
    warming_[PoolKey{project, backend.key}]++;
    connectNext(*c);
    pump(*c);
    return true;
}

}  // namespace lastmile::dataplane
