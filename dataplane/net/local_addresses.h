// SPDX-License-Identifier: Apache-2.0
// Whether an IP address belongs to this host, from its interfaces (getifaddrs).
#pragma once

#include <string_view>

namespace lastmile::net {

// True when `ip` (an IPv4 or IPv6 literal) can be bound here now: an address of one of this
// host's interfaces, an address within a loopback interface's network (all of 127.0.0.0/8),
// or the unspecified address. IPv4-mapped IPv6 literals are their IPv4 address. False for
// anything else, a malformed literal included, and when the interfaces cannot be read.
bool isLocalAddress(std::string_view ip);

}  // namespace lastmile::net
