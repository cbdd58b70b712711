// SPDX-License-Identifier: Apache-2.0
// Worker::Impl, a worker's whole state, and the connection it keeps per client; private:
// only dataplane/worker/*.cc include it.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/chunk.h"
#include "base/unique_fd.h"
#include "dataplane/net/socket.h"
#include "dataplane/tls/openssl_handles.h"
#include "dataplane/worker/balancer.h"
#include "dataplane/worker/worker.h"
#include "drivers/record_engine.h"

namespace lastmile::dataplane {

constexpr const char* kLog = "dataplane";
using Clock = std::chrono::steady_clock;

// How long a refused HTTP client gets to read its answer before the socket closes.
constexpr std::chrono::milliseconds kLinger{2'000};

enum Op : std::uint8_t {
    Wake = 1,
    Accept,
    ClientPoll,
    ClientRecv,
    ClientSend,
    BackendPoll,
    BackendRecv,
    BackendSend,
    Connect,
    ClientSplice,     // client socket -> pipe (kernel-framed sessions)
    BackendSplice,    // pipe -> backend socket, where the kernel seals the records
    BackendWritable,  // the backend's socket buffer was full (splice, close_notify): wait
    Ignore,
};
constexpr unsigned bit(Op op) { return 1u << op; }
constexpr unsigned kClientOps =
    bit(ClientPoll) | bit(ClientRecv) | bit(ClientSend) | bit(ClientSplice);
constexpr unsigned kBackendOps = bit(BackendPoll) | bit(BackendRecv) | bit(BackendSend) |
                                 bit(Connect) | bit(BackendSplice) | bit(BackendWritable);

enum class Stage {
    Connecting,   // TCP connect to an endpoint in flight
    Handshaking,  // TLS handshake with the backend
    Forwarding,   // both ways
    Pooled,       // warm pool: handshaken, waiting for a client
    Replying,     // refused: an HTTP error answer, then close
};

struct Listener {
    route::ListenerId id;
    UniqueFd fd;
    const route::ListenerPlan* plan = nullptr;  // into the worker's snapshot
    std::uint64_t cursor = 0;                   // round robin over the plan's backends
    bool armed = false;                         // an accept SQE is in flight
    bool removing = false;
    bool intercepting = false;                  // takes over virtual addresses
};

using PoolKey = std::pair<std::string, tls::BackendKey>;

struct Connection {
    Connection* prev = nullptr;
    Connection* next = nullptr;

    Stage stage = Stage::Connecting;
    bool warm = false;  // opened for the warm pool, no client yet
    route::ListenerProtocol protocol = route::ListenerProtocol::Tcp;
    std::string project;
    // The backend being connected; `snapshot` keeps `target` alive until the handshake ends.
    std::shared_ptr<const tls::ProfileSet> snapshot;
    const route::Backend* target = nullptr;
    std::optional<route::Backend> resolved;  // an ExternalName backend with its addresses
    tls::BackendKey backendKey;
    std::shared_ptr<const tls::HandshakeProfile> profile;  // null: no policy, plain TCP
    std::vector<route::Endpoint> tried;
    std::size_t notPermitted = 0;  // of `tried`, refused by the backend filter
    route::Endpoint endpoint;
    std::optional<net::SocketAddress> endpointAddress;
    std::string lastConnectError;
    bool connectTimedOut = false;

    UniqueFd client;
    UniqueFd backend;
    tls::SslPtr ssl;  // until the handshake's session moves to a kernel-framed engine
    // The backend's verified chain, kept past `ssl`: a policy change re-verifies it.
    tls::CertChainPtr peerChain;
    drivers::Wire wire;
    std::unique_ptr<drivers::RecordSession> session;
    // Kernel-framed sessions: client bytes go client -> pipe -> backend by splice, and
    // never cross userspace. `piped` counts the bytes in the pipe.
    bool kernelFramed = false;
    UniqueFd pipeRead, pipeWrite;
    std::size_t pipeCapacity = 0;
    std::size_t piped = 0;
    bool pipeFull = false;  // its slots ran out before its bytes did: wait for the drain
    bool starved = false;   // a receive waits for buffer memory (in Impl::starved_)
    bool slotWaiting = false;  // waits for a backend connection slot (in Impl::slotWaiters_)

    // Client -> backend: plaintext read from the client, records for the backend (TLS only).
    ChunkPtr upIn, upOut;
    // Backend -> client: what the backend sent, plaintext for the client (TLS only).
    ChunkPtr downIn, downOut;
    Chunk* clientSendFrom = nullptr;   // the chunk the in-flight client send reads
    Chunk* backendSendFrom = nullptr;  // the chunk the in-flight backend send reads
    // A side quiet for kParkAfter gives its read buffer back and waits for readability
    // with a poll instead: parking (its receive is being cancelled), then parked.
    bool clientParking = false;
    // A new client starts parked: its first receive waits for bytes, so a client that
    // connects and stays silent holds no buffer, and no share of the buffer budget.
    bool clientParked = true;
    bool backendParking = false;
    bool backendParked = false;
    Clock::time_point lastActivity;

    bool clientEof = false;           // FIN from the client
    bool backendFin = false;          // FIN from the backend: read nothing more
    bool backendEof = false;          // the backend's stream is over: FIN to the client next
    bool resetClient = false;         // the stream broke: the client's close is a reset
    bool resetWhenDelivered = false;  // truncated, and every byte was sent: reset once acked
    Clock::time_point resetBy;         // ... or at this time, acknowledged or not
    bool closeNotifyQueued = false;   // our close_notify is in upOut
    bool backendWriteShut = false;    // FIN sent to the backend
    bool clientWriteShut = false;     // FIN sent to the client
    bool answered = false;  // bytes from the backend reached the client: no error page now
    bool refillAfterAnswer = false;  // taken from the warm pool; refill after the first answer
    bool closing = false;
    bool dead = false;     // destroyed; freed after the current batch of completions
    unsigned pending = 0;  // bit(Op) of every SQE in flight
    Clock::time_point deadline = Clock::time_point::max();
    Clock::time_point handshakeStart;
    // When the operation in flight that moves bytes out to the backend (BackendSend,
    // BackendSplice), out to the client (ClientSend) or in from the client through the pipe
    // (ClientSplice) was posted; max() while none is. Each finishes at once when its socket
    // is ready, so one that waits kStallAfter while it is ready is stuck (scanDeadlines).
    Clock::time_point toBackendSince = Clock::time_point::max();
    Clock::time_point toClientSince = Clock::time_point::max();
    Clock::time_point fromClientSince = Clock::time_point::max();
    // Plaintext forwarded each way, for the log line of a stream that broke.
    std::uint64_t toBackendBytes = 0;
    std::uint64_t toClientBytes = 0;
    ListenerCounters* listenerStats = nullptr;  // set for client connections
    ServiceCounters* serviceStats = nullptr;    // set once a backend is chosen
};

inline bool has(const Connection& c, Op op) { return (c.pending & bit(op)) != 0; }

// An asynchronous engine has records of `c` on its device or not yet placed: the chunks
// stay where they are until they are (RecordSession::unsettled).
inline bool unsettled(const Connection& c) { return c.session && c.session->unsettled(); }

// The backend socket carries plaintext as far as the worker sees: no policy, or the kernel
// frames the records. The buffer received from one side is then the one sent to the other.
inline bool plaintextWire(const Connection& c) { return !c.profile || c.kernelFramed; }

struct Worker::Impl {
    Impl(unsigned index, WorkerShared& shared)
        : index_(index), shared_(shared), counters_(shared.engines->size()) {}

    // ---- Control thread side (worker.cc).
    enum class CommandKind { AddListener, RemoveListener, Refresh, Drain, Stop };
    struct Command {
        CommandKind kind;
        route::ListenerId id;
        UniqueFd fd;
        bool intercepting = false;  // AddListener
    };

    void post(Command command);
    Status start();

    // ---- Worker thread side from here on.
    // The loop (event_loop.cc): completions, commands from the control thread, ticks.
    void run(std::promise<Status>& ready);
    void armWake();
    void dispatch(const io_uring_cqe& cqe);
    void applyCommands();
    // Stop: every connection is closed where it stands, then the ring goes.
    void shutdownAll();
    bool anyArmed() const;
    // Engine lanes (asynchronous devices): what the pumps queued goes to the devices in one
    // burst per lane, and the connections whose records came back are pumped, which can
    // queue more; a few rounds per batch of completions.
    void driveLanes();
    bool lanesBusy() const;

    // ---- Listeners and accepting (accept.cc).
    const route::ListenerPlan* findPlan(const route::ListenerId& id) const;
    void armAccept(Listener& l);
    void stopAccepting(Listener& l);
    void removeListener(const route::ListenerId& id);
    void onAccept(Listener& l, int res, unsigned flags);
    void newClient(Listener& l, UniqueFd fd);

    // ---- Connecting, within the backend connection slots (connect.cc).
    void connectNext(Connection& c);
    void onConnect(Connection& c, int res);
    // A backend socket counts against maxBackendConnections from its creation to its close.
    // Warm-pool connections may take half of the budget: clients always have the rest.
    std::int64_t backendCap(bool warm) const;
    bool takeBackendSlot(bool warm);
    void releaseBackendSlot();
    // A client finding every backend slot taken waits up to connectTimeout for one. While
    // any client of the process waits, every worker empties its warm pool and stops
    // refilling it: clients come first.
    void waitForSlot(Connection& c);
    void leaveSlotWait(Connection& c);
    // Every tick: the waiting clients try again, once pooled connections made room.
    void serveSlotWaiters();

    // ---- The handshake with the backend (handshake.cc).
    void startHandshake(Connection& c);
    void bindWire(Connection& c);
    void handshake(Connection& c);
    void failHandshake(Connection& c, const std::string& detail);
    void established(Connection& c);

    // ---- Choosing the record engine (engine_selection.cc).
    // Engines a session of `c` may go to: usable, serving the profile's preference and, for
    // a session that should collect tickets, keeping them. TLS 1.3 tickets arrive after the
    // handshake; a session that did not resume goes where they reach the session cache, so
    // that the next connections resume, and those go to the cheapest engine.
    std::vector<std::size_t> candidates(const Connection& c);
    // The first candidate engine that takes the session gets it. Returns false when the
    // connection was refused.
    bool attachEngine(Connection& c);
    // The kernel holds the keys now: the SSL and the record buffers are not needed again.
    bool enterKernel(Connection& c);

    // ---- Forwarding (forward.cc).
    void onEvent(Connection& c, Op op, int res);
    void backendGone(Connection& c, const std::string& why);
    // Called after every event; posts whatever can make progress.
    void pump(Connection& c);
    void sendToBackend(Connection& c);
    // The backend's TLS stream ended without close_notify. The client cannot tell a cut
    // stream from a complete one by a FIN, so it gets every byte that came before and then
    // a reset.
    void truncate(Connection& c);
    // The stream broke midway: counted, logged, and the client reset at once, since a FIN
    // would tell it that it got the whole stream.
    void breakStream(Connection& c, Failure why, const std::string& what);
    void logBroken(const Connection& c, Failure why, const std::string& what);
    void sendToClient(Connection& c, ChunkPtr& from);
    // A reset discards what the socket has not delivered yet, so it waits until the client
    // has acknowledged every byte; scanDeadlines asks again each tick. A client that does not
    // read gets the reset after kLinger: the stream is broken either way, and waiting for
    // the idle timeout would hold its descriptors and memory for nothing.
    void resetWhenDelivered(Connection& c);
    // Receives go straight into a buffer (one ring operation per read); a side that has
    // been quiet (scanDeadlines) or whose last receive was small is parked, and waits for
    // readability without one, so idle and trickling connections hold no buffers.
    void readClient(Connection& c);
    void readBackend(Connection& c);

    // ---- Forwarding, userspace record engines (forward_userspace.cc).
    // Returns false when the connection was aborted.
    bool pumpTls(Connection& c);
    // What open() made of the backend's records. Returns false when the connection ended.
    bool opened(Connection& c, const Result<drivers::OpenResult>& result, const Chunk& plain);

    // ---- Forwarding, kernel-framed record engines (forward_kernel.cc).
    // Kernel-framed: client bytes that came during the handshake are sent from userspace
    // once, then everything is spliced; backend plaintext is received and sent on as with
    // a plain backend. Records that are not data surface as EIO (see onControlRecord).
    void pumpKernel(Connection& c);
    // A receive on a kernel-framed backend stopped at a record that is not application
    // data; the session reads and handles it (tickets dropped, close_notify, alerts, a
    // KeyUpdate the kernel cannot follow ends the stream before any byte is misread). The
    // receive was posted with room for a whole record (readBackend), and nothing has been
    // appended since, so the record fits.
    void onControlRecord(Connection& c);

    // ---- Forwarding, no TLS (forward_plain.cc).
    void pumpPlain(Connection& c);

    // ---- Refusing (error_reply.cc).
    void reject(Connection& c, Failure why, int httpStatus, const std::string& reason);
    void pumpReply(Connection& c);

    // ---- Ring submissions and receive buffers (submissions.cc).
    void recv(Connection& c, int fd, Chunk& into, Op op);
    void send(Connection& c, int fd, Chunk& from, Op op);
    void splice(Connection& c, int from, int to, std::size_t len, unsigned flags, Op op);
    void poll(Connection& c, int fd, Op op, unsigned events = POLLIN);
    void cancel(Connection& c, Op op);
    // Ends `c`'s operations on `fd` that are in `ops`: a pending connect is cancelled, the
    // rest complete at once when the socket is shut down.
    void cancelOps(Connection& c, int fd, unsigned ops);
    // A buffer to receive into; false when the buffer budget is spent: the receive waits,
    // and feedStarved() retries once memory came back. `chunk` is upIn or downIn, which the
    // budget admits as a pair (ChunkPool::tryAcquireReceive).
    bool reserve(Connection& c, ChunkPtr& chunk);
    // Connections whose receive waited for memory try again, oldest first; those still
    // without go back to the list. Memory other workers gave back counts too, so this runs
    // after every batch of completions and every tick.
    void feedStarved();

    // ---- The end of a connection, and bookkeeping (connection_lifecycle.cc).
    void abort(Connection& c);
    void maybeDestroy(Connection& c);
    // Callers up the stack may still hold a destroyed connection: it is freed only here,
    // between batches of completions.
    void buryDead();
    void setStage(Connection& c, Stage stage);
    void link(Connection& c);
    void unlink(Connection& c);

    // ---- Deadlines (deadlines.cc).
    void scanDeadlines();
    // The progress watchdog: an operation moving bytes has been in flight for kStallAfter
    // while its socket was ready (room to send, bytes to splice). Backpressure (a reader
    // that does not read, a sender that does not send) leaves the socket not ready and is the
    // idle timeout's business, not this.
    bool stalled(const Connection& c) const;
    void onDeadline(Connection& c);

    // ---- Idle memory reclaim (idle_reclaim.cc).
    // Cancels a quiet side's receive so that its empty buffer can go back to the pool.
    void park(Connection& c);
    // A burst of handshakes, or of connections going idle, leaves the allocator's heaps full
    // of freed holes (record buffers, key material); once it is over, hand them back so a
    // host with thousands of idle connections stays small. Only once the burst has stopped
    // for a while: trimming while connections keep coming makes the heap grow straight back.
    void noteRelease();
    void trimAfterBurst();

    // ---- Warm pool (warm_pool.cc).
    Connection* takePooled(const Connection& client);
    // Keeps ceil(N x endpoints / workers) handshaken connections per warm-pool backend on
    // this worker, and drops pooled ones whose profile is no longer the backend's.
    void refillPools();
    bool startWarm(const std::string& project, const route::Backend& backend);

    // ---- Policy enforcement (policy_enforcement.cc). Policy changes reach open connections
    // (BACKENDTLSPOLICY.md): plaintext to a backend a policy now covers ends, and so does a
    // session its backend's new profile would refuse.
    void refreshSnapshot();
    void enforcePolicies();
    // Whether `c`'s backend connection may go on under the current snapshot. A session whose
    // peer passes its backend's new profile continues under that profile. A removed policy
    // leaves sessions as they are: TLS is never downgraded.
    bool allowedByPolicy(Connection& c);
    void closeForPolicy(Connection& c);

    // ---- Statistics (stats.cc). Only this thread inserts; inserting takes statsMu_ so that
    // collect() on the control thread never sees a map mid-change.
    ServiceCounters& serviceCounters(const ServiceKey& key);
    ListenerCounters& listenerCounters(const route::ListenerId& id);
    // A client connection was given a backend: count it there.
    void countService(Connection& c);
    void recordCertificateExpiry(Connection& c);

    // ---- Per completion or per submission: defined here, so that every file inlines them.
    static Clock::time_point* watchedSince(Connection& c, Op op) {
        switch (op) {
            case BackendSend:
            case BackendSplice:
                return &c.toBackendSince;
            case ClientSend:
                return &c.toClientSince;
            case ClientSplice:
                return &c.fromClientSince;
            default:
                return nullptr;
        }
    }
    void submit(Connection& c, io_uring_sqe* s, Op op) {
        io_uring_sqe_set_data64(s, uring::packUserData(op, reinterpret_cast<std::uint64_t>(&c)));
        c.pending |= bit(op);
        if (Clock::time_point* since = watchedSince(c, op)) {
            *since = now_;
        }
    }
    // A buffer for bytes already admitted (see ChunkPool::acquire).
    void ensure(ChunkPtr& chunk) {
        if (!chunk) {
            chunk = pool_chunks_.acquire();
        }
    }
    void countToBackend(Connection& c, std::uint64_t n) {
        bump(counters_.bytesToBackend, n);
        bump(c.serviceStats->sentBytes, n);
        c.toBackendBytes += n;
    }
    void countToClient(Connection& c, std::uint64_t n) {
        bump(counters_.bytesToClient, n);
        bump(c.serviceStats->receivedBytes, n);
        c.toClientBytes += n;
    }

    const unsigned index_;
    WorkerShared& shared_;
    std::thread thread_;
    UniqueFd wakeFd_;
    std::mutex commandsMu_;
    std::vector<Command> commands_;
    std::string ringSetup_;

    // Worker thread only.
    std::unique_ptr<uring::Ring> ring_;
    std::uint64_t wakeValue_ = 0;
    std::shared_ptr<const tls::ProfileSet> snapshot_;
    std::map<route::ListenerId, std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<Listener>> retiring_;  // removed, last accept still in flight
    Connection* head_ = nullptr;
    std::vector<Connection*> dead_;
    std::vector<std::unique_ptr<drivers::EngineLane>> lanes_;
    std::vector<drivers::Wire*> progressed_;  // driveLanes' scratch
    Balancer balancer_;
    ChunkPool pool_chunks_{shared_.buffers};
    std::vector<Connection*> starved_;  // receives waiting for buffer memory
    std::vector<Connection*> slotWaiters_;  // clients waiting for a backend connection slot
    std::map<PoolKey, std::vector<Connection*>> pool_;
    std::map<PoolKey, int> warming_;
    Clock::time_point now_ = Clock::now();
    Clock::time_point nextScan_ = now_;
    Clock::time_point nextChunkTrim_ = now_;
    bool draining_ = false;
    bool stopped_ = false;
    unsigned handshaking_ = 0;  // connections in Stage::Handshaking
    unsigned releasesSinceTrim_ = 0;
    Clock::time_point lastRelease_;

    WorkerCounters counters_;
    mutable std::mutex statsMu_;
    std::map<ServiceKey, std::unique_ptr<ServiceCounters>> serviceStats_;
    std::map<route::ListenerId, std::unique_ptr<ListenerCounters>> listenerStats_;
};

}  // namespace lastmile::dataplane
