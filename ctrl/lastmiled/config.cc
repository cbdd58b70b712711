// SPDX-License-Identifier: Apache-2.0
// Configuration file parsing with yaml-cpp; exceptions stay inside this file.
#include "ctrl/lastmiled/config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <regex>

#include "base/text.h"
#include "drivers/engines.h"

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

// A YAML list of CIDR networks; every bad entry is named, not only the first.
Result<std::vector<net::Network>> parseNetworks(const YAML::Node& value, const std::string& at) {
    if (!value.IsSequence()) {
        return fail(Errc::Invalid,
                    at + ": expected a list of networks, e.g. [10.0.0.0/8, fd00::/8]");
    }
    std::vector<net::Network> out;
    std::string problems;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const std::string item = at + "[" + std::to_string(i) + "]: ";
        if (!value[i].IsScalar()) {
            problems += (problems.empty() ? "" : "; ") + item + "expected a network";
            continue;
        }
        auto network = net::Network::parse(value[i].Scalar());
        if (!network) {
            problems += (problems.empty() ? "" : "; ") + item + network.error().context();
            continue;
        }
        out.push_back(*network);
    }
    if (!problems.empty()) {
        return fail(Errc::Invalid, problems);
    }
    return out;
}

// `recordEngines`: a list of names drivers::checkEngineOrder accepts. The order is the user's.
Result<std::vector<std::string>> parseRecordEngines(const YAML::Node& value, const std::string& at) {
    if (!value.IsSequence() || value.size() == 0) {
        return fail(Errc::Invalid, at + ": expected a list of record engines, e.g. [kernel, openssl]");
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (!value[i].IsScalar()) {
            return fail(Errc::Invalid, at + "[" + std::to_string(i) + "]: expected an engine name");
        }
        out.push_back(value[i].Scalar());
    }
    if (auto s = drivers::checkEngineOrder(out); !s) {
        return fail(Errc::Invalid, at + ": " + s.error().context());
    }
    return out;
}

// `cryptodev: {eal: [...], devices: [...]}`; every EAL argument on the allow-list.
Result<drivers::cryptodev::CryptodevConfig> parseCryptodev(const YAML::Node& value,
                                                           const std::string& at) {
    if (!value.IsMap()) {
        return fail(Errc::Invalid, at + ": expected {eal: [...], devices: [...]}");
    }
    drivers::cryptodev::CryptodevConfig out;
    for (const auto& entry : value) {
        const auto key = entry.first.as<std::string>("");
        const std::string here = at + "." + key;
        auto* list = key == "eal" ? &out.eal : key == "devices" ? &out.devices : nullptr;
        if (list == nullptr) {
            return fail(Errc::Invalid, here + ": unknown key (known: eal, devices)");
        }
        if (!entry.second.IsSequence()) {
            return fail(Errc::Invalid, here + ": expected a list of strings");
        }
        for (std::size_t i = 0; i < entry.second.size(); ++i) {
            if (!entry.second[i].IsScalar()) {
                return fail(Errc::Invalid, here + "[" + std::to_string(i) + "]: expected a string");
            }
            list->push_back(entry.second[i].Scalar());
        }
    }
    if (auto s = drivers::cryptodev::checkEalArguments(out.eal); !s) {
        return fail(Errc::Invalid, at + ".eal: " + s.error().context());
    }
    static const std::regex kDeviceName("[A-Za-z0-9_:.]{1,63}");
    for (const auto& d : out.devices) {
        if (!std::regex_match(d, kDeviceName)) {
            return fail(Errc::Invalid, at + ".devices: \"" + d + "\" is not a DPDK device name");
        }
    }
    return out;
}

