// SPDX-License-Identifier: Apache-2.0
// Parsing of lastmile.dev/ BackendTLSPolicy options into ProfileSpec fields.
#include "ctrl/reconcile/policy_options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "base/text.h"
#include "dataplane/tls/option_names.h"

namespace lastmile::ctrl {
namespace {

constexpr std::string_view kDomain = "lastmile.dev/";
// Idle connections per backend and worker are memory and backend sockets held for nothing
// while unused; a bound keeps one policy from exhausting either.
constexpr std::uint32_t kMaxWarmPool = 64;

std::string trim(std::string_view s) {
    auto isSpace = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    while (!s.empty() && isSpace(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && isSpace(s.back())) {
        s.remove_suffix(1);
    }
    return std::string(s);
}

// A comma-separated list with spaces trimmed; nullopt when an item is empty ("a,,b", "").
std::optional<std::vector<std::string>> splitList(const std::string& value) {
    std::vector<std::string> items;
    std::size_t start = 0;
    while (true) {
        auto comma = value.find(',', start);
        auto item = trim(std::string_view(value).substr(
            start, comma == std::string::npos ? std::string::npos : comma - start));
        if (item.empty()) {
            return std::nullopt;
        }
        items.push_back(std::move(item));
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return items;
}

std::optional<tls::TlsVersion> parseVersion(const std::string& value) {
    if (value == "1.2") {
        return tls::TlsVersion::Tls12;
    }
    if (value == "1.3") {
        return tls::TlsVersion::Tls13;
    }
    return std::nullopt;
}

// Lowercase DNS subdomain (RFC 1123), the form of a Kubernetes key prefix such as
// "example.com" in "example.com/name".
bool isDnsSubdomain(std::string_view s) {
    if (s.empty() || s.size() > 253) {
        return false;
    }
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    std::size_t start = 0;
    while (true) {
        auto dot = s.find('.', start);
        auto label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos
                                                                   : dot - start);
        if (label.empty() || label.size() > 63 || !alnum(label.front()) || !alnum(label.back()) ||
            !std::all_of(label.begin(), label.end(),
                         [&](char c) { return alnum(c) || c == '-'; })) {
            return false;
        }
        if (dot == std::string_view::npos) {
            return true;
        }
        start = dot + 1;
    }
}

// The field path as admission writes it, so that a message points at what to edit.
std::string fieldPath(const std::string& key) {
    return "spec.options[" + key + "]";
}

std::string quoted(const std::string& value) {
    return "\"" + value + "\"";
}

std::string describe(const std::string& key, const std::string& value, const std::string& why) {
    return fieldPath(key) + ": " + quoted(value) + " " + why;
}

// The allow-list and the spec field of a list option's name.
std::pair<tls::NameKind, std::vector<std::string>*> listOption(const std::string& name,
                                                              tls::ProfileSpec& spec) {
    if (name == "cipher-suites") {
        return {tls::NameKind::CipherSuite, &spec.cipherSuites};
    }
    if (name == "ecdh-curves") {
        return {tls::NameKind::Group, &spec.ecdhCurves};
    }
    if (name == "signature-algorithms") {
        return {tls::NameKind::SignatureAlgorithm, &spec.signatureAlgorithms};
    }
    return {tls::NameKind::AlpnProtocol, &spec.alpnProtocols};
}

}  // namespace

OptionsOutcome applyPolicyOptions(const Json& options, tls::ProfileSpec& spec) {
    OptionsOutcome out;
    if (!options.is_object()) {
        return out;
    }
    // Sorted, so that the same options always give the same messages.
    std::map<std::string, std::string> sorted;
    for (const auto& [key, value] : options.items()) {
        // Admission only lets strings through; anything else is quoted for the message, and
        // `replace` keeps dump() from throwing on bytes that are not UTF-8.
        sorted[key] = value.is_string()
                          ? value.get<std::string>()
                          : value.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    bool minSet = false;
    bool maxSet = false;
    for (const auto& [key, value] : sorted) {
        // A key that is not "<dns-subdomain>/<name>" counts as un-prefixed: ignoring "/x" or
        // "Lastmile.dev/x" as another implementation's would silently drop a setting.
        auto slash = key.find('/');
        if (slash == std::string::npos || slash + 1 == key.size() ||
            !isDnsSubdomain(std::string_view(key).substr(0, slash))) {
            out.invalid.push_back(fieldPath(key) +
                                  ": the key has no valid domain prefix (implementation-specific "
                                  "keys must look like example.com/name)");
            continue;
        }
        if (key.rfind(kDomain, 0) != 0) {
            out.ignored.push_back(key);
            continue;
        }
        const std::string name = key.substr(kDomain.size());
        if (name == "min-tls-version" || name == "max-tls-version") {
            auto version = parseVersion(trim(value));
            if (!version) {
                out.invalid.push_back(describe(key, value, "must be 1.2 or 1.3"));
            } else if (name == "min-tls-version") {
                spec.minVersion = *version;
                minSet = true;
            } else {
                spec.maxVersion = *version;
                maxSet = true;
            }
        } else if (name == "cipher-suites" || name == "ecdh-curves" ||
                   name == "signature-algorithms" || name == "alpn-protocols") {
            auto items = splitList(value);
            if (!items) {
                out.invalid.push_back(
                    describe(key, value, "must be a comma-separated list without empty items"));
                continue;
            }
            const auto& [kind, field] = listOption(name, spec);
            // Each entry alone against what OpenSSL offers: the list parsers behind these
            // options also take keywords and directives that switch security off.
            auto refused = tls::refusedNames(kind, *items);
            if (!refused.empty()) {
                out.invalid.push_back(fieldPath(key) + ": " + join(refused, "; "));
                continue;
            }
            *field = std::move(*items);
        } else if (name == "session-resumption") {
            auto v = trim(value);
            if (v == "true") {
                spec.sessionResumption = true;
            } else if (v == "false") {
                spec.sessionResumption = false;
            } else {
                out.invalid.push_back(describe(key, value, "must be true or false"));
            }
        } else if (name == "offload") {
            if (auto offload = drivers::parseOffload(trim(value))) {
                spec.offload = *offload;
            } else {
                out.invalid.push_back(describe(
                    key, value, "must be one of auto, nic, kernel, cryptodev, userspace"));
            }
        } else if (name == "warm-pool") {
            auto v = trim(value);
            std::uint32_t n = 0;
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n > kMaxWarmPool) {
                out.invalid.push_back(describe(
                    key, value,
                    "must be a decimal integer from 0 (off) to " + std::to_string(kMaxWarmPool)));
            } else {
                spec.warmPool = n;
            }
        } else {
            out.invalid.push_back(fieldPath(key) + ": unknown lastmile.dev option (value " +
                                  quoted(value) + ")");
        }
    }
    // Defaults are 1.2..1.3, so only explicit values can invert the range.
    if (minSet && maxSet && spec.minVersion == tls::TlsVersion::Tls13 &&
        spec.maxVersion == tls::TlsVersion::Tls12) {
        out.invalid.push_back(fieldPath("lastmile.dev/min-tls-version") +
                              ": \"1.3\" is greater than " +
                              fieldPath("lastmile.dev/max-tls-version") + " \"1.2\"");
    }
    return out;
}

}  // namespace lastmile::ctrl
