// SPDX-License-Identifier: Apache-2.0
// The worker loop and the life of one connection: accept -> route -> connect -> handshake ->
// forward, every I/O through the worker's io_uring, OpenSSL only transforming bytes.
#include "dataplane/worker/worker_impl.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>

#include "base/log.h"
#include "dataplane/tls/handshake_profile.h"
#include "dataplane/worker/http_reply.h"
#include "drivers/openssl/openssl_engine.h"
#include "drivers/openssl/wire_bio.h"

namespace lastmile::dataplane {

namespace {

// How often deadlines are checked; timeouts are this coarse.
constexpr unsigned kTickMs = 100;
// Free buffers unused for this long go back to the buffer budget (ChunkPool::trim).
constexpr std::chrono::seconds kChunkTrimEvery{1};

// Client sockets are non-blocking like backend ones. io_uring runs every splice on an
// io-wq thread, where a splice from a blocking socket with nothing to read sleeps inside
// the kernel holding the pipe's lock: the splice draining that pipe into the backend
// then waits for the lock, so an interactive client waiting for the answer to bytes
// still in the pipe stalled both for good (the hung iou-wrk thread of issue 14). A
// non-blocking splice returns EAGAIN instead, and the worker waits for readability.
constexpr int kClientSocketFlags = SOCK_CLOEXEC | SOCK_NONBLOCK;
// The splice pipe's capacity, asked for (the kernel's default is 64 KiB): what one splice
// moves at most, like a chunk. Pages are only taken while bytes are in the pipe.
constexpr int kPipeCapacity = 256 * 1024;
// A receive that brought less than this (a trickle, an interactive exchange) parks its side
// at once: the next bytes are waited for without a buffer, so a client sending a byte at a
// time cannot pin one.
constexpr int kSmallRead = 4096;
// A side with no traffic for this long gives its read buffer back (see park()).
constexpr std::chrono::seconds kParkAfter{1};
// An operation moving bytes that has waited this long while its socket was ready is stuck, not
// slowed by a peer: the connection is closed as stalled (scanDeadlines). Generous, since a loaded
// host can delay any completion by a second or more.
constexpr std::chrono::seconds kStallAfter{10};
// malloc_trim once this many handshakes ended or connections parked, and none did for
// kTrimQuiet; keep this much slack.
constexpr unsigned kTrimAfterReleases = 256;
constexpr std::size_t kTrimPad = 1 << 20;
constexpr std::chrono::seconds kTrimQuiet{1};
// Warm-pool connections per backend Service port, whole process (the warm-pool option's
// maximum): N per endpoint is capped there for Services with many endpoints.
constexpr std::size_t kMaxPooledPerBackend = 64;

}  // namespace

void Worker::Impl::post(Command command) {
    {
        std::lock_guard lock(commandsMu_);
        commands_.push_back(std::move(command));
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wakeFd_.get(), &one, sizeof(one));
}

Status Worker::Impl::start() {
    wakeFd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wakeFd_.valid()) {
        return failErrno("eventfd for worker " + std::to_string(index_));
    }
    std::promise<Status> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, &ready] { run(ready); });
    return started.get();
}

Worker::Worker(unsigned index, WorkerShared& shared)
    : impl_(std::make_unique<Impl>(index, shared)) {}

Worker::~Worker() {
    if (impl_->thread_.joinable()) {
        impl_->post({Impl::CommandKind::Stop, {}, {}});
        impl_->thread_.join();
    }
}

Status Worker::start() { return impl_->start(); }

void Worker::addListener(const route::ListenerId& id, UniqueFd fd) {
    impl_->post({Impl::CommandKind::AddListener, id, std::move(fd)});
}

void Worker::removeListener(const route::ListenerId& id) {
    impl_->post({Impl::CommandKind::RemoveListener, id, {}});
}

void Worker::refresh() { impl_->post({Impl::CommandKind::Refresh, {}, {}}); }

void Worker::drain() { impl_->post({Impl::CommandKind::Drain, {}, {}}); }

std::string Worker::ringSetup() const {
    std::lock_guard lock(impl_->commandsMu_);
    return impl_->ringSetup_;
}

