// SPDX-License-Identifier: Apache-2.0
// Manifest decoding: multi-document YAML or JSON text -> JSON objects, with source positions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ctrl/api/json.h"
#include "base/result.h"

namespace lastmile::ctrl {

// Deepest nesting of arrays and objects (mappings, sequences) a manifest or an API body may
// have. Deeper input is refused while it is parsed, before anything else walks it: copying,
// comparing and dumping a Json recurse once per level, on a server thread's stack.
inline constexpr int kMaxNesting = 64;

struct Document {
    Json object;
    int line = 0;  // 1-based line where the document starts in its source
};

// Decodes every document of `text` (YAML 1.2 core schema: unquoted 80 is an integer, "80" a
// string; JSON is YAML too). Empty documents are skipped; a `kind: List` is flattened into
// its items. Malformed input fails as a whole with Errc::Invalid and a context of the form
// "<source>:<line>:<column>: <problem>". Never throws.
Result<std::vector<Document>> decodeManifests(std::string_view text, const std::string& source);

// Parses one JSON value. Fails with Errc::Invalid, context "not valid JSON" or "nested deeper
// than 64 levels" (a phrase to follow "the body is"), and builds nothing below level 64 either
// way. Never throws.
Result<Json> decodeJson(std::string_view text);

// Renders a document as YAML the way `kubectl get -o yaml` does (block style, strings that
// would read back as another type are quoted).
std::string toYaml(const Json& object);

}  // namespace lastmile::ctrl
