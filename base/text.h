// SPDX-License-Identifier: Apache-2.0
// Text forms shared by the control plane and the dataplane: lists, RFC 3339 timestamps, IPs.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lastmile {

std::string join(const std::vector<std::string>& parts, std::string_view separator);

// UTC with whole seconds, "2026-11-26T16:10:00Z": the form of Kubernetes' metav1.Time.
std::string rfc3339(std::chrono::system_clock::time_point t);
std::string rfc3339(const std::tm& utc);

// Seconds since the epoch; fractions are dropped and offsets applied. nullopt when malformed.
std::optional<std::int64_t> parseRfc3339(std::string_view text);

// True when any parser may read `host` as an IP address, so it must never be taken for a DNS
// name: what inet_pton takes, what inet_aton takes on top ("0x7f000001", "0177.0.0.1",
// "127.1", "2130706433"), and a name whose last label is a number, decimal or 0x-hex, which
// URL parsers read as IPv4 ("1.2.3.4.5", "a.0x1"); no DNS name ends in a numeric label.
bool isIpLiteral(std::string_view host);

// True only for the forms addresses are bound and dialled in: an IPv4 dotted quad or an
// IPv6 address, as inet_pton reads them. "127.1" is an IP literal but not an address here.
bool isIpAddress(std::string_view text);

// An absolute cgroup directory path as interception takes it: no "." or ".." components, and
// only the characters cgroup (and systemd slice) names use. Checked before a path reaches open().
bool isCgroupPath(std::string_view path);

// A network interface name the kernel could hold: 1 to 15 of [A-Za-z0-9._-], not "." or "..".
bool isInterfaceName(std::string_view name);

}  // namespace lastmile
