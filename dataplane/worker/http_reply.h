// SPDX-License-Identifier: Apache-2.0
// The only HTTP lastmile speaks: a one-line error answer on HTTP listeners (502/503/504).
#pragma once

#include <string>
#include <string_view>

namespace lastmile::dataplane {

// "HTTP/1.1 503 Service Unavailable" with `reason` as a one-line text/plain body and
// Connection: close. Line breaks in `reason` become spaces.
std::string httpErrorResponse(int status, std::string_view reason);

}  // namespace lastmile::dataplane
