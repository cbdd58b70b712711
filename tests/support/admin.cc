// SPDX-License-Identifier: Apache-2.0
// What tests read back from a running lastmiled.
#include "tests/support/admin.h"

#include <regex>
#include <sstream>
#include <stdexcept>

#include "tests/support/client.h"

namespace lastmile::test {

std::string adminAddress(const std::string& stderrText) {
    std::smatch m;
    if (!std::regex_search(stderrText, m, std::regex("admin http://(127\\.0\\.0\\.1:[0-9]+)"))) {
        throw std::runtime_error("no admin address in the ready line: " + stderrText);
    }
    return m[1];
}

std::string metricsText(const std::string& admin) {
    UniqueFd fd = dial(admin);
    sendAll(fd.get(), "GET /metrics HTTP/1.1\r\nHost: lastmiled\r\nConnection: close\r\n\r\n");
    return readToEnd(fd.get()).data;
}

double metricValue(const std::string& metrics, const std::string& series) {
    std::istringstream in(metrics);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(series + " ", 0) == 0) {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return -1;
}

double metricSum(const std::string& metrics, const std::string& family) {
    std::istringstream in(metrics);
    std::string line;
    double sum = 0;
    while (std::getline(in, line)) {
        if (line.rfind(family + " ", 0) == 0 || line.rfind(family + "{", 0) == 0) {
            sum += std::stod(line.substr(line.rfind(' ') + 1));
        }
    }
    return sum;
}

bool conditionTrue(const nlohmann::json& object, const std::string& type) {
    if (!object.is_object() || !object.contains("status")) {
        return false;
    }
    for (const auto& c : object["status"].value("conditions", nlohmann::json::array())) {
        if (c.value("type", "") == type) {
            return c.value("status", "") == "True";
        }
    }
    return false;
}

}  // namespace lastmile::test
