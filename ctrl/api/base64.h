// SPDX-License-Identifier: Apache-2.0
// Base64 as Kubernetes stores Secret and ConfigMap binary data (RFC 4648 §4, padded).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lastmile::ctrl {

std::string base64Encode(std::string_view bytes);

// Strict: standard alphabet, length a multiple of 4, '=' only as final padding (what Go's
// base64.StdEncoding, and so the API server, accepts). nullopt on anything else.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace lastmile::ctrl
