// SPDX-License-Identifier: Apache-2.0
// Which files a manifest path names: a file, or every manifest in a directory.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace lastmile::ctrl {

// `path` itself when it is a file; when it is a directory, its *.yaml, *.yml and *.json
// files (not recursive) in name order. Errc::NotFound when `path` does not exist.
Result<std::vector<std::string>> manifestFiles(const std::string& path);

// The whole content of a file; Errc::NotFound when absent.
Result<std::string> readFile(const std::string& path);

}  // namespace lastmile::ctrl
