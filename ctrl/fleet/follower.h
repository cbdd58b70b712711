// SPDX-License-Identifier: Apache-2.0
// Follower: keeps a fleet node in step with the shared store. It lists, then watches from the
// list's revision, and reconciles every project a change touched, from a de-duplicating queue.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "base/result.h"
#include "ctrl/fleet/last_known_store.h"
#include "ctrl/store/store.h"

namespace lastmile::ctrl {

class Follower {
public:
    using ReconcileFn = std::function<Status(const std::string& project)>;

    // `store` is the node's LastKnownStore, which the follower keeps filled; `reconcile`
    // reconciles one project (Controller::reconcileProject).
    Follower(LastKnownStore& store, ReconcileFn reconcile);
    ~Follower();  // stops the thread
    Follower(const Follower&) = delete;
    Follower& operator=(const Follower&) = delete;

    // Lists every project into the store's last known state; the watch starts from there.
    // Call before the controller's first reconcile, and then start().
    Status prime();
    void start();

    // Queues every known project: the other nodes changed in a way status depends on.
    void touchAll();

    // The revision the node has seen every change up to.
    std::uint64_t revision() const { return revision_.load(); }

private:
    void run(std::stop_token stop);
    // Lists again after Gone: every project known before or after is reconciled.
    Status relist();
    void reconcilePending();

    LastKnownStore& store_;
    ReconcileFn reconcile_;
    std::atomic<std::uint64_t> revision_{0};
    std::mutex mu_;
    std::set<std::string> pending_;  // projects to reconcile (guarded by mu_)
    // Per project, the error its last reconcile failed with (the follower's thread only).
    std::map<std::string, std::string> lastFailure_;
    // Replaced by a relist (under mu_) on the follower's thread, which alone reads it unlocked.
    std::unique_ptr<StoreWatch> watch_;
    std::jthread thread_;
};

}  // namespace lastmile::ctrl
