// SPDX-License-Identifier: Apache-2.0
// join and RFC 3339 through strftime/strptime/timegm.
#include "dataplane/base/text.h"

#include <cctype>

namespace lastmile {

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& part : parts) {
        if (!out.empty()) {
            out += separator;
        }
        out += part;
    }
    return out;
}

std::string rfc3339(const std::tm& utc) {
    char buf[32];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return std::string(buf, n);
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(
        std::chrono::floor<std::chrono::seconds>(t));
    std::tm tm{};
    gmtime_r(&secs, &tm);
    return rfc3339(tm);
}

std::optional<std::int64_t> parseRfc3339(std::string_view text) {
    const std::string s(text);
    std::tm tm{};
    const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == nullptr) {
        return std::nullopt;
    }
    if (*rest == '.') {
        do {
            ++rest;
        } while (std::isdigit(static_cast<unsigned char>(*rest)) != 0);
    }
    std::int64_t offset = 0;
    if (*rest == 'Z' || *rest == 'z') {
        ++rest;
    } else if (*rest == '+' || *rest == '-') {
        std::tm zone{};
        const char* end = strptime(rest + 1, "%H:%M", &zone);
        if (end == nullptr) {
            return std::nullopt;
        }
        offset = (zone.tm_hour * 3600 + zone.tm_min * 60) * (*rest == '+' ? 1 : -1);
        rest = end;
    } else {
        return std::nullopt;
    }
    if (*rest != '\0') {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(timegm(&tm)) - offset;
}

}  // namespace lastmile
