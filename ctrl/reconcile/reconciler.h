// SPDX-License-Identifier: Apache-2.0
// The reconciler: one deterministic pass over a project's objects -> status and profiles.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ctrl/api/json.h"
#include "ctrl/api/object_key.h"
#include "dataplane/tls/handshake_profile.h"
#include "dataplane/tls/profile_spec.h"

namespace lastmile::ctrl {

struct ReconcilerConfig {
    std::string controllerName = "lastmile.dev/appliance";
    std::string gatewayClassName = "lastmile";
};

struct StatusUpdate {
    ObjectKey key;
    Json status;  // the whole new `status` of the object
};

struct ReconcileOutput {
    // The status the controller computes for every object it owns status of: Gateways of its
    // class, Routes whose parentRefs name such a Gateway, every BackendTLSPolicy. Statuses of
    // other controllers' entries are carried over untouched. Callers write only changed ones.
    std::vector<StatusUpdate> statuses;
    // One compiled profile per (Service, port) that an accepted Route of an implemented
    // Gateway reaches and that a policy governs (fail-closed profiles included), sorted by
    // BackendKey. Backends no policy covers get none: they are forwarded without TLS.
    std::vector<std::shared_ptr<const tls::HandshakeProfile>> profiles;
    // Compile failures that were not the spec's fault (Errc::Internal and the like): the
    // caller keeps the previous generation, logs and counts them.
    std::vector<std::string> internalErrors;
};

// `objects` are every stored object of one project (any order; status included, since
// other controllers' ancestor entries are kept). `now` stamps lastTransitionTime of
// conditions whose status changed. Never throws.
ReconcileOutput reconcile(const std::vector<Json>& objects, const ReconcilerConfig& config,
                          std::chrono::system_clock::time_point now);

}  // namespace lastmile::ctrl