// `interception: {cgroups: [...], interfaces: [...], addresses: [...]}`; every entry checked
// before it can reach open() or the kernel, and named with its file:line when it is refused.
Result<dataplane::InterceptionOptions> parseInterception(const std::string& path,
                                                         const YAML::Node& value,
                                                         const std::string& at) {
    if (!value.IsMap()) {
        return fail(Errc::Invalid,
                    at + ": expected {cgroups: [...], interfaces: [...], addresses: [...]}");
    }
    dataplane::InterceptionOptions out;
    for (const auto& entry : value) {
        const auto key = entry.first.as<std::string>("");
        const std::string here = where(path, entry.first.Mark()) + ": interception." + key;
        if (key == "addresses") {
            auto networks = parseNetworks(entry.second, here);
            LM_TRY(networks);
            out.addresses = std::move(*networks);
            continue;
        }
        const bool cgroups = key == "cgroups";
        if (!cgroups && key != "interfaces") {
            return fail(Errc::Invalid,
                        here + ": unknown key (known: cgroups, interfaces, addresses)");
        }
        if (!entry.second.IsSequence()) {
            return fail(Errc::Invalid, here + ": expected a list");
        }
        auto& list = cgroups ? out.cgroups : out.interfaces;
        for (const auto& item : entry.second) {
            const std::string itemAt = where(path, item.Mark()) + ": interception." + key;
            if (!item.IsScalar()) {
                return fail(Errc::Invalid, itemAt + ": expected a string");
            }
            const std::string& text = item.Scalar();
            if (cgroups && !isCgroupPath(text)) {
                return fail(Errc::Invalid,
                            itemAt + ": \"" + text +
                                "\" is not an absolute cgroup v2 directory path (e.g. "
                                "/sys/fs/cgroup/apps.slice)");
            }
            if (!cgroups && !isInterfaceName(text)) {
                return fail(Errc::Invalid, itemAt + ": \"" + text +
                                               "\" is not a network interface name (e.g. eth1)");
            }
            list.push_back(text);
        }
    }
    return out;
}

