// SPDX-License-Identifier: Apache-2.0
// Controller: the one path every write takes (admit -> store -> reconcile -> publish).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ctrl/api/diagnostic.h"
#include "ctrl/api/json.h"
#include "ctrl/api/object_key.h"
#include "ctrl/reconcile/listener_claims.h"
#include "ctrl/reconcile/reconciler.h"
#include "ctrl/store/store.h"
#include "base/result.h"
#include "dataplane/tls/profile_set.h"

namespace lastmile::ctrl {

struct WriteResult {
    Json object;           // the stored object, status as reconciled
    bool created = false;  // PUT: created rather than replaced
    bool changed = false;  // false when the write changed nothing (apply "unchanged")
};

// Serializes all writes and reconciles the touched project before returning, so a read after
// an acknowledged write sees its status. Thread-safe.
class Controller {
public:
    using ReconcileFn =
        std::function<ReconcileOutput(const std::vector<Json>&, const ReconcilerConfig&,
                                      std::chrono::system_clock::time_point, const ListenerStates&)>;
    // The dataplane's hook: makes the project's bound listeners exactly `plans` (an empty list
    // unbinds them all) and says, per listener, whether it is bound. Called under the write
    // lock on every reconcile of the project, with the same plans when nothing changed, so it
    // must be idempotent. ListenerId.project is filled in.
    using BindFn = std::function<std::map<route::ListenerId, route::ListenerState>(
        const std::string& project, const std::vector<route::ListenerPlan>& plans)>;

    // `reconciler` is ctrl::reconcile; tests substitute one that fails in ways OpenSSL won't.
    // Without a `binder` (no dataplane) listeners stay Programmed=False/Pending. The binder
    // only ever gets listeners whose address no other Gateway of any project holds: every
    // project's claims are arbitrated together (see arbitrateClaims), and a listener that
    // loses is reported not bound with the loser's message. `defaultBindAddress` is where the
    // dataplane binds a Gateway without spec.addresses.
    Controller(Store& store, ReconcilerConfig config, tls::ProfileRegistry& profiles, Clock clock,
               ReconcileFn reconciler = reconcile, BindFn binder = {},
               std::string defaultBindAddress = "0.0.0.0");

    // Reconciles every stored project and publishes the first ProfileSet. Call once at start.
    Status start();

    // Reconciles one project from what the store holds now: a fleet node calls it for every
    // project a change on another node touched (a project with no objects left is unbound).
    Status reconcileProject(const std::string& project);

    // In a fleet, a Gateway listener is Programmed only when every live node bound it. The
    // hook gets this node's binds of a project and answers them merged with the other live
    // nodes' (publishing this node's on the way). Set once, before start().
    using MergeFn = std::function<ListenerStates(const std::string& project,
                                                 const ListenerStates& local)>;
    void setListenerMerge(MergeFn merge) { merge_ = std::move(merge); }

    // Create-or-replace (PUT). `object` is decoded, not yet admitted. On Errc::Invalid,
    // `findings` holds every admission error and nothing was stored.
    Result<WriteResult> apply(const std::string& project, const Json& object, Diagnostics& findings);
    // Create only (POST): Errc::AlreadyExists when the name is taken.
    Result<WriteResult> create(const std::string& project, const Json& object, Diagnostics& findings);
    Result<Json> remove(const std::string& project, const ObjectKey& key);

    Result<Json> get(const std::string& project, const ObjectKey& key);
    Result<Listed> list(const std::string& project, const std::string& group,
                        const std::string& kind, const std::optional<std::string>& ns);

    // Profiles of one project, as the API shows them (see API.md).
    Json describeProfiles(const std::string& project) const;

    // The host's record engines as describe shows them: [{"name", "usable", "detail"}], in
    // the order sessions try them. Set once at start, before the API serves.
    void setRecordEngines(Json engines) { recordEngines_ = std::move(engines); }
    // Interception as describe shows it, asked at each request (links can detach): {"modes":
    // [{"name", "usable", "detail"}], "attachments": [{"mode", "program", "target",
    // "attached"}]}. Unset: interception is not configured. Set once, before the API serves.
    void setInterception(std::function<Json()> describe) { interception_ = std::move(describe); }

    // The fleet's live nodes as `lastmilectl get nodes` shows them: [{"name", "address",
    // "engines", "profileGeneration", "heartbeat", "listeners"}], where listeners are the
    // project's only. Asked at each request. Set once, before the API serves.
    using NodesFn = std::function<Json(const std::string& project)>;
    void setNodes(NodesFn nodes) { nodes_ = std::move(nodes); }
    Json describeNodes(const std::string& project) const {
        return nodes_ ? nodes_(project) : Json::array();
    }

    // Reconciles every project again with freshly compiled profiles for policies that trust
    // the system store (SIGHUP): its files are read when a profile is compiled, and an
    // unchanged spec otherwise keeps the profile it had.
    Status reloadSystemTrust();

    // Reconciles again every project with a listener the dataplane could not bind for a
    // reason that can pass (ListenerState::retry: the port still held, the address not on
    // the host yet), so that it binds and turns Programmed without a new write. lastmiled
    // calls it every second.
    Status retryUnboundListeners();

    // How long the write or reconcile in progress has held the controller; zero when idle.
    // Never blocks, so lastmiled's watchdog thread can tell a wedged reconcile from a long
    // queue without waiting behind it.
    std::chrono::steady_clock::duration busyFor() const;

    // Counters for logs and, later, metrics.
    std::uint64_t compileFailures() const;

private:
    Result<WriteResult> write(const std::string& project, const Json& object, bool upsert,
                              Diagnostics& findings);
    // Holds mu_ for one write or reconcile and stamps when it started (busyFor()).
    class Busy;

    struct PassOptions {
        // Other projects whose listeners the new claims displace are reconciled first (so
        // their sockets are closed before this project binds) and those whose listeners
        // they release are reconciled after (so they bind).
        bool settleOthers = true;
        // Profiles that trust the system store are compiled anew, not reused (SIGHUP).
        bool freshSystemTrust = false;
    };
    Status reconcileAll(bool freshSystemTrust);
    // Caller holds mu_. Without options: settle others, reuse unchanged profiles.
    Status reconcileLocked(const std::string& project, PassOptions options);
    Status reconcileLocked(const std::string& project);
    // Reconciles each of `projects` without settling further ones; errors are logged.
    void settleLocked(const std::set<std::string>& projects);

    Store& store_;
    const ReconcilerConfig config_;
    tls::ProfileRegistry& profiles_;
    Clock clock_;
    ReconcileFn reconcile_;
    BindFn binder_;
    const std::string defaultBindAddress_;
    // Per project, the binder's last answer, and with merge_ the merged states status last
    // showed (guarded by mu_).
    std::map<std::string, ListenerStates> bound_;
    std::map<std::string, ListenerStates> shown_;
    MergeFn merge_;
    // Per project, the listener claims of its last complete pass, and the listeners of all
    // projects that lost theirs, with why (guarded by mu_).
    std::map<std::string, std::vector<ListenerClaim>> claims_;
    std::map<route::ListenerId, std::string> losers_;

    std::mutex mu_;  // serializes writes with the reconcile that follows them
    // steady_clock ticks when the current holder of mu_ took it; 0 when nobody holds it.
    std::atomic<std::int64_t> busySince_{0};
    std::atomic<std::uint64_t> compileFailures_{0};
    Json recordEngines_ = Json::array();
    std::function<Json()> interception_;
    NodesFn nodes_;
};

}  // namespace lastmile::ctrl
