// SPDX-License-Identifier: Apache-2.0
// DataplaneOptions: the daemon-wide knobs of the workers (config file keys in parentheses).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/net/address_filter.h"
#include "drivers/cryptodev/config.h"

namespace lastmile::dataplane {

// What the body of a 502/503/504 on an HTTP listener tells the client.
enum class ErrorDetail {
    Reason,  // the failure's class only ("the backend's certificate was rejected")
    Full,    // the whole reason: addresses, certificate and object names (debugging)
};

// (interception) Connections to a Gateway's virtual addresses (spec.addresses that are not
// this host's) taken over by its listeners; see bpf/README.md.
struct InterceptionOptions {
    // Host mode: cgroup v2 directories whose processes' connects are taken over.
    std::vector<std::string> cgroups;
    // Routed mode: interfaces whose arriving connections are taken over.
    std::vector<std::string> interfaces;
    // The networks a Gateway may take over addresses of. A virtual address captures the
    // connections of every intercepted client, whichever project they belong to, so the
    // operator says which destinations a tenant may claim. Empty: none.
    std::vector<net::Network> addresses;

    bool operator==(const InterceptionOptions&) const = default;
};

struct DataplaneOptions {
    unsigned workers = 0;                   // (workers) 0: one per core
    std::string bindAddress = "0.0.0.0";    // (bindAddress) for Gateways without spec.addresses
    // (allowedBackendNetworks) what backends may be dialled; nullopt: all but loopback.
    std::optional<std::vector<net::Network>> allowedBackendNetworks;
    std::chrono::milliseconds connectTimeout{5'000};     // (connectTimeout) TCP connect to a backend
    std::chrono::milliseconds handshakeTimeout{10'000};  // (handshakeTimeout) TLS to the backend
    std::chrono::milliseconds idleTimeout{600'000};      // (idleTimeout) no byte either way
    std::chrono::milliseconds drainTimeout{30'000};      // (drainTimeout) SIGTERM: open connections
    std::uint32_t maxConnections = 65'536;  // (maxConnections) client connections, whole process
    ErrorDetail errorDetail = ErrorDetail::Reason;  // (errorDetail) reason | full
    // (maxBackendConnections) backend connections of the whole process, warm-pool ones
    // included; 0: as many as maxConnections.
    std::uint32_t maxBackendConnections = 0;
    // (maxBufferMemory) bytes of forwarding buffers of the whole process; receives wait for
    // memory beyond it. 256 MiB holds about a thousand 260 KiB buffers: a thousand
    // connections moving bulk data at once, any number of quiet ones (they hold none).
    std::uint64_t maxBufferMemory = 256ull << 20;
    // (recordEngines) the engines offered each established session, in this order; empty:
    // every engine built in, cheapest first (drivers::builtEngines).
    std::vector<std::string> recordEngines;
    // (cryptodev) the DPDK devices of the cryptodev engine and the EAL arguments they need.
    drivers::cryptodev::CryptodevConfig cryptodev;
    // (interception) nullopt: not configured; every virtual address is then not usable.
    std::optional<InterceptionOptions> interception;

    std::uint32_t backendConnectionLimit() const noexcept {
        return maxBackendConnections != 0 ? maxBackendConnections : maxConnections;
    }

    bool operator==(const DataplaneOptions&) const = default;
};

}  // namespace lastmile::dataplane