// `store: {type: sqlite}` or `store: {type: etcd, endpoints: [...], prefix, caFile, certFile,
// keyFile, leaseTtl}`. Endpoints, the prefix and the paths are checked against exact forms
// before they can reach libcurl or etcd.
Result<StoreConfig> parseStore(const std::string& path, const YAML::Node& value,
                               const std::string& at) {
    if (!value.IsMap()) {
        return fail(Errc::Invalid, at + ": expected {type: sqlite} or {type: etcd, endpoints: [...]}");
    }
    static const std::regex kEndpoint(
        "(http|https)://([0-9.]+|\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?)"
        ":([0-9]{1,5})");
    static const std::regex kPrefix("/([A-Za-z0-9._-]+/)*");
    static const std::regex kFile("/[^\\x00-\\x1f]*");
    StoreConfig out;
    bool typed = false;
    for (const auto& entry : value) {
        const auto key = entry.first.as<std::string>("");
        const std::string here = where(path, entry.first.Mark()) + ": store." + key;
        const YAML::Node& v = entry.second;
        if (key == "endpoints") {
            if (!v.IsSequence() || v.size() == 0) {
                return fail(Errc::Invalid, here + ": expected a list of http(s)://host:port");
            }
            for (const auto& item : v) {
                std::smatch m;
                const std::string text = item.IsScalar() ? item.Scalar() : std::string();
                if (!std::regex_match(text, m, kEndpoint) || std::stoi(m[4].str()) == 0 ||
                    std::stoi(m[4].str()) > 65535) {
                    return fail(Errc::Invalid, where(path, item.Mark()) + ": store.endpoints: \"" +
                                                   text + "\" is not http(s)://host:port");
                }
                out.endpoints.push_back(text);
            }
            continue;
        }
        if (!v.IsScalar()) {
            return fail(Errc::Invalid, here + ": expected a single value");
        }
        const std::string text = v.Scalar();
        if (key == "type") {
            if (text != "sqlite" && text != "etcd") {
                return fail(Errc::Invalid, here + ": must be sqlite or etcd, not \"" + text + "\"");
            }
            out.type = text == "etcd" ? StoreConfig::Type::Etcd : StoreConfig::Type::Sqlite;
            typed = true;
        } else if (key == "prefix") {
            if (!std::regex_match(text, kPrefix) || text.find("/./") != std::string::npos ||
                text.find("/../") != std::string::npos) {
                return fail(Errc::Invalid, here + ": \"" + text +
                                               "\" must be like /lastmile/ (segments of letters, "
                                               "digits, '.', '_', '-', each ending in /)");
            }
            out.prefix = text;
        } else if (key == "caFile" || key == "certFile" || key == "keyFile") {
            if (!std::regex_match(text, kFile)) {
                return fail(Errc::Invalid, here + ": must be an absolute path");
            }
            (key == "caFile" ? out.caFile : key == "certFile" ? out.certFile : out.keyFile) = text;
        } else if (key == "leaseTtl") {
            auto ttl = parseDuration(text);
            if (!ttl || *ttl < std::chrono::seconds(2) || *ttl > std::chrono::minutes(5) ||
                ttl->count() % 1000 != 0) {
                return fail(Errc::Invalid, here + ": must be whole seconds from 2s to 5m");
            }
            out.leaseTtl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
        } else {
            return fail(Errc::Invalid, here + ": unknown key (known: type, endpoints, prefix, "
                                              "caFile, certFile, keyFile, leaseTtl)");
        }
    }
    if (!typed) {
        return fail(Errc::Invalid, at + ": type is required (sqlite or etcd)");
    }
    if (out.type == StoreConfig::Type::Sqlite) {
        if (!out.endpoints.empty() || !out.caFile.empty() || !out.certFile.empty() ||
            !out.keyFile.empty()) {
            return fail(Errc::Invalid, at + ": endpoints and TLS files are for type etcd");
        }
        return out;
    }
    if (out.endpoints.empty()) {
        return fail(Errc::Invalid, at + ": type etcd needs endpoints");
    }
    if (out.certFile.empty() != out.keyFile.empty()) {
        return fail(Errc::Invalid, at + ": certFile and keyFile go together");
    }
    const bool tls = !out.caFile.empty() || !out.certFile.empty();
    for (const auto& e : out.endpoints) {
        if (tls && e.rfind("https://", 0) != 0) {
            return fail(Errc::Invalid, at + ": " + e +
                                           " is plain http, but TLS files are set: use https://");
        }
    }
    return out;
}

// Ten years: far beyond any sensible timeout, and far from overflowing milliseconds.
constexpr double kMaxDurationMs = 10.0 * 365 * 24 * 3600 * 1000;
constexpr std::uint64_t kMaxByteSize = 1ull << 40;
// A few buffers: every receive could otherwise wait forever.
constexpr std::uint64_t kMinBufferMemory = 2ull << 20;

bool isProjectName(const std::string& s) {
    static const std::regex kDnsLabel("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");
    return s.size() <= 63 && std::regex_match(s, kDnsLabel);
}