void Worker::Impl::run(std::promise<Status>& ready) {
    auto ring = uring::Ring::create(shared_.ring);
    if (!ring) {
        ready.set_value(fail(std::move(ring).error()));
        return;
    }
    ring_ = std::move(*ring);
    {
        std::lock_guard lock(commandsMu_);
        ringSetup_ = ring_->features().setup;
    }
    snapshot_ = shared_.registry->snapshot();
    armWake();
    ready.set_value(Status{});
    while (!stopped_) {
        ring_->submitAndWait(kTickMs);
        now_ = Clock::now();
        ring_->drain([this](const io_uring_cqe& cqe) { dispatch(cqe); });
        if (!starved_.empty()) {
            feedStarved();
        }
        if (now_ >= nextScan_) {
            scanDeadlines();
            serveSlotWaiters();
            if (now_ >= nextChunkTrim_) {
                pool_chunks_.trim();
                nextChunkTrim_ = now_ + kChunkTrimEvery;
            }
            refillPools();
            trimAfterBurst();
            nextScan_ = now_ + std::chrono::milliseconds(kTickMs);
        }
        buryDead();
        counters_.ringSubmits.store(ring_->submits(), std::memory_order_relaxed);
    }
    shutdownAll();
}

void Worker::Impl::armWake() {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_read(s, wakeFd_.get(), &wakeValue_, sizeof(wakeValue_), 0);
    io_uring_sqe_set_data64(s, uring::packUserData(Wake, 0));
}

void Worker::Impl::dispatch(const io_uring_cqe& cqe) {
    const Op op = static_cast<Op>(uring::userDataOp(cqe.user_data));
    const std::uint64_t object = uring::userDataObject(cqe.user_data);
    switch (op) {
        case Wake:
            applyCommands();
            if (!stopped_) {
                armWake();
            }
            return;
        case Accept:
            onAccept(*reinterpret_cast<Listener*>(object), cqe.res, cqe.flags);
            return;
        case Ignore:
            return;
        default: {
            auto& c = *reinterpret_cast<Connection*>(object);
            c.pending &= ~bit(op);
            if (Clock::time_point* since = watchedSince(c, op)) {
                *since = Clock::time_point::max();
            }
            onEvent(c, op, cqe.res);
        }
    }
}

void Worker::Impl::applyCommands() {
    std::vector<Command> commands;
    {
        std::lock_guard lock(commandsMu_);
        commands.swap(commands_);
    }
    for (auto& cmd : commands) {
        switch (cmd.kind) {
            case CommandKind::AddListener: {
                auto l = std::make_unique<Listener>();
                l->id = cmd.id;
                l->fd = std::move(cmd.fd);
                Listener& ref = *l;
                listeners_[cmd.id] = std::move(l);
                ref.plan = findPlan(ref.id);
                if (!draining_) {
                    armAccept(ref);
                }
                break;
            }
            case CommandKind::RemoveListener:
                removeListener(cmd.id);
                break;
            case CommandKind::Refresh:
                break;  // every batch of commands takes the newest snapshot below
            case CommandKind::Drain:
                draining_ = true;
                for (auto it = listeners_.begin(); it != listeners_.end();) {
                    auto next = std::next(it);
                    removeListener(it->first);
                    it = next;
                }
                for (auto& [key, list] : pool_) {
                    for (Connection* p : std::vector<Connection*>(list)) {
                        abort(*p);
                    }
                }
                break;
            case CommandKind::Stop:
                stopped_ = true;
                break;
        }
    }
    refreshSnapshot();
}

void Worker::Impl::shutdownAll() {
    draining_ = true;  // nothing re-arms from here on
    for (Connection* c = head_; c != nullptr;) {
        Connection* next = c->next;
        c->closing = true;
        if (c->client.valid()) {
            ::shutdown(c->client.get(), SHUT_RDWR);
        }
        if (c->backend.valid()) {
            ::shutdown(c->backend.get(), SHUT_RDWR);
        }
        maybeDestroy(*c);
        c = next;
    }
    for (auto& [id, l] : listeners_) {
        stopAccepting(*l);
    }
    // Bounded: every in-flight operation ends promptly once its socket is shut down.
    for (int round = 0; round < 50 && (head_ != nullptr || anyArmed()); ++round) {
        ring_->submitAndWait(kTickMs);
        now_ = Clock::now();
        ring_->drain([this](const io_uring_cqe& cqe) {
            if (uring::userDataOp(cqe.user_data) != Wake) {
                dispatch(cqe);
            }
        });
        for (Connection* c = head_; c != nullptr; c = c->next) {
            if (has(*c, Connect)) {
                cancelOps(*c, c->backend.get(), bit(Connect));
            }
        }
        buryDead();
    }
    listeners_.clear();
    retiring_.clear();
    ring_.reset();
}

