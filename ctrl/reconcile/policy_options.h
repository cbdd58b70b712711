// SPDX-License-Identifier: Apache-2.0
// BackendTLSPolicy `spec.options`: lastmile.dev/ keys (spec section 5) applied to a ProfileSpec.
#pragma once

#include <string>
#include <vector>

#include "ctrl/api/json.h"
#include "dataplane/tls/profile_spec.h"

namespace lastmile::ctrl {

struct OptionsOutcome {
    // One message per rejected option, naming the key (and the value when it was the value
    // that was wrong). Non-empty means the policy is Accepted=False/Invalid and fails closed.
    std::vector<std::string> invalid;
    // Keys of other implementations' domains: ignored, listed in the Accepted message.
    std::vector<std::string> ignored;
};

// Applies every known `lastmile.dev/` option of `options` (a JSON object of strings, or null)
// to `spec`. Keys are visited in sorted order so that messages are deterministic. Never throws.
OptionsOutcome applyPolicyOptions(const Json& options, tls::ProfileSpec& spec);

}  // namespace lastmile::ctrl
