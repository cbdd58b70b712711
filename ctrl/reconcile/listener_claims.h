// SPDX-License-Identifier: Apache-2.0
// Listener claims: which Gateway listener may bind an address when several want it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dataplane/route/plan.h"

namespace lastmile::ctrl {

// One listener's wish to bind (address, port), of any project.
struct ListenerClaim {
    route::ListenerId id;  // project filled in
    std::string address;   // the IP address to bind: the Gateway's, else the daemon's default
    std::uint16_t port = 0;
    std::int64_t created = 0;  // the Gateway's creationTimestamp, seconds since the epoch
};

// Two claims overlap when they share a port and their addresses are equal or either is a
// wildcard (0.0.0.0, ::, ::ffff:0.0.0.0); IPv4-mapped IPv6 addresses are their IPv4 address.
// A wildcard of one family overlaps the other family too: a dual-stack socket on :: takes
// IPv4 connections, and whether a socket is dual-stack is a host setting. Port 0 (the kernel
// picks a free port) and unparseable addresses (the dataplane reports those) overlap nothing.
bool claimsOverlap(const ListenerClaim& a, const ListenerClaim& b);

// The claims that may not bind, with the message their listener's status shows. The oldest
// claim keeps an address (creationTimestamp, then project, namespace, Gateway and listener
// name), and each later one loses when it overlaps a claim that kept its own. The message
// names the winner only when it is of the same project: tenants never see each other.
std::map<route::ListenerId, std::string> arbitrateClaims(std::vector<ListenerClaim> claims);

}  // namespace lastmile::ctrl
