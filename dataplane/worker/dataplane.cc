// SPDX-License-Identifier: Apache-2.0
// Dataplane: starting workers, binding listeners for them, draining, summing counters.
#include "dataplane/worker/dataplane.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "base/log.h"
#include "base/text.h"
#include "dataplane/net/socket.h"

namespace lastmile::dataplane {
namespace {

constexpr const char* kLog = "dataplane";

}  // namespace

void DataplaneStats::add(const WorkerCounters& w) {
#define LM_ADD(field, name, help) field += w.field.load(std::memory_order_relaxed);
    LM_DATAPLANE_COUNTERS(LM_ADD)
#undef LM_ADD
    for (std::size_t i = 0; i < kFailureCount; ++i) {
        failures[i] += w.failures[i].load(std::memory_order_relaxed);
    }
    closed += w.closed.load(std::memory_order_relaxed);
    closedByPolicy += w.closedByPolicy.load(std::memory_order_relaxed);
    active += w.active.load(std::memory_order_relaxed);
    pooled += w.pooled.load(std::memory_order_relaxed);
    ringSubmits += w.ringSubmits.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < w.handshakeSeconds.buckets.size(); ++i) {
        handshakeSeconds.buckets[i] += w.handshakeSeconds.buckets[i].load(std::memory_order_relaxed);
    }
    handshakeSeconds.sum += static_cast<double>(w.handshakeSeconds.sumMicros.load(std::memory_order_relaxed)) / 1e6;
    handshakeSeconds.count += w.handshakeSeconds.count.load(std::memory_order_relaxed);
    ++workers;
}

Result<std::unique_ptr<Dataplane>> Dataplane::start(const DataplaneOptions& options,
                                                    tls::ProfileRegistry& registry,
                                                    const uring::RingOptions& ring) {
    std::unique_ptr<Dataplane> d(new Dataplane(options));
    d->shared_.registry = &registry;
    d->shared_.ring = ring;
    d->shared_.resolver = &d->resolver_;
    d->backendFilter_ = std::make_shared<net::AddressFilter>(options.allowedBackendNetworks);
    d->shared_.backendFilter = d->backendFilter_.get();
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    d->shared_.workerCount = options.workers == 0 ? cores : options.workers;
    if (options.interception) {
        // Here, on the caller's thread and before any worker: routed mode attaches to the
        // network namespace of the thread that starts it.
        d->interceptor_ = Interceptor::start(*options.interception);
        d->shared_.interceptor = d->interceptor_.get();
        d->shared_.backendMark = d->interceptor_->backendMark();
    }

    auto engines = drivers::EngineSet::create(options.recordEngines, options.cryptodev);
    if (!engines) {
        return fail(std::move(engines).error());
    }
    d->engines_ = std::make_unique<drivers::EngineSet>(std::move(*engines));
    d->shared_.engines = d->engines_.get();
    for (std::size_t i = 0; i < d->engines_->size(); ++i) {
        const drivers::EngineProbe& probe = d->engines_->probe(i);
        LM_LOG(Info, kLog, "record engine " << d->engines_->at(i).name() << ": "
                                            << (probe.usable ? "usable" : "unusable") << " ("
                                            << probe.detail << ")");
    }
    for (unsigned i = 0; i < d->shared_.workerCount; ++i) {
        auto worker = std::make_unique<Worker>(i, d->shared_);
        if (auto s = worker->start(); !s) {
            return fail(std::move(s).error());
        }
        d->workers_.push_back(std::move(worker));
    }
    LM_LOG(Info, kLog, d->shared_.workerCount << " dataplane worker(s), io_uring setup "
                                              << d->workers_.front()->ringSetup());
    return d;
}

Dataplane::~Dataplane() { workers_.clear(); }

