// SPDX-License-Identifier: Apache-2.0
// Admission: every rule an API server would enforce at apply time, all errors at once.
#pragma once

#include "ctrl/api/diagnostic.h"
#include "ctrl/api/json.h"

namespace lastmile::ctrl {

struct Admission {
    Json object;         // normalized: see admit()
    Diagnostics errors;  // empty when admitted
};

// Validates one decoded object against its kind's schema (types, required fields, unknown
// fields, lengths, patterns, enums, bounds) and the kind's cross-field rules (for
// BackendTLSPolicy every rule of spec section 1). Every error carries its field path.
// The normalized object has the storage apiVersion (v1alpha3 BackendTLSPolicy -> v1),
// metadata.namespace defaulted to "default", `status` and server-owned metadata (uid,
// generation, creationTimestamp) removed; metadata.resourceVersion is kept (optimistic
// concurrency). Never throws.
Admission admit(const Json& object);

}  // namespace lastmile::ctrl
