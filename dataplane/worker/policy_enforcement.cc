// SPDX-License-Identifier: Apache-2.0
// Published policy changes reach open connections (BACKENDTLSPOLICY.md).
#include "dataplane/worker/worker_impl.h"

#include "base/log.h"

namespace lastmile::dataplane {

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

}  // namespace lastmile::dataplane