bool Worker::Impl::anyArmed() const {
    return !retiring_.empty() || std::any_of(listeners_.begin(), listeners_.end(),
                                             [](const auto& l) { return l.second->armed; });
}

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

void Worker::Impl::startHandshake(Connection& c) {
    auto ssl = c.profile->newSession();
    if (ssl) {
        if (auto wired = drivers::openssl::attachWire(ssl->get(), c.wire); !wired) {
            ssl = fail(std::move(wired).error());
        }
    }
    if (!ssl) {
        reject(c, Failure::HandshakeFailed, 502, ssl.error().message());
        return;
    }
    c.ssl = std::move(*ssl);
    c.handshakeStart = now_;
    setStage(c, Stage::Handshaking);
    c.deadline = now_ + shared_.options.handshakeTimeout;
    handshake(c);
}

void Worker::Impl::bindWire(Connection& c) {
    ensure(c.upOut);
    c.wire.fromPeer = c.downIn.get();
    c.wire.toPeer = c.upOut.get();
}

void Worker::Impl::handshake(Connection& c) {
    bindWire(c);
    const int r = SSL_do_handshake(c.ssl.get());
    if (r == 1) {
        established(c);
        return;
    }
    const int err = SSL_get_error(c.ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        sendToBackend(c);
        if (!has(c, BackendSend)) {
            // Nothing to send while the backend thinks: waiting with a buffer held would
            // take memory the receives that let handshakes finish need.
            pool_chunks_.release(c.upOut);
        }
        if (!has(c, BackendRecv) && reserve(c, c.downIn)) {
            c.downIn->compact();
            recv(c, c.backend.get(), *c.downIn, BackendRecv);
        }
        return;
    }
    failHandshake(c, drivers::openssl::lastSslError(c.ssl.get(), r));
}

void Worker::Impl::failHandshake(Connection& c, const std::string& detail) {
    bump(c.serviceStats->handshakesFailed);
    const std::string why = tls::verifyFailureReason(c.ssl.get());
    if (!why.empty()) {
        reject(c, Failure::VerifyFailed, 502, "backend certificate rejected: " + why);
    } else {
        reject(c, Failure::HandshakeFailed, 502,
               "TLS handshake with the backend failed: " + detail);
    }
}

void Worker::Impl::established(Connection& c) {
    if ((c.upOut && !c.upOut->empty()) || has(c, BackendSend)) {
        // Our last handshake records (the Finished) go out before an engine takes the
        // session: once the kernel holds it, the socket takes only plaintext. The send's
        // completion comes back here through handshake().
        sendToBackend(c);
        return;
    }
    // The verify callback already failed the handshake on any error; this is the
    // belt to its braces, since forwarding to an unverified peer (or one that presented
    // no certificate at all) must be impossible.
    if (!tls::peerVerified(c.ssl.get())) {
        failHandshake(c, "certificate not verified");
        return;
    }
    c.peerChain.reset(X509_chain_up_ref(SSL_get_peer_cert_chain(c.ssl.get())));
    if (!c.warm && !allowedByPolicy(c)) {
        // Its profile was superseded during the handshake by one this peer fails.
        closeForPolicy(c);
        return;
    }
    const bool resumed = SSL_session_reused(c.ssl.get()) == 1;
    bump(resumed ? counters_.handshakesResumed : counters_.handshakesFull);
    bump(resumed ? c.serviceStats->handshakesResumed : c.serviceStats->handshakesFull);
    counters_.handshakeSeconds.observe(
        std::chrono::duration<double>(now_ - c.handshakeStart).count());
    if (!resumed) {
        recordCertificateExpiry(c);
    }
    if (!attachEngine(c)) {
        return;
    }
    c.snapshot.reset();
    c.target = nullptr;
    c.deadline = now_ + shared_.options.idleTimeout;
    if (c.warm) {
        setStage(c, Stage::Pooled);
        warming_[PoolKey{c.project, c.backendKey}]--;
        pool_[PoolKey{c.project, c.backendKey}].push_back(&c);
        counters_.pooled.fetch_add(1, std::memory_order_relaxed);
    } else {
        setStage(c, Stage::Forwarding);
    }
    pump(c);
}

