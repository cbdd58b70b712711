// SPDX-License-Identifier: Apache-2.0
// `explain`: documentation of a kind or field, rendered from the schema admission uses.
#pragma once

#include <string>
#include <string_view>

#include "ctrl/api/kinds.h"
#include "base/result.h"

namespace lastmile::ctrl {

// `fieldPath` is "" for the kind itself or "spec.validation.hostname". Output follows
// `kubectl explain` (KIND, VERSION, FIELD, DESCRIPTION, FIELDS); `recursive` prints the
// whole field tree below the node with types. Unknown field: Errc::NotFound naming it.
Result<std::string> explain(const KindInfo& kind, std::string_view fieldPath, bool recursive);

}  // namespace lastmile::ctrl
