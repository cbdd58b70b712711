// SPDX-License-Identifier: Apache-2.0
// What tests read back from a running lastmiled: its admin address, metrics and status conditions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lastmile::test {

// The admin listener lastmiled announced in its ready line ("admin http://127.0.0.1:PORT")
// as "127.0.0.1:PORT". Throws when `stderrText` holds no such line.
std::string adminAddress(const std::string& stderrText);

// The Prometheus text of GET /metrics from the admin listener at `admin`.
std::string metricsText(const std::string& admin);

// The value of one series in `metrics`, e.g. `lastmile_failures_total{reason="verify_failed"}`;
// -1 if absent.
double metricValue(const std::string& metrics, const std::string& series);

// The sum of every series of `family` in `metrics` (all its label sets), 0 if absent.
double metricSum(const std::string& metrics, const std::string& family);

// Whether `object` (as `lastmilectl get -o json` prints it) has condition `type` with status
// "True".
bool conditionTrue(const nlohmann::json& object, const std::string& type);

}  // namespace lastmile::test