std::vector<std::size_t> Worker::Impl::candidates(const Connection& c) {
    const drivers::EngineSet& engines = *shared_.engines;
    const tls::ProfileSpec& spec = c.profile->spec();
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < engines.size(); ++i) {
        if (engines.usable(i) && engines.at(i).serves(spec.offload)) {
            out.push_back(i);
        }
    }
    const bool collectTickets = spec.sessionResumption &&
                                SSL_version(c.ssl.get()) == TLS1_3_VERSION &&
                                SSL_session_reused(c.ssl.get()) != 1;
    const auto keeps = [&](std::size_t i) { return engines.at(i).keepsTickets(); };
    if (collectTickets && !out.empty() && !keeps(out.front()) &&
        std::any_of(out.begin(), out.end(), keeps)) {
        std::erase_if(out, [&](std::size_t i) { return !keeps(i); });
        bump(counters_.ticketCollectors);
    }
    return out;
}

bool Worker::Impl::attachEngine(Connection& c) {
    const drivers::EngineSet& engines = *shared_.engines;
    std::optional<std::size_t> taker;
    for (std::size_t i : candidates(c)) {
        drivers::RecordEngine& engine = engines.at(i);
        drivers::Attach attached = engine.attach(c.ssl.get(), c.backend.get(), c.wire);
        if (attached.outcome == drivers::Attach::Outcome::Broken) {
            reject(c, Failure::HandshakeFailed, 502,
                   "moving the TLS session to the " + std::string(engine.name()) +
                       " engine failed: " + attached.reason);
            return false;
        }
        if (attached.outcome == drivers::Attach::Outcome::Declined) {
            LM_LOG(Debug, kLog, engine.name() << " engine declined a session: "
                                              << attached.reason);
            continue;
        }
        c.session = std::move(attached.session);
        taker = i;
        break;
    }
    for (std::size_t i = 0; i < engines.size(); ++i) {
        if (i != taker) {
            engines.at(i).passOver(c.ssl.get());
        }
    }
    if (!taker) {
        reject(c, Failure::HandshakeFailed, 502, "no record engine took the session");
        return false;
    }
    bump(counters_.engineSessions[*taker]);
    c.serviceStats->engine.store(engines.at(*taker).name().data(), std::memory_order_relaxed);
    if (c.session->framing() == drivers::Framing::Kernel) {
        return enterKernel(c);
    }
    return true;
}

bool Worker::Impl::enterKernel(Connection& c) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        reject(c, Failure::HandshakeFailed, 502,
               std::string("creating the splice pipe: ") + std::strerror(errno));
        return false;
    }
    c.pipeRead.reset(fds[0]);
    c.pipeWrite.reset(fds[1]);
    // Smaller (the default) when the pipe-max-size sysctl or the user's pipe quota says no.
    int capacity = ::fcntl(fds[1], F_SETPIPE_SZ, kPipeCapacity);
    if (capacity <= 0) {
        capacity = ::fcntl(fds[1], F_GETPIPE_SZ);
    }
    c.pipeCapacity = static_cast<std::size_t>(std::max(capacity, 4096));
    c.kernelFramed = true;
    c.ssl.reset();
    c.wire = {};
    pool_chunks_.release(c.upOut);
    return true;
}

