// SPDX-License-Identifier: Apache-2.0
// The kinds lastmile serves: names, versions and schemas, as kubectl resolves them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ctrl/api/schema.h"

namespace lastmile::ctrl {

struct KindInfo {
    std::string group;                  // "" for core
    std::vector<std::string> versions;  // served versions; the first is the storage version
    std::string kind;                   // "BackendTLSPolicy"
    std::string plural;                 // "backendtlspolicies"
    std::string singular;               // "backendtlspolicy"
    std::vector<std::string> shortNames;  // "btlspolicy"
    std::string description;
    schema::NodePtr schema;             // the whole object: apiVersion, kind, metadata, spec/data...

    // "gateway.networking.k8s.io/v1" or "v1" for core.
    std::string storageApiVersion() const;
};

// Every kind, in a stable order (the order `get all`-style listings use).
const std::vector<KindInfo>& allKinds();

// By apiVersion and kind as written in a manifest; nullptr when not served
// (unknown group, unknown version of a known group, unknown kind).
const KindInfo* findKind(std::string_view apiVersion, std::string_view kind);

// By a CLI resource name: plural, singular, short name or kind, case-insensitive,
// optionally qualified by group ("backendtlspolicies.gateway.networking.k8s.io").
const KindInfo* findResource(std::string_view name);

// Where a kind goes when several objects are applied together (lastmilectl apply -f, the
// manifests directory): CA material and policies first, then Services and endpoints, then
// Routes, Gateways last, so that no listener forwards to a backend before the policy that
// covers it exists (a backend without a policy is spoken to in plaintext). Deleting runs
// the other way. Unknown kinds go last. A stable sort by this keeps the file order within
// a rank.
int applyRank(std::string_view kind);

}  // namespace lastmile::ctrl
