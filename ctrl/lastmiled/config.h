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

// `store:`: where objects live. SQLite in stateDir (one appliance), or an etcd cluster a fleet
// of appliances shares.
struct StoreConfig {
    enum class Type { Sqlite, Etcd };
    Type type = Type::Sqlite;
    std::vector<std::string> endpoints;  // etcd: http(s)://host:port, tried in order
    std::string prefix = "/lastmile/";   // etcd: every key starts with it
    std::string caFile;                  // etcd over https: trust anchors (default: system)
    std::string certFile;                // etcd client certificate and its key
    std::string keyFile;
    std::chrono::seconds leaseTtl{10};   // how long a dead node stays listed

    bool operator==(const StoreConfig&) const = default;
};

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
    StoreConfig store;
    // This node's name in a fleet: unique, a DNS subdomain. Empty: the host name.
    std::string nodeName;
};

// Whether `name` may name a fleet node (a lowercase DNS subdomain of at most 253 characters).
bool isNodeName(const std::string& name);

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