void Worker::Impl::onEvent(Connection& c, Op op, int res) {
    if (c.closing) {
        maybeDestroy(c);
        return;
    }
    if (c.stage == Stage::Replying && (kBackendOps & bit(op)) != 0) {
        pump(c);  // a cancelled backend operation of a refused connection
        return;
    }
    const bool bytes = res > 0;
    if (bytes && (op == ClientRecv || op == ClientSend || op == BackendRecv || op == BackendSend)) {
        bump(counters_.userspaceBytes, static_cast<std::uint64_t>(res));
    }
    switch (op) {
        case ClientPoll:
            if (res < 0) {
                return abort(c);
            }
            c.clientParked = false;
            break;
        case ClientRecv:
            if (std::exchange(c.clientParking, false) && res == -ECANCELED) {
                c.clientParked = true;
                pool_chunks_.releaseReceive(c.upIn, c.downIn);
                noteRelease();
                break;
            }
            if (res < 0) {
                return abort(c);
            }
            if (res == 0) {
                c.clientEof = true;
            } else if (c.stage == Stage::Replying) {
                c.upIn->clear();  // a refused client's request is read and dropped
            } else {
                c.upIn->commit(static_cast<std::size_t>(res));
            }
            c.clientParked = res > 0 && res < kSmallRead;
            break;
        case ClientSend:
            if (res < 0) {
                return abort(c);
            }
            c.clientSendFrom->consume(static_cast<std::size_t>(res));
            if (c.stage == Stage::Forwarding) {
                c.answered = true;
                if (std::exchange(c.refillAfterAnswer, false)) {
                    refillPools();
                }
                countToClient(c, static_cast<std::uint64_t>(res));
            }
            break;
        case BackendPoll:
            if (res < 0) {
                return backendGone(c, "polling the backend failed");
            }
            c.backendParked = false;
            break;
        case BackendRecv:
            if (std::exchange(c.backendParking, false) && res == -ECANCELED) {
                c.backendParked = true;
                pool_chunks_.releaseReceive(c.downIn, c.upIn);
                noteRelease();
                break;
            }
            if (res == -EIO && c.kernelFramed) {
                onControlRecord(c);
                if (c.closing) {
                    return;
                }
                break;
            }
            if (res <= 0) {
                if (c.stage == Stage::Handshaking) {
                    return failHandshake(c, res == 0 ? "the backend closed the connection"
                                                     : std::strerror(-res));
                }
                if (res < 0) {
                    return backendGone(c, std::string("receiving from the backend: ") +
                                              std::strerror(-res));
                }
                if (c.stage == Stage::Pooled) {
                    return backendGone(c, "the backend closed the connection");
                }
                c.backendFin = true;
                c.backendEof = c.backendEof || !c.profile;
                break;
            }
            c.downIn->commit(static_cast<std::size_t>(res));
            if (c.stage == Stage::Handshaking) {
                return handshake(c);
            }
            c.backendParked = res < kSmallRead;
            break;
        case BackendSend:
            if (res < 0) {
                return backendGone(c, std::string("sending to the backend: ") +
                                          std::strerror(-res));
            }
            c.backendSendFrom->consume(static_cast<std::size_t>(res));
            if (plaintextWire(c) && c.stage == Stage::Forwarding) {
                countToBackend(c, static_cast<std::uint64_t>(res));
            }
            if (c.stage == Stage::Handshaking) {
                return handshake(c);
            }
            break;
        case Connect:
            onConnect(c, res);
            break;
        case ClientSplice:
            if (res == -EAGAIN && c.piped > 0) {
                // The pipe holds fewer bytes than its capacity in more pages than
                // expected (small segments): splice again once it has drained.
                c.pipeFull = true;
            } else if (res == -EAGAIN) {
                c.clientParked = true;  // nothing to read: wait for readability
            } else if (res < 0) {
                return abort(c);
            } else if (res == 0) {
                c.clientEof = true;
            } else {
                c.piped += static_cast<std::size_t>(res);
            }
            break;
        case BackendWritable:
            if (res < 0) {
                return backendGone(c, "waiting for room to send to the backend");
            }
            break;
        case BackendSplice:
            if (res == -EAGAIN) {
                // The socket is non-blocking, so a full send buffer ends the splice.
                poll(c, c.backend.get(), BackendWritable, POLLOUT);
                break;
            }
            if (res <= 0) {
                return backendGone(c, res == 0 ? "the backend took no bytes"
                                               : std::string("splicing to the backend: ") +
                                                     std::strerror(-res));
            }
            c.piped -= static_cast<std::size_t>(res);
            c.pipeFull = false;
            countToBackend(c, static_cast<std::uint64_t>(res));
            break;
        default:
            break;
    }
    if (bytes) {
        c.lastActivity = now_;
        if (c.stage == Stage::Forwarding) {
            c.deadline = now_ + shared_.options.idleTimeout;
        }
    }
    pump(c);
}

void Worker::Impl::backendGone(Connection& c, const std::string& why) {
    if (c.stage == Stage::Pooled) {
        bump(counters_.warmPoolDiscarded);
        return abort(c);
    }
    if (c.stage == Stage::Handshaking) {
        return failHandshake(c, why);
    }
    breakStream(c, Failure::StreamError, why);
}

void Worker::Impl::pump(Connection& c) {
    if (c.dead) {
        return;
    }
    if (c.closing) {
        return maybeDestroy(c);
    }
    switch (c.stage) {
        case Stage::Replying:
            pumpReply(c);
            break;
        case Stage::Connecting:
        case Stage::Handshaking:
            readClient(c);
            break;
        case Stage::Pooled:
        case Stage::Forwarding:
            if (c.kernelFramed) {
                pumpKernel(c);
            } else if (c.profile) {
                if (!pumpTls(c)) {
                    return;
                }
            } else {
                pumpPlain(c);
            }
            if (c.closing) {
                break;  // the client was reset (a truncated backend stream)
            }
            readClient(c);
            readBackend(c);
            if (c.session && !c.upIn && !c.upOut && !c.downIn && !c.downOut) {
                c.session->releaseIdleMemory();
            }
            if (c.stage == Stage::Forwarding && c.clientWriteShut && c.backendWriteShut &&
                !has(c, ClientSend) && !has(c, BackendSend)) {
                c.closing = true;  // both ways ended cleanly
            }
            break;
    }
    maybeDestroy(c);
}

