// SPDX-License-Identifier: Apache-2.0
// The reconciler: one deterministic pass over a project's objects -> status and profiles.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ctrl/api/json.h"
#include "ctrl/api/object_key.h"
#include "dataplane/net/address_filter.h"
#include "dataplane/route/plan.h"
#include "dataplane/tls/handshake_profile.h"
#include "dataplane/tls/profile_spec.h"

namespace lastmile::ctrl {

struct ReconcilerConfig {
    std::string controllerName = "lastmile.dev/appliance";
    std::string gatewayClassName = "lastmile";
    // The dataplane's dial check: a Route reaching an endpoint it refuses gets ResolvedRefs
    // False, reason BackendNotPermitted. The default knows no listeners and refuses loopback.
    std::shared_ptr<const net::AddressFilter> backendFilter =
        std::make_shared<net::AddressFilter>();
    // The record engines that prepare every compiled profile's SSL_CTX; null: none.
    const drivers::EngineSet* engines = nullptr;
    // Whether a Gateway's IPAddress is this host's (net::isLocalAddress); the others are
    // virtual addresses (ListenerPlan::virtualAddresses). Null: every address is local.
    std::function<bool(std::string_view ip)> isLocalAddress;
};

// What the dataplane made of each listener, keyed by (Gateway key, listener name). A
// listener missing from the map has not been bound by anyone yet (no dataplane, or not yet).
using ListenerStates = std::map<std::pair<ObjectKey, std::string>, route::ListenerState>;

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
    // One plan per Accepted HTTP or TCP listener of every implemented Gateway, sorted by
    // ListenerId. ListenerId.project is left empty: a pass does not know its project's name.
    // Backend.profile is the very object `profiles` holds for that backend.
    std::vector<route::ListenerPlan> listeners;
};

// `objects` are every stored object of one project (any order; status included, since
// other controllers' ancestor entries are kept). `now` stamps lastTransitionTime of
// conditions whose status changed. `bound` is the dataplane's last word on the project's
// listeners; it decides the Programmed conditions of Gateways and listeners. Never throws.
ReconcileOutput reconcile(const std::vector<Json>& objects, const ReconcilerConfig& config,
                          std::chrono::system_clock::time_point now, const ListenerStates& bound);

}  // namespace lastmile::ctrl
