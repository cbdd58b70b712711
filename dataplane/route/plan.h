// SPDX-License-Identifier: Apache-2.0
// ListenerPlan: what one Gateway listener must do, as the reconciler resolved it (plain data).
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/tls/handshake_profile.h"
#include "dataplane/tls/profile_spec.h"

namespace lastmile::route {

enum class ListenerProtocol { Tcp, Http };

// One Gateway listener of one project.
struct ListenerId {
    std::string project;
    std::string gatewayNamespace;
    std::string gateway;
    std::string listener;  // the listener's name

    auto operator<=>(const ListenerId&) const = default;
};

// A concrete backend address: an IP literal (v4 or v6, no brackets) and a port.
struct Endpoint {
    std::string address;
    std::uint16_t port = 0;

    auto operator<=>(const Endpoint&) const = default;
};

// One Service port a listener sends traffic to.
struct Backend {
    tls::BackendKey key;
    std::uint32_t weight = 1;          // the Route's backendRef weight; 0 never appears here
    std::vector<Endpoint> endpoints;   // ready endpoints of the Service's EndpointSlices, sorted
    // `type: ExternalName` Services: resolved by DNS off the worker threads; endpoints is empty.
    std::string externalName;
    std::uint16_t externalPort = 0;
    // The compiled profile of a policy governing this backend (possibly fail-closed); null
    // when no policy covers it, and only then is the backend spoken to without TLS.
    std::shared_ptr<const tls::HandshakeProfile> profile;
};

struct ListenerPlan {
    ListenerId id;
    ListenerProtocol protocol = ListenerProtocol::Tcp;
    // Bind address: the Gateway's first IPAddress in spec.addresses that is an address of
    // this host; empty means the daemon's configured default bind address.
    std::string address;
    // The Gateway's other IPAddresses that are not this host's: connections to them on
    // `port` are taken over by this listener through interception (bpf/), in spec order.
    std::vector<std::string> virtualAddresses;
    std::uint16_t port = 0;
    // The backends of every accepted Route attached to the listener, in a stable order.
    // Empty: connections are refused (TCP close, HTTP 503 "no backend").
    std::vector<Backend> backends;
};

// A virtual address a listener took over, and the interception modes that carry it.
struct Interception {
    std::string address;             // as in ListenerPlan::virtualAddresses
    std::vector<std::string> modes;  // "host", "routed"

    bool operator==(const Interception&) const = default;
};

// What the dataplane made of a listener: bound, or why not. Feeds Gateway/listener Programmed.
struct ListenerState {
    bool bound = false;
    std::string message;  // the bind error ("127.0.0.1:443: Address already in use") when not bound
    // Not bound for a reason that can pass by itself: the port is still held (a socket of a
    // crashed predecessor the kernel has not released yet, another program) or the address
    // is not on the host yet. Worth binding again later.
    bool retry = false;
    // Bound: each of the plan's virtual addresses, as interception carries it.
    std::vector<Interception> intercepted;

    bool operator==(const ListenerState&) const = default;
};

}  // namespace lastmile::route
