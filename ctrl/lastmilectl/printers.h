// SPDX-License-Identifier: Apache-2.0
// Pure renderers for lastmilectl output: tables, describe pages, server errors (JSON in, text out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctrl/api/json.h"
#include "ctrl/api/kinds.h"

namespace lastmile::ctl {

using ctrl::Json;

// Aligns tab-separated cells like Go's text/tabwriter (which kubectl uses): a column is as
// wide as its widest cell plus `padding`, at least `minWidth`; the last cell of a line is
// never padded, and a line with fewer cells ends the column block.
std::string tabAlign(std::string_view text, std::size_t minWidth, std::size_t padding);

// The scalar at `keys` as text ("" when absent or null; numbers and booleans as JSON).
// Never throws, whatever the server sent.
std::string textAt(const Json& j, std::initializer_list<std::string_view> keys);

// kubectl's HumanDuration: "5s", "3m", "3m20s", "2h", "7h5m", "4d", "4d3h", "2y", "<invalid>".
std::string formatAge(std::int64_t seconds);

// AGE of an object at `now` (Unix seconds), "<unknown>" without a creationTimestamp.
std::string ageOf(const Json& object, std::int64_t now);

// `get nodes`: NAME ADDRESS ENGINES PROFILE-GENERATION HEARTBEAT (how long ago, at `now`).
std::string printNodes(const std::vector<Json>& nodes, std::int64_t now);

// `describe gateway` in a fleet: each node's own state of the Gateway's listeners ("" when no
// node reports any).
std::string describeNodes(const Json& nodeList, const Json& gateway);

// "backendtlspolicy.gateway.networking.k8s.io" or "service" (core): the apply/delete noun.
std::string singularRef(const ctrl::KindInfo& kind);
// "backendtlspolicies.gateway.networking.k8s.io" or "services": the NotFound noun.
std::string pluralRef(const ctrl::KindInfo& kind);

struct TableOptions {
    bool wide = false;           // -o wide: extra columns after AGE
    bool allNamespaces = false;  // -A: NAMESPACE column first
    std::int64_t now = 0;        // Unix seconds, for AGE
    bool withKind = false;       // NAME as "singular.group/name": several types in one `get`
};

// The `get` table of `items` (all of `kind`), header included, kubectl spacing.
std::string printTable(const ctrl::KindInfo& kind, const std::vector<Json>& items,
                       const TableOptions& options);

// -o name: one "singular.group/name" line per item.
std::string printNames(const ctrl::KindInfo& kind, const std::vector<Json>& items);

// -o yaml / -o json. `single` prints the object itself, otherwise a `kind: List`.
std::string printYaml(const std::vector<Json>& items, bool single);
std::string printJson(const std::vector<Json>& items, bool single);

// ACCEPTED column of a BackendTLSPolicy: "True" when every ancestor accepts it, "False"
// when any rejects it, "Unknown" otherwise (no ancestors yet, condition missing).
std::string acceptedSummary(const Json& policy);

// kubectl-style describe page of one object: header, metadata, spec (or data), status with
// condition tables. Secret values are shown as byte counts, never in clear.
std::string describeObject(const ctrl::KindInfo& kind, const Json& object);

// The "Compiled Profiles:" section for policy "ns/name" from the body of
// GET /projects/P/apis/lastmile.dev/v1/profiles.
std::string describeProfiles(const Json& profileList, const std::string& policy);

// A Gateway's virtual addresses (status.addresses), the interception modes that can carry
// them and whether their programs are attached, from the profiles answer's "interception";
// "" when the server has no interception configured.
std::string describeInterception(const Json& profileList, const Json& gateway);

// One or more stderr lines for a non-2xx answer: "Error from server (<Reason>): <context>
// <message>" and, for Invalid, every cause as "  <field>: <message>". `context` is put
// before the message (e.g. "error when applying x.yaml: "); `body` may be any text: a
// non-Status body is reported with the HTTP code.
std::string formatServerError(long httpCode, std::string_view body, std::string_view context);

}  // namespace lastmile::ctl