// apiAccess: a sequence of {user: NAME | group: NAME, projects: [PROJECT | "*", ...]}. Names
// are resolved later (ApiAccess::resolve), when the daemon starts or reloads.
Result<std::vector<ApiGrant>> parseApiAccess(const std::string& path, const YAML::Node& node) {
    std::vector<ApiGrant> grants;
    if (node.IsNull()) {
        return grants;
    }
    const std::string usage = "apiAccess: expected a list of {user: NAME | group: NAME, "
                              "projects: [PROJECT | \"*\", ...]}";
    if (!node.IsSequence()) {
        return fail(Errc::Invalid, where(path, node.Mark()) + ": " + usage);
    }
    for (const auto& entry : node) {
        const std::string at = where(path, entry.Mark()) + ": apiAccess";
        if (!entry.IsMap()) {
            return fail(Errc::Invalid, where(path, entry.Mark()) + ": " + usage);
        }
        ApiGrant grant;
        grant.origin = where(path, entry.Mark());
        bool haveProjects = false;
        for (const auto& field : entry) {
            const auto key = field.first.as<std::string>("");
            const auto& value = field.second;
            if ((key == "user" || key == "group") && value.IsScalar() &&
                !value.Scalar().empty()) {
                (key == "user" ? grant.user : grant.group) = value.Scalar();
            } else if (key == "projects" && value.IsSequence() && value.size() > 0) {
                for (const auto& project : value) {
                    if (!project.IsScalar() ||
                        (project.Scalar() != "*" && !isProjectName(project.Scalar()))) {
                        return fail(Errc::Invalid, where(path, project.Mark()) +
                                                       ": apiAccess: a project is a DNS label "
                                                       "or \"*\" (every project)");
                    }
                    grant.projects.push_back(project.Scalar());
                }
                haveProjects = true;
            } else {
                return fail(Errc::Invalid, at + ": " + key + ": " + usage);
            }
        }
        if (grant.user.empty() == grant.group.empty() || !haveProjects) {
            return fail(Errc::Invalid,
                        at + ": each entry needs exactly one of user and group, and projects");
        }
        grants.push_back(std::move(grant));
    }
    return grants;
}

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
        if (key == "allowedBackendNetworks") {
            auto networks = parseNetworks(value, at);
            if (!networks) {
                return fail(std::move(networks).error());
            }
            base.dataplane.allowedBackendNetworks = std::move(*networks);
            continue;
        }
        if (key == "recordEngines") {
            auto engines = parseRecordEngines(value, at);
            LM_TRY(engines);
            base.dataplane.recordEngines = std::move(*engines);
            continue;
        }
        if (key == "cryptodev") {
            auto cryptodev = parseCryptodev(value, at);
            LM_TRY(cryptodev);
            base.dataplane.cryptodev = std::move(*cryptodev);
            continue;
        }
        if (key == "interception") {
            auto interception = parseInterception(path, value, at);
            LM_TRY(interception);
            base.dataplane.interception = std::move(*interception);
            continue;
        }
        if (key == "store") {
            auto store = parseStore(path, value, at);
            LM_TRY(store);
            base.store = std::move(*store);
            continue;
        }
        if (key == "apiAccess") {
            auto grants = parseApiAccess(path, value);
            LM_TRY(grants);
            base.apiAccess = std::move(*grants);
            continue;
        }
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
            } else if (key == "nodeName") {
                auto name = value.as<std::string>();
                if (!isNodeName(name)) {
                    return fail(Errc::Invalid, at + ": \"" + name +
                                                   "\" is not a lowercase DNS name (e.g. lastmile-1)");
                }
                base.nodeName = name;
            } else if (key == "bindAddress") {
                auto address = value.as<std::string>();
                if (!isIpAddress(address)) {
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
            } else if (key == "errorDetail") {
                const auto detail = value.as<std::string>();
                if (detail != "reason" && detail != "full") {
                    return fail(Errc::Invalid, at + ": must be reason or full, not \"" + detail + "\"");
                }
                base.dataplane.errorDetail = detail == "full" ? dataplane::ErrorDetail::Full
                                                              : dataplane::ErrorDetail::Reason;
            } else {
                return fail(Errc::Invalid, at + ": unknown key (known: stateDir, apiSocket, adminHttp, "
                                                "manifests, gatewayClassName, controllerName, "
                                                "logLevel, workers, bindAddress, "
                                                "allowedBackendNetworks, connectTimeout, "
                                                "handshakeTimeout, idleTimeout, drainTimeout, "
                                                "maxConnections, maxBackendConnections, "
                                                "maxBufferMemory, errorDetail, recordEngines, "
                                                "cryptodev, interception, apiAccess, store, "
                                                "nodeName)");
            }
        } catch (const YAML::Exception&) {
            return fail(Errc::Invalid, at + ": wrong type");
        }
    }
    return base;
}

bool isNodeName(const std::string& name) {
    static const std::regex kSubdomain(
        "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
    return !name.empty() && name.size() <= 253 && std::regex_match(name, kSubdomain);
}

}  // namespace lastmile::ctrl
