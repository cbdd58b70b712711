// SPDX-License-Identifier: Apache-2.0
// BackendTLSPolicy `spec.options`: lastmile.dev/ keys (spec section 5) applied to a ProfileSpec.
#pragma once

#include <string>
#include <vector>

#include "ctrl/api/json.h"
#include "dataplane/tls/profile_spec.h"

namespace lastmile::ctrl {

struct OptionsOutcome {
    // One message per rejected option, starting with its field path (spec.options[KEY]) and
    // naming the value, or each refused entry of a list with the reason. Non-empty means the
    // policy is Accepted=False/Invalid and fails closed.
    std::vector<std::string> invalid;
    // Keys of other implementations' domains: ignored, listed in the Accepted message.
    std::vector<std::string> ignored;
};

// Applies every known `lastmile.dev/` option of `options` (a JSON object of strings, or null)
// to `spec`. Values are exact: spaces around a value or a list entry are dropped, the rest must
// match, and list entries must pass the allow-lists of dataplane/tls/option_names.h. Keys are
// visited in sorted order so that messages are deterministic. Never throws.
OptionsOutcome applyPolicyOptions(const Json& options, tls::ProfileSpec& spec);

}  // namespace lastmile::ctrl
