// SPDX-License-Identifier: Apache-2.0
// Per-Service and per-listener counters, and the control thread's view of them.
#include "dataplane/worker/worker_impl.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <ctime>

namespace lastmile::dataplane {

ServiceCounters& Worker::Impl::serviceCounters(const ServiceKey& key) {
    auto it = serviceStats_.find(key);
    if (it == serviceStats_.end()) {
        std::lock_guard lock(statsMu_);
        it = serviceStats_.emplace(key, std::make_unique<ServiceCounters>()).first;
    }
    return *it->second;
}

ListenerCounters& Worker::Impl::listenerCounters(const route::ListenerId& id) {
    auto it = listenerStats_.find(id);
    if (it == listenerStats_.end()) {
        std::lock_guard lock(statsMu_);
        it = listenerStats_.emplace(id, std::make_unique<ListenerCounters>()).first;
    }
    return *it->second;
}

void Worker::Impl::countService(Connection& c) {
    c.serviceStats = &serviceCounters(ServiceKey{c.project, c.backendKey});
    bump(c.serviceStats->connections);
    c.serviceStats->active.fetch_add(1, std::memory_order_relaxed);
}

void Worker::Impl::recordCertificateExpiry(Connection& c) {
    X509* leaf = SSL_get0_peer_certificate(c.ssl.get());
    std::tm tm{};
    if (leaf != nullptr && ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1) {
        c.serviceStats->certificateNotAfter.store(timegm(&tm), std::memory_order_relaxed);
    }
}

std::int64_t Worker::activeConnections() const {
    return impl_->counters_.active.load(std::memory_order_relaxed);
}

const WorkerCounters& Worker::counters() const { return impl_->counters_; }

void Worker::collect(DataplaneStats& into) const {
    std::lock_guard lock(impl_->statsMu_);
    for (const auto& [key, c] : impl_->serviceStats_) {
        ServiceStats& s = into.services[key];
        s.connections += c->connections.load(std::memory_order_relaxed);
        s.active += c->active.load(std::memory_order_relaxed);
        s.sentBytes += c->sentBytes.load(std::memory_order_relaxed);
        s.receivedBytes += c->receivedBytes.load(std::memory_order_relaxed);
        s.handshakesFull += c->handshakesFull.load(std::memory_order_relaxed);
        s.handshakesResumed += c->handshakesResumed.load(std::memory_order_relaxed);
        s.handshakesFailed += c->handshakesFailed.load(std::memory_order_relaxed);
        s.certificateNotAfter =
            std::max(s.certificateNotAfter, c->certificateNotAfter.load(std::memory_order_relaxed));
        if (const char* engine = c->engine.load(std::memory_order_relaxed)) {
            s.engine = engine;
        }
    }
    for (const auto& [id, c] : impl_->listenerStats_) {
        ListenerStats& l = into.listeners[id];
        l.connections += c->connections.load(std::memory_order_relaxed);
        l.active += c->active.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < l.intercepted.size(); ++i) {
            l.intercepted[i] += c->intercepted[i].load(std::memory_order_relaxed);
        }
    }
    const drivers::EngineSet& engines = *impl_->shared_.engines;
    for (std::size_t i = 0; i < engines.size(); ++i) {
        into.engineSessions[std::string(engines.at(i).name())] +=
            impl_->counters_.engineSessions[i].load(std::memory_order_relaxed);
    }
    into.perWorker.push_back({impl_->counters_.ringSubmits.load(std::memory_order_relaxed),
                              impl_->counters_.active.load(std::memory_order_relaxed)});
}

}  // namespace lastmile::dataplane
