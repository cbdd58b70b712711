// SPDX-License-Identifier: Apache-2.0
// Follower: list, watch, and reconcile what changed; relist on Gone.
#include "ctrl/fleet/follower.h"

#include <utility>
#include <vector>

#include "base/log.h"

namespace lastmile::ctrl {
namespace {

constexpr const char* kLog = "fleet";

// How long one wait on the watch lasts when nothing is queued; a project whose reconcile
// failed (the store without quorum) is tried again after it.
constexpr std::chrono::milliseconds kWatchWait{500};

}  // namespace

Follower::Follower(LastKnownStore& store, ReconcileFn reconcile)
    : store_(store), reconcile_(std::move(reconcile)) {}

Follower::~Follower() {
    if (thread_.joinable()) {
        thread_.request_stop();
        {
            std::lock_guard lock(mu_);
            watch_->wake();
        }
        thread_.join();
    }
}

Status Follower::prime() {
    Store& store = store_.inner();
    auto revision = store.revision();
    LM_TRY(revision);
    auto all = store.listAll();
    LM_TRY(all);
    // listAll's revision is the read's; with no objects there is none, and the one read just
    // before is used (a watch from there replays what happened in between).
    const std::uint64_t at = all->empty() ? *revision : all->front().second.revision;
    store_.replace(at, *all);
    revision_ = at;
    auto watch = store.watch(at);
    std::lock_guard lock(mu_);
    watch_ = std::move(watch);
    return {};
}

void Follower::start() {
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Follower::touchAll() {
    std::lock_guard lock(mu_);
    for (const auto& project : store_.knownProjects()) {
        pending_.insert(project);
    }
    if (watch_) {
        watch_->wake();
    }
}

Status Follower::relist() {
    const auto before = store_.knownProjects();
    LM_TRY(prime());
    std::lock_guard lock(mu_);
    pending_.insert(before.begin(), before.end());
    for (const auto& project : store_.knownProjects()) {
        pending_.insert(project);
    }
    return {};
}

void Follower::reconcilePending() {
    std::set<std::string> projects;
    {
        std::lock_guard lock(mu_);
        projects.swap(pending_);
    }
    std::set<std::string> failed;
    for (const auto& project : projects) {
        auto s = reconcile_(project);
        if (s) {
            lastFailure_.erase(project);
            continue;
        }
        // A store without quorum fails the same way every retry: said once, not every 500 ms.
        if (auto& last = lastFailure_[project]; last != s.error().message()) {
            last = s.error().message();
            LM_LOG(Warning, kLog, "reconciling project " << project << ": " << last
                                      << (s.error().code() == Errc::Unavailable
                                              ? " (trying again until the store answers)"
                                              : ""));
        }
        if (s.error().code() == Errc::Unavailable) {
            failed.insert(project);
        }
    }
    std::lock_guard lock(mu_);
    pending_.insert(failed.begin(), failed.end());
}

void Follower::run(std::stop_token stop) {
    while (!stop.stop_requested()) {
        bool queued;
        {
            std::lock_guard lock(mu_);
            queued = !pending_.empty();
        }
        auto events = watch_->next(queued ? std::chrono::milliseconds(0) : kWatchWait);
        if (!events) {
            if (events.error().code() == Errc::Gone) {
                LM_LOG(Notice, kLog, "the store compacted past revision " << revision_.load()
                                         << ": listing again");
                if (auto s = relist(); !s) {
                    LM_LOG(Warning, kLog, "listing the store: " << s.error().message());
                    std::this_thread::sleep_for(kWatchWait);
                }
            } else {
                LM_LOG(Warning, kLog, "watching the store: " << events.error().message());
                std::this_thread::sleep_for(kWatchWait);
            }
            continue;
        }
        {
            std::lock_guard lock(mu_);
            for (const auto& event : *events) {
                store_.apply(event);
                pending_.insert(event.project);
                revision_ = event.revision;
            }
        }
        reconcilePending();
        if (queued && events->empty()) {
            // Only failed projects are queued: do not spin on a store without quorum.
            std::unique_lock lock(mu_);
            std::condition_variable_any idle;
            idle.wait_for(lock, stop, kWatchWait, [] { return false; });
        }
    }
}

}  // namespace lastmile::ctrl
