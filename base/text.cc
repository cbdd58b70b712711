// SPDX-License-Identifier: Apache-2.0
// join, RFC 3339 through strftime/strptime/timegm, IP literals through inet_pton/inet_aton.
#include "base/text.h"

#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
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

bool isIpAddress(std::string_view text) {
    const std::string s(text);
    unsigned char buf[sizeof(in6_addr)];
    return s.find('\0') == std::string::npos && (::inet_pton(AF_INET, s.c_str(), buf) == 1 ||
                                                  ::inet_pton(AF_INET6, s.c_str(), buf) == 1);
}

bool isCgroupPath(std::string_view path) {
    if (path.empty() || path[0] != '/' || path.size() > PATH_MAX) {
        return false;
    }
    const bool charsOk = std::all_of(path.begin(), path.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '/' || c == '.' || c == '_' || c == '-' || c == '@' || c == ':' || c == '+';
    });
    return charsOk && path.find("/./") == std::string_view::npos &&
           path.find("/../") == std::string_view::npos && !path.ends_with("/.") &&
           !path.ends_with("/..");
}

bool isInterfaceName(std::string_view name) {
    return !name.empty() && name.size() < IFNAMSIZ && name != "." && name != ".." &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
           });
}

bool isIpLiteral(std::string_view host) {
    in_addr v4{};
    if (isIpAddress(host) || ::inet_aton(std::string(host).c_str(), &v4) != 0) {
        return true;
    }
    // URL parsers drop one trailing dot before looking at the last label.
    if (!host.empty() && host.back() == '.') {
        host.remove_suffix(1);
    }
    const auto dot = host.rfind('.');
    const std::string_view last = host.substr(dot == std::string_view::npos ? 0 : dot + 1);
    const bool hex = last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X');
    const std::string_view digits = hex ? last.substr(2) : last;
    return (hex || !digits.empty()) && std::all_of(digits.begin(), digits.end(), [hex](char c) {
               const auto u = static_cast<unsigned char>(c);
               return hex ? std::isxdigit(u) != 0 : std::isdigit(u) != 0;
           });
}

}  // namespace lastmile
