// SPDX-License-Identifier: Apache-2.0
// Dataplane: the workers of one process, the listeners they share, and their counters.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "base/result.h"
#include "dataplane/route/plan.h"
#include "dataplane/tls/profile_set.h"
#include "dataplane/uring/ring.h"
#include "dataplane/worker/counters.h"
#include "dataplane/worker/interceptor.h"
#include "dataplane/worker/options.h"
#include "dataplane/worker/worker.h"
#include "drivers/engines.h"

namespace lastmile::dataplane {

class Dataplane {
public:
    // Builds the record engines of options.recordEngines and starts options.workers workers
    // (0: one per core), each with its own ring, reading `registry` (which must outlive the
    // dataplane). `ring` is for tests of the fallbacks.
    static Result<std::unique_ptr<Dataplane>> start(const DataplaneOptions& options,
                                                    tls::ProfileRegistry& registry,
                                                    const uring::RingOptions& ring = {});
    ~Dataplane();  // stops the workers; open connections are closed
    Dataplane(const Dataplane&) = delete;
    Dataplane& operator=(const Dataplane&) = delete;

    // Makes `project`'s bound listeners exactly `plans`: binds new ones (one socket per
    // listener, shared by every worker; never SO_REUSEPORT, so the kernel cannot split one
    // address's connections between two listeners), keeps unchanged ones, closes the rest:
    // their address is free again when this returns. Returns the state of each plan's
    // listener. An address another listener holds is refused, without naming it (tenants do
    // not see each other); the caller arbitrates who may ask for which. A plan's virtual
    // addresses are registered with every usable interception mode (the listener is bound
    // only when each of them is taken) and unregistered before its socket closes.
    // Thread-safe.
    std::map<route::ListenerId, route::ListenerState> bind(
        const std::string& project, const std::vector<route::ListenerPlan>& plans);

    // The registry has a new generation: workers take it for new connections.
    void refresh();

    // Stops accepting and waits up to options.drainTimeout for open connections to end.
    // Returns the number still open when it gave up.
    std::int64_t drain();

    // "127.0.0.1:8443" where `id` listens, nullopt when it is not bound.
    std::optional<std::string> boundAddress(const route::ListenerId& id) const;

    // The dial check of every backend connection: options.allowedBackendNetworks, and the
    // listeners bind() holds. The caller adds its other listening sockets (the admin one).
    const std::shared_ptr<net::AddressFilter>& backendFilter() const noexcept {
        return backendFilter_;
    }

    DataplaneStats stats() const;
    // The interception programs and their links; null when interception is not configured.
    const Interceptor* interceptor() const noexcept { return interceptor_.get(); }
    // The record engines, for the profile compiler (they prepare its contexts) and status.
    const drivers::EngineSet& engines() const noexcept { return *engines_; }
    std::vector<std::string> ringSetups() const;
    unsigned workerCount() const noexcept { return shared_.workerCount; }

private:
    explicit Dataplane(const DataplaneOptions& options) : shared_(options) {}

    net::Resolver resolver_;
    std::shared_ptr<net::AddressFilter> backendFilter_;
    WorkerShared shared_;
    std::unique_ptr<drivers::EngineSet> engines_;
    std::vector<std::unique_ptr<Worker>> workers_;

    // A virtual address a bound listener registered, with the modes that took it.
    struct Registered {
        net::SocketAddress vip;
        std::vector<InterceptMode> modes;
    };
    struct Bound {
        std::string address;  // as asked: "127.0.0.1:8443" (port 0 in tests)
        std::string actual;   // as bound, with the port the kernel picked for port 0
        UniqueFd socket;      // the workers accept on duplicates of it
        net::SocketAddress boundAddress;  // `actual`, as the backend filter knows it
        std::vector<std::string> virtualAddresses;  // as the plan asked
        std::vector<Registered> registered;
        std::vector<route::Interception> intercepted;  // what status shows of `registered`
    };
    // Whether interception can take `plan`'s virtual addresses at all; why not otherwise.
    Status checkVirtual(const route::ListenerPlan& plan) const;
    // Registers `plan`'s virtual addresses for the listening socket `fd` bound to `address`:
    // all of them, or none and why.
    Result<std::vector<Registered>> registerVirtual(const route::ListenerPlan& plan,
                                                    const net::SocketAddress& address, int fd);
    void unregister(const std::vector<Registered>& registered);

    mutable std::mutex mu_;
    std::map<route::ListenerId, Bound> bound_;
    std::map<std::string, route::ListenerId> owners_;  // address -> listener holding it
    // Declared after bound_, so destroyed before it: the links go before the sockets.
    std::unique_ptr<Interceptor> interceptor_;
};

}  // namespace lastmile::dataplane
