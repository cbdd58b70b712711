// SPDX-License-Identifier: Apache-2.0
// The object API of API.md: maps Kubernetes-style REST requests onto the Controller.
#pragma once

#include "ctrl/server/controller.h"
#include "ctrl/server/http_server.h"

namespace lastmile::ctrl {

// Pure request -> response mapping (no sockets), so it is testable on its own. Never throws.
HttpResponse handleApiRequest(Controller& controller, const HttpRequest& request);

}  // namespace lastmile::ctrl