void Worker::Impl::sendToBackend(Connection& c) {
    if (!has(c, BackendSend) && c.upOut && !c.upOut->empty()) {
        send(c, c.backend.get(), *c.upOut, BackendSend);
    }
}

void Worker::Impl::truncate(Connection& c) {
    bump(counters_.truncatedByBackend);
    counters_.fail(Failure::Truncated);
    logBroken(c, Failure::Truncated, "the backend's TLS stream ended without close_notify");
    c.backendEof = true;
    c.resetClient = true;
}

void Worker::Impl::breakStream(Connection& c, Failure why, const std::string& what) {
    counters_.fail(why);
    logBroken(c, why, what);
    c.resetClient = true;
    abort(c);
}

void Worker::Impl::logBroken(const Connection& c, Failure why, const std::string& what) {
    const auto size = [](const ChunkPtr& chunk) { return chunk ? chunk->size() : 0; };
    LM_LOG(Notice, kLog,
           "stream " << failureLabel(why) << ": " << c.project << "/" << c.backendKey.ns
                     << "/" << c.backendKey.service << ":" << c.backendKey.port << " via "
                     << c.endpoint.address << ":" << c.endpoint.port << ": " << what
                     << " (" << c.toClientBytes
                     << " bytes sent to the client, " << c.toBackendBytes
                     << " to the backend, "
                     << size(c.upIn) + size(c.upOut) + c.piped
                     << " held for the backend); the client gets a reset");
}

void Worker::Impl::sendToClient(Connection& c, ChunkPtr& from) {
    if (has(c, ClientSend)) {
        return;
    }
    if (from && !from->empty()) {
        send(c, c.client.get(), *from, ClientSend);
    } else if (c.backendEof && c.resetClient) {
        resetWhenDelivered(c);
    } else if (c.backendEof && !c.clientWriteShut) {
        ::shutdown(c.client.get(), SHUT_WR);
        c.clientWriteShut = true;
    }
}

void Worker::Impl::resetWhenDelivered(Connection& c) {
    if (!c.resetWhenDelivered) {
        c.resetWhenDelivered = true;
        c.resetBy = now_ + kLinger;
    }
    int undelivered = 0;
    if (::ioctl(c.client.get(), SIOCOUTQ, &undelivered) == -1 || undelivered == 0 ||
        now_ >= c.resetBy) {
        abort(c);
    }
}

void Worker::Impl::readClient(Connection& c) {
    if (c.clientParked && c.upIn && c.upIn->empty() && !has(c, ClientRecv) &&
        !(plaintextWire(c) && has(c, BackendSend))) {
        pool_chunks_.releaseReceive(c.upIn, c.downIn);
    }
    if (!c.client.valid() || c.clientEof || has(c, ClientRecv) || has(c, ClientPoll) ||
        has(c, ClientSplice)) {
        return;
    }
    if (c.clientParked) {
        poll(c, c.client.get(), ClientPoll);
        return;
    }
    if (c.kernelFramed) {
        // Splicing starts once what was read during the handshake has gone out.
        if (!c.upIn && !c.pipeFull && c.piped < c.pipeCapacity) {
            splice(c, c.client.get(), c.pipeWrite.get(), c.pipeCapacity - c.piped,
                   SPLICE_F_NONBLOCK, ClientSplice);
        }
        return;
    }
    if (!reserve(c, c.upIn)) {
        return;
    }
    const bool plainSending = plaintextWire(c) && has(c, BackendSend);
    if (!plainSending) {
        c.upIn->compact();
    }
    if (c.upIn->room() > 0) {
        recv(c, c.client.get(), *c.upIn, ClientRecv);
    }
}

