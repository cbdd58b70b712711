// SPDX-License-Identifier: Apache-2.0
// Diagnostic: one finding about one field of one object; config errors are collected, never first-fail.
#pragma once

#include <string>
#include <vector>

namespace lastmile::ctrl {

struct Diagnostic {
    std::string path;     // field path, e.g. "spec.validation.hostname" or "spec.targetRefs[0].kind"
    std::string reason;   // Gateway API condition reason where one applies, else "FieldValueInvalid" etc.
    std::string message;  // human sentence, without the path

    bool operator==(const Diagnostic&) const = default;
};

using Diagnostics = std::vector<Diagnostic>;

// "path: message", the form every CLI and log line uses.
inline std::string format(const Diagnostic& d) {
    return d.path.empty() ? d.message : d.path + ": " + d.message;
}

}  // namespace lastmile::ctrl
