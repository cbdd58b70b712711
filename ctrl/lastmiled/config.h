// SPDX-License-Identifier: Apache-2.0
// lastmiled's configuration file (YAML) and the command-line flags that override it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ctrl/server/api_access.h"
#include "base/log.h"
#include "base/result.h"
#include "dataplane/worker/options.h"

namespace lastmile::ctrl {

struct DaemonConfig {
    std::string stateDir = "/var/lib/lastmile";
    std::string apiSocket = "/run/lastmile/api.sock";
    std::string adminHttp = "127.0.0.1:9090";  // empty: no admin listener
    std::string manifests;                     // empty: none applied at start
    std::string gatewayClassName = "lastmile";
    std::string controllerName = "lastmile.dev/appliance";
    // The top-level keys workers, bindAddress, allowedBackendNetworks, connectTimeout,
    // handshakeTimeout, idleTimeout, drainTimeout, maxConnections, maxBackendConnections,
    // maxBufferMemory and errorDetail.
    dataplane::DataplaneOptions dataplane;
    log::Level logLevel = log::Level::Info;
    // Who may use which project on the API besides root and the service's own user; empty:
    // nobody else (the secure default).
    std::vector<ApiGrant> apiAccess;
};

// A Go-style duration ("500ms", "5s", "2m", "1h", "1m30s", "1.5h"): units ms, s, m, h;
// fractions are rounded to the millisecond. Errc::Invalid otherwise.
Result<std::chrono::milliseconds> parseDuration(const std::string& text);

// A byte size: decimal digits, optionally followed by Ki, Mi or Gi ("268435456", "256Mi",
// "1Gi"). Errc::Invalid otherwise, or beyond 1 TiB.
Result<std::uint64_t> parseByteSize(const std::string& text);

// Reads `path` over `base`: keys present in the file replace base's values. Unknown keys,
// wrong types and malformed YAML fail with Errc::Invalid naming the file, line and key;
// allowedBackendNetworks names every bad entry (see net::Network::parse for the form).
Result<DaemonConfig> loadConfig(const std::string& path, DaemonConfig base);

}  // namespace lastmile::ctrl
