// SPDX-License-Identifier: Apache-2.0
// Text forms shared by the control plane and the dataplane: lists and RFC 3339 timestamps.
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

}  // namespace lastmile
