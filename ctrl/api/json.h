// SPDX-License-Identifier: Apache-2.0
// The control plane's document type: objects are kept as JSON trees in API field order.
#pragma once

#include <nlohmann/json.hpp>

namespace lastmile::ctrl {

// Ordered so that `get -o yaml` prints fields in the order the user wrote them.
using Json = nlohmann::ordered_json;

}  // namespace lastmile::ctrl