void Worker::Impl::readBackend(Connection& c) {
    if (c.backendParked && c.downIn && c.downIn->empty() && !has(c, BackendRecv) &&
        !(plaintextWire(c) && has(c, ClientSend))) {
        pool_chunks_.releaseReceive(c.downIn, c.upIn);
    }
    if (c.backendEof || c.backendFin || has(c, BackendRecv) || has(c, BackendPoll)) {
        return;
    }
    if (c.backendParked) {
        poll(c, c.backend.get(), BackendPoll);
        return;
    }
    if (!reserve(c, c.downIn)) {
        return;
    }
    const bool plainSending = plaintextWire(c) && has(c, ClientSend);
    if (!plainSending) {
        c.downIn->compact();
    }
    // A kernel-framed receive may stop at a control record, which is read into the
    // same room: keep room for a whole record.
    const std::size_t minRoom = c.kernelFramed ? Chunk::kRecordRoom : 1;
    if (c.downIn->room() >= minRoom) {
        recv(c, c.backend.get(), *c.downIn, BackendRecv);
    }
}

bool Worker::Impl::pumpTls(Connection& c) {
    const bool forwarding = c.stage == Stage::Forwarding;
    // Client -> backend: seal only while no send reads upOut, since sealing may compact it.
    if (forwarding && !has(c, BackendSend)) {
        bindWire(c);
        if (c.upIn && !c.upIn->empty()) {
            auto sealed = c.session->seal(*c.upIn);
            if (!sealed) {
                breakStream(c, Failure::StreamError, sealed.error().message());
                return false;
            }
            countToBackend(c, *sealed);
        }
        if (c.clientEof && (!c.upIn || c.upIn->empty()) && !c.closeNotifyQueued) {
            c.closeNotifyQueued = true;
            (void)c.session->closeNotify();  // a failure here ends in the FIN below anyway
        }
    }
    // Backend -> client: open only while no send reads downOut.
    if (!has(c, ClientSend) &&
        ((c.downIn && !c.downIn->empty()) || c.session->hasBufferedPlaintext())) {
        ensure(c.downOut);
        bindWire(c);
        if (!opened(c, c.session->open(*c.downOut), *c.downOut)) {
            return false;
        }
    }
    // A FIN without close_notify ends the stream once every record that came before it
    // was opened: a truncation, counted, and passed on as a reset (sendToClient).
    if (c.backendFin && !c.backendEof && (!c.downIn || c.downIn->empty()) &&
        !c.session->hasBufferedPlaintext()) {
        truncate(c);
    }
    sendToBackend(c);
    if (c.closeNotifyQueued && !c.backendWriteShut && !has(c, BackendSend) &&
        (!c.upOut || c.upOut->empty())) {
        ::shutdown(c.backend.get(), SHUT_WR);
        c.backendWriteShut = true;
    }
    if (forwarding) {
        sendToClient(c, c.downOut);
    }
    // Idle connections give their record buffers back.
    if (c.upOut && c.upOut->empty() && !has(c, BackendSend)) {
        pool_chunks_.release(c.upOut);
    }
    if (c.downOut && c.downOut->empty() && !has(c, ClientSend)) {
        pool_chunks_.release(c.downOut);
    }
    return true;
}

bool Worker::Impl::opened(Connection& c, const Result<drivers::OpenResult>& result,
                          const Chunk& plain) {
    if (!result) {
        if (c.stage == Stage::Pooled) {
            backendGone(c, result.error().message());
        } else if (!c.answered && plain.empty()) {
            // TLS 1.3 finishes the client's handshake before the server has judged it:
            // a refused client certificate arrives as an alert on the first read.
            // Nothing reached the client yet, so it can still be told why.
            bump(c.serviceStats->handshakesFailed);
            reject(c, Failure::HandshakeFailed, 502,
                   "the backend refused the TLS session: " + result.error().context());
        } else {
            breakStream(c, Failure::StreamError, result.error().message());
        }
        return false;
    }
    if (result->closeNotify) {
        if (c.stage == Stage::Pooled) {
            backendGone(c, "close_notify");
            return false;
        }
        c.backendEof = true;
    }
    return true;
}

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
        if (!sent && sent.error().code() == std::errc::resource_unavailable_try_again) {
            poll(c, c.backend.get(), BackendWritable, POLLOUT);
        } else if (!sent) {
            // The backend is gone (a reset: it closed with our bytes unread), so what
            // the client sent last may never have been read: not a clean end.
            return breakStream(c, Failure::StreamError, sent.error().message());
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

void Worker::Impl::recv(Connection& c, int fd, Chunk& into, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_recv(s, fd, into.tail(), into.room(), 0);
    submit(c, s, op);
}

void Worker::Impl::send(Connection& c, int fd, Chunk& from, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_send(s, fd, from.data(), from.size(), MSG_NOSIGNAL);
    (op == ClientSend ? c.clientSendFrom : c.backendSendFrom) = &from;
    submit(c, s, op);
}

void Worker::Impl::splice(Connection& c, int from, int to, std::size_t len, unsigned flags, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_splice(s, from, -1, to, -1, static_cast<unsigned>(len), flags);
    submit(c, s, op);
}

void Worker::Impl::poll(Connection& c, int fd, Op op, unsigned events) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_poll_add(s, fd, events);
    submit(c, s, op);
}

