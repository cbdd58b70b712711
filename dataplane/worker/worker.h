// SPDX-License-Identifier: Apache-2.0
// Worker: one thread with its own io_uring that accepts, connects, handshakes and forwards.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "base/chunk.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "dataplane/net/address_filter.h"
#include "dataplane/net/resolver.h"
#include "dataplane/route/plan.h"
#include "dataplane/tls/profile_set.h"
#include "dataplane/uring/ring.h"
#include "dataplane/worker/counters.h"
#include "dataplane/worker/interceptor.h"
#include "dataplane/worker/options.h"
#include "drivers/engines.h"

namespace lastmile::dataplane {

// What every worker of a process shares. Outlives the workers.
struct WorkerShared {
    explicit WorkerShared(const DataplaneOptions& o) : options(o), buffers(o.maxBufferMemory) {}

    DataplaneOptions options;
    unsigned workerCount = 1;
    tls::ProfileRegistry* registry = nullptr;
    std::atomic<std::int64_t> connections{0};  // client connections of the whole process
    std::atomic<std::int64_t> backendConnections{0};  // backend sockets, warm ones included
    std::atomic<std::int64_t> slotWanted{0};  // clients waiting for a backend socket slot
    BufferBudget buffers;                             // every worker's chunks
    // Offered each established session in order (drivers/engines.h).
    const drivers::EngineSet* engines = nullptr;
    uring::RingOptions ring;
    net::Resolver* resolver = nullptr;  // ExternalName Services
    const net::AddressFilter* backendFilter = nullptr;  // every dial passes it
    // Configured interception (bpf/), null when the config has no `interception:` key.
    const Interceptor* interceptor = nullptr;
    std::uint32_t backendMark = 0;  // SO_MARK of backend sockets; 0: none set
};

// All methods but the constructor are thread-safe: the control thread queues commands that
// the worker thread applies between completions.
class Worker {
public:
    Worker(unsigned index, WorkerShared& shared);
    ~Worker();  // stops the thread; open connections are closed
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Starts the thread and returns once its ring is set up (or why it could not be).
    Status start();

    // Accepts on `fd` (a duplicate of the listener's one socket, shared by every worker) for
    // listener `id`. `intercepting`: it takes over virtual addresses, so each accepted
    // connection is asked which interception mode brought it (and only then).
    void addListener(const route::ListenerId& id, UniqueFd fd, bool intercepting);
    void removeListener(const route::ListenerId& id);
    // A new ProfileSet was published: new connections use it; open ones are closed where it
    // no longer allows them (plaintext to a covered backend, a peer the new profile refuses).
    void refresh();
    // Stops accepting; open connections run to their end.
    void drain();
    // Client connections open on this worker.
    std::int64_t activeConnections() const;

    const WorkerCounters& counters() const;
    // Adds this worker's per-Service and per-listener counters, engine sessions and ring
    // statistics to `into`.
    void collect(DataplaneStats& into) const;
    // The io_uring setup the kernel accepted ("defer-taskrun", ...); empty before start().
    std::string ringSetup() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace lastmile::dataplane
