// SPDX-License-Identifier: Apache-2.0
// The worker thread's loop: completions, commands, ticks and the shutdown.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

#include <algorithm>

namespace lastmile::dataplane {

namespace {

// How often deadlines are checked; timeouts are this coarse.
constexpr unsigned kTickMs = 100;
// Free buffers unused for this long go back to the buffer budget (ChunkPool::trim).
constexpr std::chrono::seconds kChunkTrimEvery{1};
// Rounds of flush, poll and pump per batch of completions: a software device finishes
// within the flush, so one round's pumps queue the next records at once.
constexpr int kLaneRounds = 4;


}  // namespace

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
    const drivers::EngineSet& engines = *shared_.engines;
    for (std::size_t i = 0; i < engines.size(); ++i) {
        if (auto lane = engines.usable(i) ? engines.at(i).openLane() : nullptr) {
            lanes_.push_back(std::move(lane));
        }
    }
    armWake();
    ready.set_value(Status{});
    while (!stopped_) {
        // A device is polled, not waited on: while it holds operations the ring is only
        // peeked at.
        ring_->submitAndWait(lanesBusy() ? 0 : kTickMs);
        now_ = Clock::now();
        ring_->drain([this](const io_uring_cqe& cqe) { dispatch(cqe); });
        driveLanes();
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
    lanes_.clear();
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
                l->intercepting = cmd.intercepting;
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
        // A device's operations end in microseconds; a millisecond per round, not none,
        // so that the rounds' bound is time for them to come back in, not a spin.
        ring_->submitAndWait(lanesBusy() ? 1 : kTickMs);
        now_ = Clock::now();
        ring_->drain([this](const io_uring_cqe& cqe) {
            if (uring::userDataOp(cqe.user_data) != Wake) {
                dispatch(cqe);
            }
        });
        driveLanes();
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

void Worker::Impl::driveLanes() {
    for (int round = 0; round < kLaneRounds && lanesBusy(); ++round) {
        progressed_.clear();
        for (auto& lane : lanes_) {
            lane->flush();
            lane->poll(progressed_);
        }
        if (progressed_.empty()) {
            return;
        }
        // A connection may be reported twice, and destroyed by the first pump: pump()
        // returns at once for a dead one, which is freed only after the batch.
        for (drivers::Wire* wire : progressed_) {
            pump(*static_cast<Connection*>(wire->owner));
        }
    }
}

bool Worker::Impl::lanesBusy() const {
    return std::any_of(lanes_.begin(), lanes_.end(), [](const auto& l) { return l->busy(); });
}

bool Worker::Impl::anyArmed() const {
    return !retiring_.empty() || std::any_of(listeners_.begin(), listeners_.end(),
                                             [](const auto& l) { return l.second->armed; });
}

}  // namespace lastmile::dataplane