void Worker::Impl::cancel(Connection& c, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_cancel64(s, uring::packUserData(op, reinterpret_cast<std::uint64_t>(&c)), 0);
    io_uring_sqe_set_data64(s, uring::packUserData(Ignore, 0));
}

void Worker::Impl::cancelOps(Connection& c, int fd, unsigned ops) {
    if ((c.pending & ops & bit(Connect)) != 0) {
        cancel(c, Connect);
    }
    if ((c.pending & ops & ~bit(Connect)) != 0) {
        ::shutdown(fd, SHUT_RDWR);
    }
}

bool Worker::Impl::reserve(Connection& c, ChunkPtr& chunk) {
    if (!chunk) {
        chunk = pool_chunks_.tryAcquireReceive(&chunk == &c.upIn ? c.downIn : c.upIn);
    }
    if (!chunk && !c.starved) {
        c.starved = true;
        starved_.push_back(&c);
    }
    return chunk != nullptr;
}

void Worker::Impl::feedStarved() {
    std::vector<Connection*> waiting;
    waiting.swap(starved_);
    for (Connection* c : waiting) {
        c->starved = false;
    }
    for (Connection* c : waiting) {
        if (!c->closing && c->stage == Stage::Handshaking && !has(*c, BackendRecv)) {
            handshake(*c);
        }
        pump(*c);
    }
}

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
    if (!c.closing || c.pending != 0 || c.dead) {
        return;
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

void Worker::Impl::park(Connection& c) {
    const bool plain = plaintextWire(c);
    if (has(c, ClientRecv) && !c.clientParking && c.upIn && c.upIn->empty() &&
        !(plain && has(c, BackendSend))) {
        cancel(c, ClientRecv);
        c.clientParking = true;
    }
    if (has(c, BackendRecv) && !c.backendParking && c.downIn && c.downIn->empty() &&
        !(plain && has(c, ClientSend))) {
        cancel(c, BackendRecv);
        c.backendParking = true;
    }
}

void Worker::Impl::noteRelease() {
    ++releasesSinceTrim_;
    lastRelease_ = now_;
}

void Worker::Impl::trimAfterBurst() {
    if (handshaking_ != 0) {
        lastRelease_ = now_;
    } else if (releasesSinceTrim_ >= kTrimAfterReleases && now_ - lastRelease_ >= kTrimQuiet) {
        ::malloc_trim(kTrimPad);
        releasesSinceTrim_ = 0;
    }
}

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

void Worker::Impl::refreshSnapshot() {
    auto next = shared_.registry->snapshot();
    const bool published = next != snapshot_;
    snapshot_ = std::move(next);
    for (auto& [id, l] : listeners_) {
        l->plan = findPlan(id);
    }
    if (published) {
        enforcePolicies();
    }
    refillPools();  // drops pooled connections of superseded profiles
}

void Worker::Impl::enforcePolicies() {
    for (Connection* c = head_; c != nullptr;) {
        Connection* next = c->next;
        if (!c->closing && !c->warm && c->stage == Stage::Forwarding && !allowedByPolicy(*c)) {
            closeForPolicy(*c);
        }
        c = next;
    }
}

bool Worker::Impl::allowedByPolicy(Connection& c) {
    auto current = snapshot_->find(c.project, c.backendKey);
    if (current == c.profile || (c.profile && !current)) {
        return true;
    }
    if (!c.profile || !current->verifiesChain(c.peerChain.get())) {
        return false;  // verifiesChain is false for a fail-closed profile
    }
    c.profile = std::move(current);
    return true;
}

void Worker::Impl::closeForPolicy(Connection& c) {
    LM_LOG(Debug, kLog, "closed a connection to " << c.backendKey.ns << "/"
                                                  << c.backendKey.service
                                                  << ": the published policy no longer allows it");
    bump(counters_.closedByPolicy);
    abort(c);
}

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
