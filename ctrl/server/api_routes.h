// SPDX-License-Identifier: Apache-2.0
// The object API of API.md: maps Kubernetes-style REST requests onto the Controller.
#pragma once

#include "ctrl/server/api_access.h"
#include "ctrl/server/controller.h"
#include "ctrl/server/http_server.h"

namespace lastmile::ctrl {

// Pure request -> response mapping (no sockets), so it is testable on its own. Never throws.
// A caller `access` does not allow into the path's project gets 403 Forbidden before anything
// is looked up, the same answer whether or not the project or object exists.
HttpResponse handleApiRequest(Controller& controller, const ApiAccess& access,
                              const HttpRequest& request);

}  // namespace lastmile::ctrl