std::map<route::ListenerId, route::ListenerState> Dataplane::bind(
    const std::string& project, const std::vector<route::ListenerPlan>& plans) {
    std::lock_guard lock(mu_);
    std::map<route::ListenerId, route::ListenerState> states;
    // Plans whose address parses.
    std::map<route::ListenerId, std::pair<net::SocketAddress, const route::ListenerPlan*>> wanted;
    for (const auto& plan : plans) {
        const std::string ip = plan.address.empty() ? shared_.options.bindAddress : plan.address;
        auto address = net::SocketAddress::parse(ip, plan.port);
        if (!address) {
            states[plan.id] = {false, address.error().context()};
            continue;
        }
        wanted.emplace(plan.id, std::make_pair(*address, &plan));
    }
    // Close what this project no longer wants, or wants elsewhere, before binding: a listener
    // that moved may reuse an address another of ours just gave up.
    for (auto it = bound_.begin(); it != bound_.end();) {
        auto w = wanted.find(it->first);
        if (it->first.project == project &&
            (w == wanted.end() || w->second.first.toString() != it->second.address ||
             w->second.second->virtualAddresses != it->second.virtualAddresses)) {
            // Nothing may be steered to the socket once it stops listening.
            unregister(it->second.registered);
            for (auto& worker : workers_) {
                worker->removeListener(it->first);
            }
            // The workers close their duplicates when their accepts have ended; shutting the
            // socket down stops it listening now, so its address can be bound again at once.
            ::shutdown(it->second.socket.get(), SHUT_RD);
            LM_LOG(Info, kLog, "closed listener " << it->second.address);
            owners_.erase(it->second.address);
            backendFilter_->forget(it->second.boundAddress);
            it = bound_.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& [id, want] : wanted) {
        const auto& [requested, plan] = want;
        const std::string text = requested.toString();
        if (auto it = bound_.find(id); it != bound_.end()) {
            states[id] = {true, "bound to " + it->second.actual, false, it->second.intercepted};
            continue;
        }
        if (auto usable = checkVirtual(*plan); !usable) {
            // The address may yet come to this host (then it is no longer virtual), or a
            // mode become usable; one outside interception.addresses stays refused.
            states[id] = {false, usable.error().context(),
                          usable.error().code() == make_error_code(Errc::Unavailable)};
            continue;
        }
        if (owners_.count(text) != 0) {
            states[id] = {false, text + " is already in use by another listener"};
            continue;
        }
        std::vector<UniqueFd> sockets;
        Status opened;
        net::SocketAddress address = requested;
        std::string actual = text;
        const bool intercepting = !plan->virtualAddresses.empty();
        auto listening = net::listenTcp(requested, 4096, [&](int fd) {
            return intercepting ? interceptor_->prepareListener(fd) : Status{};
        });
        if (!listening) {
            opened = fail(std::move(listening).error());
        } else if (auto local = net::SocketAddress::localOf(listening->get()); !local) {
            opened = fail(std::move(local).error());
        } else {
            address = *local;  // with the port the kernel picked for port 0 (tests)
            actual = address.toString();
        }
        std::vector<Registered> registered;
        if (opened && intercepting) {
            auto taken = registerVirtual(*plan, address, listening->get());
            if (taken) {
                registered = std::move(*taken);
            } else {
                opened = fail(std::move(taken).error());
            }
        }
        for (std::size_t i = 0; opened && i < workers_.size(); ++i) {
            auto fd = net::duplicate(listening->get());
            if (!fd) {
                opened = fail(std::move(fd).error());
                break;
            }
            sockets.push_back(std::move(*fd));
        }
        if (!opened) {
            unregister(registered);
            const std::error_code code = opened.error().code();
            states[id] = {false, opened.error().message(),
                          code == std::errc::address_in_use ||
                              code == std::errc::address_not_available};
            LM_LOG(Warning, kLog, "listener " << id.gatewayNamespace << "/" << id.gateway << " "
                                              << id.listener << ": " << opened.error().message());
            continue;
        }
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            workers_[i]->addListener(id, std::move(sockets[i]), intercepting);
        }
        std::vector<route::Interception> intercepted;
        for (std::size_t i = 0; i < registered.size(); ++i) {
            route::Interception& shown = intercepted.emplace_back();
            shown.address = plan->virtualAddresses[i];
            for (InterceptMode mode : registered[i].modes) {
                shown.modes.emplace_back(modeName(mode));
            }
        }
        bound_[id] = Bound{text, actual, std::move(*listening), address, plan->virtualAddresses,
                           std::move(registered), intercepted};
        owners_[text] = id;
        backendFilter_->listen(address);
        states[id] = {true, "bound to " + actual, false, std::move(intercepted)};
        LM_LOG(Info, kLog, "listening on " << actual << " for " << id.gatewayNamespace << "/"
                                           << id.gateway << " " << id.listener);
    }
    return states;
}

Status Dataplane::checkVirtual(const route::ListenerPlan& plan) const {
    if (plan.virtualAddresses.empty()) {
        return {};
    }
    const std::string what = join(plan.virtualAddresses, ", ") +
                             (plan.virtualAddresses.size() == 1 ? " is" : " are") +
                             " not an address of this host and ";
    if (!interceptor_) {
        return fail(Errc::Unavailable, what + "interception is not configured");
    }
    std::vector<std::string> outside;
    for (const auto& ip : plan.virtualAddresses) {
        const auto address = net::IpAddress::parse(ip);
        const auto& allowed = shared_.options.interception->addresses;
        if (!address || std::none_of(allowed.begin(), allowed.end(), [&](const net::Network& n) {
                return n.contains(*address);
            })) {
            outside.push_back(ip);
        }
    }
    if (!outside.empty()) {
        return fail(Errc::Invalid, join(outside, ", ") +
                                       (outside.size() == 1 ? " is" : " are") +
                                       " not an address of this host, nor in the networks "
                                       "interception may take over (interception.addresses)");
    }
    std::vector<std::string> reasons;
    for (InterceptMode mode : kInterceptModes) {
        if (auto usable = interceptor_->usable(mode); usable) {
            return {};
        } else if (std::find(reasons.begin(), reasons.end(), usable.error().context()) ==
                   reasons.end()) {
            reasons.push_back(usable.error().context());  // once: a build without BPF says so
        }
    }
    return fail(Errc::Unavailable, what + "no interception mode is usable: " + join(reasons, "; "));
}

