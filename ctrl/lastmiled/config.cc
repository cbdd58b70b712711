// SPDX-License-Identifier: Apache-2.0
// Configuration file parsing with yaml-cpp; exceptions stay inside this file.
#include "ctrl/lastmiled/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>

namespace lastmile::ctrl {
namespace {

std::string where(const std::string& path, const YAML::Mark& mark) {
    return path + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

Result<log::Level> parseLevel(const std::string& value) {
    static const std::map<std::string, log::Level> levels{
        {"error", log::Level::Error}, {"warning", log::Level::Warning},
        {"notice", log::Level::Notice}, {"info", log::Level::Info}, {"debug", log::Level::Debug}};
    auto it = levels.find(value);
    if (it == levels.end()) {
        return fail(Errc::Invalid, "logLevel \"" + value + "\": use error, warning, notice, info or debug");
    }
    return it->second;
}

bool isIpLiteral(const std::string& s) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Ten years: far beyond any sensible timeout, and far from overflowing milliseconds.
constexpr double kMaxDurationMs = 10.0 * 365 * 24 * 3600 * 1000;
constexpr std::uint64_t kMaxByteSize = 1ull << 40;
// A few buffers: every receive could otherwise wait forever.
constexpr std::uint64_t kMinBufferMemory = 2ull << 20;

}  // namespace

Result<std::chrono::milliseconds> parseDuration(const std::string& text) {
    auto bad = [&] {
        return fail(Errc::Invalid, "duration \"" + text +
                                       "\": use a number and a unit (ms, s, m, h), e.g. 500ms, "
                                       "5s, 2m, 1h30m");
    };
    static const std::map<std::string, double> units{
        {"ms", 1.0}, {"s", 1'000.0}, {"m", 60'000.0}, {"h", 3'600'000.0}};
    if (text.empty()) {
        return bad();
    }
    double totalMs = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t start = i;
        while (i < text.size() &&
               (std::isdigit(static_cast<unsigned char>(text[i])) != 0 || text[i] == '.')) {
            ++i;
        }
        if (i == start) {
            return bad();
        }
        double value = 0;
        auto [end, ec] = std::from_chars(text.data() + start, text.data() + i, value,
                                         std::chars_format::fixed);
        if (ec != std::errc() || end != text.data() + i) {
            return bad();
        }
        std::size_t unitStart = i;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])) != 0) {
            ++i;
        }
        auto unit = units.find(text.substr(unitStart, i - unitStart));
        if (unit == units.end()) {
            return bad();
        }
        totalMs += value * unit->second;
        if (totalMs > kMaxDurationMs) {
            return bad();
        }
    }
    return std::chrono::milliseconds(std::llround(totalMs));
}

Result<std::uint64_t> parseByteSize(const std::string& text) {
    static const std::map<std::string, unsigned> shifts{{"", 0}, {"Ki", 10}, {"Mi", 20}, {"Gi", 30}};
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    auto shift = shifts.find(std::string(end, text.data() + text.size()));
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || ec != std::errc() ||
        shift == shifts.end() || n > (kMaxByteSize >> shift->second)) {
        return fail(Errc::Invalid, "size \"" + text +
                                       "\": use bytes, or a number and Ki, Mi or Gi (e.g. 256Mi), "
                                       "up to 1Ti");
    }
    return n << shift->second;
}

Result<DaemonConfig> loadConfig(const std::string& path, DaemonConfig base) {
    YAML::Node root;
    try {
        root = YAML::LoadFile(path);
    } catch (const YAML::BadFile&) {
        return fail(Errc::NotFound, "reading config " + path);
    } catch (const YAML::Exception& e) {
        return fail(Errc::Invalid, where(path, e.mark) + ": " + e.msg);
    }
    if (root.IsNull()) {
        return base;
    }
    if (!root.IsMap()) {
        return fail(Errc::Invalid, where(path, root.Mark()) + ": the config must be a mapping");
    }
    const std::map<std::string, std::string*> strings{
        {"stateDir", &base.stateDir},
        {"apiSocket", &base.apiSocket},
        {"adminHttp", &base.adminHttp},
        {"manifests", &base.manifests},
        {"gatewayClassName", &base.gatewayClassName},
        {"controllerName", &base.controllerName},
    };
    const std::map<std::string, std::chrono::milliseconds*> durations{
        {"connectTimeout", &base.dataplane.connectTimeout},
        {"handshakeTimeout", &base.dataplane.handshakeTimeout},
        {"idleTimeout", &base.dataplane.idleTimeout},
        {"drainTimeout", &base.dataplane.drainTimeout},
    };
    for (const auto& entry : root) {
        const auto key = entry.first.as<std::string>("");
        const auto& value = entry.second;
        const std::string at = where(path, entry.first.Mark()) + ": " + key;
        if (!value.IsScalar()) {
            return fail(Errc::Invalid, at + ": expected a single value");
        }
        try {
            if (auto it = strings.find(key); it != strings.end()) {
                *it->second = value.as<std::string>();
            } else if (key == "workers") {
                auto n = value.as<std::int64_t>();
                if (n < 0 || n > 4096) {
                    return fail(Errc::Invalid, at + ": must be 0 (one per core) to 4096");
                }
                base.dataplane.workers = static_cast<unsigned>(n);
            } else if (key == "bindAddress") {
                auto address = value.as<std::string>();
                if (!isIpLiteral(address)) {
                    return fail(Errc::Invalid, at + ": \"" + address +
                                                   "\" is not an IPv4 or IPv6 address literal");
                }
                base.dataplane.bindAddress = address;
            } else if (auto d = durations.find(key); d != durations.end()) {
                auto duration = parseDuration(value.as<std::string>());
                if (!duration) {
                    return fail(Errc::Invalid, at + ": " + duration.error().context());
                }
                // Zero would expire every connection at once; only draining may skip waiting.
                if (duration->count() == 0 && key != "drainTimeout") {
                    return fail(Errc::Invalid, at + ": must be longer than 0");
                }
                *d->second = *duration;
            } else if (key == "maxConnections" || key == "maxBackendConnections") {
                auto n = value.as<std::int64_t>();
                if (n <= 0 || n > UINT32_MAX) {
                    return fail(Errc::Invalid, at + ": must be from 1 to 4294967295");
                }
                (key == "maxConnections" ? base.dataplane.maxConnections
                                         : base.dataplane.maxBackendConnections) =
                    static_cast<std::uint32_t>(n);
            } else if (key == "maxBufferMemory") {
                auto bytes = parseByteSize(value.as<std::string>());
                if (!bytes) {
                    return fail(Errc::Invalid, at + ": " + bytes.error().context());
                }
                if (*bytes < kMinBufferMemory) {
                    return fail(Errc::Invalid, at + ": must be at least 2Mi");
                }
                base.dataplane.maxBufferMemory = *bytes;
            } else if (key == "logLevel") {
                auto level = parseLevel(value.as<std::string>());
                if (!level) {
                    return fail(Errc::Invalid, at + ": " + level.error().context());
                }
                base.logLevel = *level;
            } else {
                return fail(Errc::Invalid, at + ": unknown key (known: stateDir, apiSocket, adminHttp, "
                                                "manifests, gatewayClassName, controllerName, "
                                                "logLevel, workers, bindAddress, connectTimeout, "
                                                "handshakeTimeout, idleTimeout, drainTimeout, "
                                                "maxConnections, maxBackendConnections, "
                                                "maxBufferMemory)");
            }
        } catch (const YAML::Exception&) {
            return fail(Errc::Invalid, at + ": wrong type");
        }
    }
    return base;
}

}  // namespace lastmile::ctrl
