// SPDX-License-Identifier: Apache-2.0
// lastmiled's configuration file (YAML) and the command-line flags that override it.
#pragma once

#include <string>

#include "dataplane/base/log.h"
#include "dataplane/base/result.h"

namespace lastmile::ctrl {

struct DaemonConfig {
    std::string stateDir = "/var/lib/lastmile";
    std::string apiSocket = "/run/lastmile/api.sock";
    std::string adminHttp = "127.0.0.1:9090";  // empty: no admin listener
    std::string manifests;                     // empty: none applied at start
    std::string gatewayClassName = "lastmile";
    std::string controllerName = "lastmile.dev/appliance";
    unsigned workers = 0;  // 0: one dataplane worker per core
    log::Level logLevel = log::Level::Info;
};

// Reads `path` over `base`: keys present in the file replace base's values. Unknown keys,
// wrong types and malformed YAML fail with Errc::Invalid naming the file, line and key.
Result<DaemonConfig> loadConfig(const std::string& path, DaemonConfig base);

}  // namespace lastmile::ctrl