Result<std::vector<Dataplane::Registered>> Dataplane::registerVirtual(
    const route::ListenerPlan& plan, const net::SocketAddress& address, int fd) {
    std::vector<Registered> registered;
    Status status;
    for (const auto& ip : plan.virtualAddresses) {
        auto vip = net::SocketAddress::parse(ip, address.port());
        if (!vip) {
            status = fail(std::move(vip).error());
            break;
        }
        const std::string text = vip->toString();
        const bool taken = std::any_of(bound_.begin(), bound_.end(), [&](const auto& b) {
            return std::any_of(b.second.registered.begin(), b.second.registered.end(),
                               [&](const Registered& r) { return r.vip.toString() == text; });
        });
        if (taken) {
            // In use, like a held port: bound again once the other listener lets it go.
            status = fail(std::make_error_code(std::errc::address_in_use),
                          text + " is already taken over by another listener");
            break;
        }
        auto modes = interceptor_->add(*vip, address, fd);
        if (!modes) {
            status = fail(modes.error().code(), text + ": " + modes.error().context());
            break;
        }
        registered.push_back({*vip, std::move(*modes)});
    }
    if (!status) {
        unregister(registered);
        return fail(std::move(status).error());
    }
    return registered;
}

void Dataplane::unregister(const std::vector<Registered>& registered) {
    for (const auto& r : registered) {
        interceptor_->remove(r.vip, r.modes);
    }
}

void Dataplane::refresh() {
    std::set<std::string> names;
    for (const auto& [project, plans] : shared_.registry->snapshot()->listeners) {
        for (const auto& plan : plans) {
            for (const auto& b : plan.backends) {
                if (!b.externalName.empty()) {
                    names.insert(b.externalName);
                }
            }
        }
    }
    resolver_.track(std::move(names));
    for (auto& worker : workers_) {
        worker->refresh();
    }
}

std::int64_t Dataplane::drain() {
    for (auto& worker : workers_) {
        worker->drain();
    }
    {
        std::lock_guard lock(mu_);
        for (const auto& [id, b] : bound_) {
            unregister(b.registered);
        }
        bound_.clear();
        owners_.clear();
    }
    const auto deadline = std::chrono::steady_clock::now() + shared_.options.drainTimeout;
    std::int64_t open = 0;
    for (;;) {
        open = 0;
        for (const auto& worker : workers_) {
            open += worker->activeConnections();
        }
        if (open == 0 || std::chrono::steady_clock::now() >= deadline) {
            return open;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

DataplaneStats Dataplane::stats() const {
    DataplaneStats total;
    for (const auto& worker : workers_) {
        total.add(worker->counters());
        worker->collect(total);
    }
    total.backendConnections = shared_.backendConnections.load(std::memory_order_relaxed);
    total.backendConnectionLimit = shared_.options.backendConnectionLimit();
    total.bufferMemory = shared_.buffers.used();
    total.bufferMemoryLimit = shared_.buffers.limit();
    if (interceptor_) {
        for (InterceptMode mode : kInterceptModes) {
            total.interception[mode] = {static_cast<bool>(interceptor_->usable(mode)),
                                        interceptor_->counters(mode)};
        }
    }
    for (std::size_t i = 0; i < engines_->size(); ++i) {
        const drivers::RecordEngine& engine = engines_->at(i);
        for (const auto& [reason, n] : engine.declines()) {
            total.engineDeclines[{std::string(engine.name()), std::string(reason)}] = n;
        }
    }
    return total;
}

std::optional<std::string> Dataplane::boundAddress(const route::ListenerId& id) const {
    std::lock_guard lock(mu_);
    auto it = bound_.find(id);
    return it == bound_.end() ? std::nullopt : std::optional<std::string>(it->second.actual);
}

std::vector<std::string> Dataplane::ringSetups() const {
    std::vector<std::string> out;
    for (const auto& worker : workers_) {
        out.push_back(worker->ringSetup());
    }
    return out;
}

}  // namespace lastmile::dataplane
