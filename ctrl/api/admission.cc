// SPDX-License-Identifier: Apache-2.0
// Admission: a generic schema walker plus each kind's cross-field rules, collecting every error.
#include "ctrl/api/admission.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>

#include "ctrl/api/base64.h"
#include "ctrl/api/kinds.h"
#include "base/text.h"
#include "dataplane/net/address_filter.h"

namespace lastmile::ctrl {

namespace {

using schema::Node;
using schema::Type;

// Reasons are the Kubernetes field error types (k8s.io/apimachinery/pkg/util/validation/field).
constexpr const char* kRequired = "FieldValueRequired";
constexpr const char* kInvalid = "FieldValueInvalid";
constexpr const char* kNotSupported = "FieldValueNotSupported";
constexpr const char* kTooLong = "FieldValueTooLong";
constexpr const char* kTooMany = "FieldValueTooMany";
constexpr const char* kDuplicate = "FieldValueDuplicate";
constexpr const char* kForbidden = "FieldValueForbidden";
constexpr const char* kTypeInvalid = "FieldValueTypeInvalid";
constexpr const char* kUnknown = "FieldUnknown";

// std::regex recurses per character; values longer than this never reach it.
constexpr std::size_t kMaxRegexInput = 1024;
constexpr std::size_t kMaxAnnotationsBytes = 256 * 1024;
constexpr std::size_t kMaxErrors = 1000;
// core.MaxSecretSize: the API server's bound on the data of a ConfigMap or a Secret.
constexpr std::size_t kMaxDataBytes = 1024 * 1024;

std::string child(const std::string& path, const std::string& name) {
    return path.empty() ? name : path + "." + name;
}
std::string index(const std::string& path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
}
// Map entries are always written in brackets, so keys with dots stay readable: data[ca.crt].
std::string entry(const std::string& path, const std::string& key) {
    return path + "[" + key + "]";
}

// The value as error messages show it: strings quoted, containers by their kind.
std::string show(const Json& v) {
    if (v.is_object()) {
        return "\"object\"";
    }
    if (v.is_array()) {
        return "\"array\"";
    }
    std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (s.size() > 80) {
        s = s.substr(0, 77) + "...";
    }
    return s;
}

std::string quoteList(const std::vector<std::string>& values) {
    std::string out;
    for (const auto& v : values) {
        out += (out.empty() ? "" : ", ") + ("\"" + v + "\"");
    }
    return out;
}

const std::regex& compiled(const std::string& pattern) {
    static std::mutex mu;
    static std::unordered_map<std::string, std::regex> cache;
    std::lock_guard lock(mu);
    auto it = cache.find(pattern);
    if (it == cache.end()) {
        it = cache.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
    }
    return it->second;
}

bool matches(const std::string& value, const std::string& pattern) {
    return value.size() <= kMaxRegexInput && std::regex_match(value, compiled(pattern));
}

// Null means "not set", as with kubectl apply.
const Json* get(const Json& object, const char* key) {
    if (!object.is_object()) {
        return nullptr;
    }
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return nullptr;
    }
    return &*it;
}

std::string getString(const Json& object, const char* key, std::string fallback = "") {
    const Json* v = get(object, key);
    return v && v->is_string() ? v->get<std::string>() : fallback;
}

bool isAlnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool isDnsLabel(std::string_view s) {
    if (s.empty() || s.size() > 63) {
        return false;
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (c == '-' && i != 0 && i + 1 != s.size());
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool isDnsSubdomain(std::string_view s) {
    if (s.empty() || s.size() > 253) {
        return false;
    }
    std::size_t start = 0;
    while (true) {
        auto dot = s.find('.', start);
        if (!isDnsLabel(s.substr(start, dot == std::string_view::npos ? s.npos : dot - start))) {
            return false;
        }
        if (dot == std::string_view::npos) {
            return true;
        }
        start = dot + 1;
    }
}

// A DNS subdomain of at least two labels, optionally with one trailing dot (the API server's
// IsFullyQualifiedDomainName).
bool isFullyQualified(std::string_view s) {
    if (!s.empty() && s.back() == '.') {
        s.remove_suffix(1);
    }
    return s.find('.') != std::string_view::npos && isDnsSubdomain(s);
}

// The name part of a label key, and a non-empty label value: 1..63 characters,
// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9].
bool isLabelName(std::string_view s) {
    if (s.empty() || s.size() > 63 || !isAlnum(s.front()) || !isAlnum(s.back())) {
        return false;
    }
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return isAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

// Kubernetes qualified name (label and annotation keys): an optional DNS-subdomain prefix and
// '/', then a name. Returns the problem, or "" when valid.
std::string qualifiedNameProblem(const std::string& key) {
    auto slash = key.find('/');
    std::string_view name = key;
    if (slash != std::string::npos) {
        std::string_view prefix = std::string_view(key).substr(0, slash);
        name = std::string_view(key).substr(slash + 1);
        if (prefix.empty()) {
            return "prefix part must be non-empty";
        }
        if (!isDnsSubdomain(prefix)) {
            return "prefix part must be a lowercase RFC 1123 subdomain of at most 253 "
                   "characters";
        }
    }
    if (name.empty()) {
        return "name part must be non-empty";
    }
    if (!isLabelName(name)) {
        return "name part must consist of at most 63 alphanumeric characters, '-', '_' or '.', "
               "and must start and end with an alphanumeric character";
    }
    return "";
}

// ConfigMap and Secret keys.
bool isConfigKey(const std::string& key) {
    if (key.empty() || key.size() > 253 || key == "." || key == ".." || key.rfind("..", 0) == 0) {
        return false;
    }
    return std::all_of(key.begin(), key.end(),
                       [](char c) { return isAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool isIp(const std::string& s, int family) {
    unsigned char buf[16];
    // inet_pton stops at a NUL: "10.0.0.1\0junk" is not an address.
    return s.find('\0') == std::string::npos && inet_pton(family, s.c_str(), buf) == 1;
}

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is an IPv4 address to the API server, so an
// IPv6 EndpointSlice may not carry one.
bool isPlainIpv6(const std::string& s) {
    in6_addr addr{};
    return isIp(s, AF_INET6) && inet_pton(AF_INET6, s.c_str(), &addr) == 1 &&
           !IN6_IS_ADDR_V4MAPPED(&addr);
}

std::optional<std::string_view> specialUseOf(const std::string& ip) {
    auto address = net::IpAddress::parse(ip);
    return address ? net::specialUse(*address) : std::nullopt;
}

class Checker {
public:
    explicit Checker(Diagnostics& errors) : errors_(errors) {}

    void add(std::string path, const char* reason, std::string message) {
        // Aliases can make a small manifest hold a million wrong values; a bounded report
        // keeps one bad apply from costing hundreds of megabytes.
        if (errors_.size() > kMaxErrors) {
            return;
        }
        if (errors_.size() == kMaxErrors) {
            errors_.push_back(Diagnostic{"", kInvalid,
                                         "too many errors: only the first " +
                                             std::to_string(kMaxErrors) + " are reported"});
            return;
        }
        errors_.push_back(Diagnostic{std::move(path), reason, std::move(message)});
    }
    void required(const std::string& path, const std::string& detail = "") {
        add(path, kRequired, detail.empty() ? "Required value" : "Required value: " + detail);
    }
    void invalid(const std::string& path, const Json& value, const std::string& detail) {
        add(path, kInvalid, "Invalid value: " + show(value) + ": " + detail);
    }
    void typeInvalid(const std::string& path, const Json& value, const std::string& detail) {
        add(path, kTypeInvalid, "Invalid value: " + show(value) + ": " + detail);
    }
    void duplicate(const std::string& path, const Json& value) {
        add(path, kDuplicate, "Duplicate value: " + show(value));
    }
    void forbidden(const std::string& path, const std::string& detail) {
        add(path, kForbidden, "Forbidden: " + detail);
    }

    // Types, required and unknown fields, lengths, patterns, enums and bounds of the tree.
    void walk(const Node& node, const Json& value, const std::string& path) {
        switch (node.type) {
        case Type::Object:
            walkObject(node, value, path);
            return;
        case Type::Map:
            walkMap(node, value, path);
            return;
        case Type::Array:
            walkArray(node, value, path);
            return;
        case Type::String:
            if (!value.is_string()) {
                typeInvalid(path, value, "must be a string");
                return;
            }
            checkString(node, value.get_ref<const std::string&>(), path);
            return;
        case Type::Integer:
            walkInteger(node, value, path);
            return;
        case Type::Boolean:
            if (!value.is_boolean()) {
                typeInvalid(path, value, "must be a boolean");
            }
            return;
        }
    }

private:
    void walkObject(const Node& node, const Json& value, const std::string& path) {
        if (!value.is_object()) {
            typeInvalid(path, value, "must be an object");
            return;
        }
        // An Object without declared fields keeps any content (like
        // x-kubernetes-preserve-unknown-fields).
        if (node.fields.empty()) {
            return;
        }
        for (const auto& f : node.fields) {
            // The top-level status is the controller's: any content is accepted, then dropped.
            if (path.empty() && f.name == "status") {
                continue;
            }
            auto it = value.find(f.name);
            bool absent = it == value.end() || it->is_null();
            if (absent) {
                if (f.required) {
                    required(child(path, f.name));
                }
                continue;
            }
            // An empty required value is reported as missing, not as too short.
            if (f.required && f.node &&
                ((it->is_string() && it->get_ref<const std::string&>().empty() &&
                  f.node->minLength.value_or(0) > 0) ||
                 (it->is_array() && it->empty() && f.node->minItems.value_or(0) > 0))) {
                required(child(path, f.name));
                continue;
            }
            walk(*f.node, *it, child(path, f.name));
        }
        for (const auto& [key, item] : value.items()) {
            if (!node.field(key)) {
                add(child(path, key), kUnknown, "unknown field \"" + key + "\"");
            }
        }
    }

    void walkMap(const Node& node, const Json& value, const std::string& path) {
        if (!value.is_object()) {
            typeInvalid(path, value, "must be an object");
            return;
        }
        if (node.maxItems && value.size() > *node.maxItems) {
            add(path, kTooMany,
                "Too many: " + std::to_string(value.size()) + ": must have at most " +
                    std::to_string(*node.maxItems) + " entries");
        }
        if (!node.items) {
            return;
        }
        for (const auto& [key, item] : value.items()) {
            if (item.is_null() && node.items->type == Type::String) {
                continue;  // kubectl apply drops null map values
            }
            walk(*node.items, item, entry(path, key));
        }
    }

    void walkArray(const Node& node, const Json& value, const std::string& path) {
        if (!value.is_array()) {
            typeInvalid(path, value, "must be an array");
            return;
        }
        if (node.minItems && value.size() < *node.minItems) {
            invalid(path, Json(value.size()),
                    "must have at least " + std::to_string(*node.minItems) + " items");
        }
        if (node.maxItems && value.size() > *node.maxItems) {
            add(path, kTooMany,
                "Too many: " + std::to_string(value.size()) + ": must have at most " +
                    std::to_string(*node.maxItems) + " items");
        }
        if (!node.items) {
            return;
        }
        for (std::size_t i = 0; i < value.size(); ++i) {
            if (value[i].is_null()) {
                invalid(index(path, i), value[i], "must not be null");
                continue;
            }
            walk(*node.items, value[i], index(path, i));
        }
    }

    void walkInteger(const Node& node, const Json& value, const std::string& path) {
        // An Integer node with a pattern is an IntOrString: a string must match the pattern.
        if (node.pattern && value.is_string()) {
            checkString(node, value.get_ref<const std::string&>(), path);
            return;
        }
        if (!value.is_number_integer()) {
            typeInvalid(path, value,
                        node.pattern ? "must be an integer or a string" : "must be an integer");
            return;
        }
        bool isUnsigned = value.is_number_unsigned();
        std::int64_t v = isUnsigned ? 0 : value.get<std::int64_t>();
        bool tooLow = !isUnsigned && node.minimum && v < *node.minimum;
        bool tooHigh = node.maximum && (isUnsigned ? value.get<std::uint64_t>() >
                                                         static_cast<std::uint64_t>(*node.maximum)
                                                   : v > *node.maximum);
        if (tooLow || tooHigh) {
            if (node.minimum && node.maximum) {
                invalid(path, value,
                        "must be between " + std::to_string(*node.minimum) + " and " +
                            std::to_string(*node.maximum) + ", inclusive");
            } else if (node.minimum) {
                invalid(path, value,
                        "must be greater than or equal to " + std::to_string(*node.minimum));
            } else {
                invalid(path, value,
                        "must be less than or equal to " + std::to_string(*node.maximum));
            }
        }
    }

    void checkString(const Node& node, const std::string& s, const std::string& path) {
        Json value(s);
        if (node.minLength && s.size() < *node.minLength) {
            invalid(path, value,
                    "must be at least " + std::to_string(*node.minLength) + " characters long");
            return;
        }
        if (node.maxLength && s.size() > *node.maxLength) {
            add(path, kTooLong,
                "Too long: may not be more than " + std::to_string(*node.maxLength) +
                    " bytes");
            return;
        }
        if (!node.enumValues.empty()) {
            if (std::find(node.enumValues.begin(), node.enumValues.end(), s) ==
                node.enumValues.end()) {
                add(path, kNotSupported,
                    "Unsupported value: " + show(value) +
                        ": supported values: " + quoteList(node.enumValues));
            }
            return;
        }
        if (node.pattern && !matches(s, *node.pattern)) {
            invalid(path, value,
                    (node.patternHelp.empty() ? std::string("must match") : node.patternHelp) +
                        " (regex used for validation is '" + *node.pattern + "')");
        }
    }

    Diagnostics& errors_;
};

// --- shared cross-field rules -----------------------------------------------------------

void checkMetadata(Checker& c, const Json& object) {
    const Json* meta = get(object, "metadata");
    if (!meta) {
        c.required("metadata.name");
        return;
    }
    if (const Json* labels = get(*meta, "labels"); labels && labels->is_object()) {
        for (const auto& [key, value] : labels->items()) {
            std::string path = entry("metadata.labels", key);
            if (auto problem = qualifiedNameProblem(key); !problem.empty()) {
                c.invalid(path, Json(key), problem);
            }
            if (value.is_string()) {
                const auto& v = value.get_ref<const std::string&>();
                if (!v.empty() && !isLabelName(v)) {
                    c.invalid(path, value,
                              "a valid label value must be empty or consist of at most 63 "
                              "alphanumeric characters, '-', '_' or '.', and must start and "
                              "end with an alphanumeric character");
                }
            }
        }
    }
    if (const Json* annotations = get(*meta, "annotations");
        annotations && annotations->is_object()) {
        std::size_t total = 0;
        for (const auto& [key, value] : annotations->items()) {
            if (auto problem = qualifiedNameProblem(key); !problem.empty()) {
                c.invalid(entry("metadata.annotations", key), Json(key), problem);
            }
            total += key.size() + (value.is_string() ? value.get_ref<const std::string&>().size() : 0);
        }
        if (total > kMaxAnnotationsBytes) {
            c.add("metadata.annotations", kTooLong,
                  "Too long: must have at most " + std::to_string(kMaxAnnotationsBytes) + " bytes");
        }
    }
}

void checkConfigKeys(Checker& c, const Json& object, const char* field) {
    const Json* map = get(object, field);
    if (!map || !map->is_object()) {
        return;
    }
    for (const auto& [key, value] : map->items()) {
        if (!isConfigKey(key)) {
            c.invalid(entry(field, key), Json(key),
                      "a valid config key must consist of alphanumeric characters, '-', '_' or "
                      "'.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name')");
        }
    }
}

void checkBase64Values(Checker& c, const Json& object, const char* field) {
    const Json* map = get(object, field);
    if (!map || !map->is_object()) {
        return;
    }
    for (const auto& [key, value] : map->items()) {
        if (!value.is_string()) {
            continue;
        }
        if (!base64Decode(value.get_ref<const std::string&>())) {
            c.add(entry(field, key), kInvalid,
                  "Invalid value: <contents redacted>: not standard padded base64");
        }
    }
}

// Bytes of the string values of a map (decoded first when `base64` is set), skipping `except`'s
// keys.
std::size_t dataBytes(const Json* map, bool base64, const Json* except = nullptr) {
    std::size_t total = 0;
    if (!map || !map->is_object()) {
        return total;
    }
    for (const auto& [key, value] : map->items()) {
        if (!value.is_string() || (except && except->is_object() && except->contains(key))) {
            continue;
        }
        const auto& text = value.get_ref<const std::string&>();
        if (!base64) {
            total += text.size();
        } else if (auto bytes = base64Decode(text)) {
            total += bytes->size();
        }
    }
    return total;
}

void checkDataSize(Checker& c, const std::string& path, std::size_t bytes) {
    if (bytes > kMaxDataBytes) {
        c.add(path, kTooLong,
              "Too long: may not be more than " + std::to_string(kMaxDataBytes) + " bytes");
    }
}

// Gateway API backendRefs to a Service (the default group and kind) must say which port.
void checkBackendPorts(Checker& c, const Json& rule, const std::string& rulePath) {
    const Json* refs = get(rule, "backendRefs");
    if (!refs || !refs->is_array()) {
        return;
    }
    for (std::size_t i = 0; i < refs->size(); ++i) {
        const Json& ref = (*refs)[i];
        if (!ref.is_object()) {
            continue;
        }
        if (getString(ref, "group", "") == "" && getString(ref, "kind", "Service") == "Service" &&
            !get(ref, "port")) {
            c.required(index(child(rulePath, "backendRefs"), i) + ".port",
                       "port is required when the backend is a Service");
        }
    }
}

// --- per-kind rules -----------------------------------------------------------------------

void checkGateway(Checker& c, const Json& object) {
    const Json* spec = get(object, "spec");
    if (!spec) {
        return;
    }
    if (const Json* listeners = get(*spec, "listeners"); listeners && listeners->is_array()) {
        std::map<std::string, std::size_t> names;
        std::map<std::tuple<std::string, std::string, std::string>, std::size_t> endpoints;
        for (std::size_t i = 0; i < listeners->size(); ++i) {
            const Json& l = (*listeners)[i];
            if (!l.is_object()) {
                continue;
            }
            std::string path = index("spec.listeners", i);
            std::string protocol = getString(l, "protocol");
            if ((protocol == "TCP" || protocol == "UDP") && get(l, "hostname")) {
                c.forbidden(path + ".hostname",
                            "hostname must not be specified for protocols ['TCP', 'UDP']");
            }
            if (const Json* name = get(l, "name"); name && name->is_string()) {
                if (!names.emplace(name->get<std::string>(), i).second) {
                    c.duplicate(path + ".name", *name);
                }
            }
            const Json* p = get(l, "port");
            std::string port = p ? p->dump() : "";
            auto key = std::make_tuple(port, getString(l, "protocol"), getString(l, "hostname"));
            auto [it, inserted] = endpoints.emplace(key, i);
            if (!inserted) {
                c.add(path, kDuplicate,
                      "Duplicate value: port " + port + ", protocol " + std::get<1>(key) +
                          " and hostname \"" + std::get<2>(key) + "\" are already used by " +
                          index("spec.listeners", it->second));
            }
        }
    }
    if (const Json* addresses = get(*spec, "addresses"); addresses && addresses->is_array()) {
        for (std::size_t i = 0; i < addresses->size(); ++i) {
            const Json& a = (*addresses)[i];
            const Json* value = get(a, "value");
            if (!value || !value->is_string()) {
                continue;
            }
            std::string type = getString(a, "type", "IPAddress");
            const auto& v = value->get_ref<const std::string&>();
            std::string path = index("spec.addresses", i) + ".value";
            if (type == "IPAddress" && !isIpAddress(v)) {
                c.invalid(path, *value, "must be a valid IPv4 or IPv6 address");
            } else if (type == "Hostname" && !isDnsSubdomain(v)) {
                c.invalid(path, *value, "must be a lowercase RFC 1123 subdomain");
            }
        }
    }
}

// The two CEL rules on a Route's parentRefs, with upstream's messages. Absent group and kind
// take their defaults first, as the API server's defaulting runs before CEL.
void checkParentRefs(Checker& c, const Json& object) {
    const Json* spec = get(object, "spec");
    const Json* refs = spec ? get(*spec, "parentRefs") : nullptr;
    if (!refs || !refs->is_array()) {
        return;
    }
    using Parent = std::tuple<std::string, std::string, std::string, std::string>;
    // Per parent: whether its entries name a section and a port (as first seen).
    std::map<Parent, std::pair<bool, bool>> parents;
    std::set<std::tuple<Parent, std::string, std::string>> seen;
    bool mixed = false;
    bool duplicate = false;
    for (const auto& ref : *refs) {
        if (!ref.is_object()) {
            continue;
        }
        Parent parent{getString(ref, "group", "gateway.networking.k8s.io"),
                      getString(ref, "kind", "Gateway"), getString(ref, "namespace"),
                      getString(ref, "name")};
        std::string section = getString(ref, "sectionName");
        const Json* port = get(ref, "port");
        std::string portText = port && *port != 0 ? port->dump() : "";
        auto shape = std::make_pair(!section.empty(), !portText.empty());
        auto [it, inserted] = parents.emplace(parent, shape);
        mixed = mixed || (!inserted && it->second != shape);
        duplicate = duplicate || !seen.emplace(parent, section, portText).second;
    }
    if (mixed) {
        c.invalid("spec.parentRefs", Json("array"),
                  "sectionName or port must be specified when parentRefs includes 2 or more "
                  "references to the same parent");
    }
    if (duplicate) {
        c.invalid("spec.parentRefs", Json("array"),
                  "sectionName or port must be unique when parentRefs includes 2 or more "
                  "references to the same parent");
    }
}

void checkTcpRoute(Checker& c, const Json& object) {
    checkParentRefs(c, object);
    const Json* spec = get(object, "spec");
    const Json* rules = spec ? get(*spec, "rules") : nullptr;
    if (!rules || !rules->is_array()) {
        return;
    }
    for (std::size_t i = 0; i < rules->size(); ++i) {
        checkBackendPorts(c, (*rules)[i], index("spec.rules", i));
    }
}

void checkHttpRoute(Checker& c, const Json& object) {
    checkParentRefs(c, object);
    const Json* spec = get(object, "spec");
    const Json* rules = spec ? get(*spec, "rules") : nullptr;
    if (!rules || !rules->is_array()) {
        return;
    }
    for (std::size_t i = 0; i < rules->size(); ++i) {
        const Json& rule = (*rules)[i];
        std::string rulePath = index("spec.rules", i);
        checkBackendPorts(c, rule, rulePath);
        const Json* matchList = get(rule, "matches");
        if (!matchList || !matchList->is_array()) {
            continue;
        }
        for (std::size_t j = 0; j < matchList->size(); ++j) {
            const Json* path = get((*matchList)[j], "path");
            if (!path || !path->is_object()) {
                continue;
            }
            std::string type = getString(*path, "type", "PathPrefix");
            std::string value = getString(*path, "value", "/");
            if (type != "PathPrefix" || value != "/") {
                c.add(index(rulePath + ".matches", j) + ".path", kNotSupported,
                      "Unsupported value: " + type + " \"" + value +
                          "\": only catch-all rules are supported for now (no path match, or "
                          "PathPrefix \"/\")");
            }
        }
    }
}

void checkService(Checker& c, const Json& object) {
    const Json* spec = get(object, "spec");
    if (!spec) {
        return;
    }
    std::string type = getString(*spec, "type", "ClusterIP");
    const Json* externalName = get(*spec, "externalName");
    bool hasExternalName = externalName && externalName->is_string() &&
                           !externalName->get_ref<const std::string&>().empty();
    if (type == "ExternalName" && !hasExternalName) {
        c.required("spec.externalName", "required when type is ExternalName");
    } else if (type != "ExternalName" && hasExternalName) {
        c.forbidden("spec.externalName", "may only be set when type is ExternalName");
    }
    if (const Json* ip = get(*spec, "clusterIP"); ip && ip->is_string()) {
        const auto& v = ip->get_ref<const std::string&>();
        if (!v.empty() && v != "None" && !isIpAddress(v)) {
            c.invalid("spec.clusterIP", *ip, "must be empty, 'None', or a valid IP address");
        }
    }
    if (const Json* name = get(*spec, "externalName"); name && name->is_string()) {
        const auto& v = name->get_ref<const std::string&>();
        if (v.size() == 254 && v.back() != '.') {
            c.add("spec.externalName", kTooLong, "Too long: may not be more than 253 bytes");
        }
    }
    const Json* ports = get(*spec, "ports");
    bool headless = getString(*spec, "clusterIP") == "None";
    if ((!ports || (ports->is_array() && ports->empty())) && !headless && type != "ExternalName") {
        c.required("spec.ports");
    }
    if (!ports || !ports->is_array()) {
        return;
    }
    std::set<std::string> names;
    std::set<std::pair<std::string, std::string>> endpoints;
    for (std::size_t i = 0; i < ports->size(); ++i) {
        const Json& p = (*ports)[i];
        if (!p.is_object()) {
            continue;
        }
        std::string path = index("spec.ports", i);
        const Json* name = get(p, "name");
        bool named = name && name->is_string() && !name->get_ref<const std::string&>().empty();
        if (ports->size() > 1 && !named) {
            c.required(path + ".name", "a name is required when the Service has several ports");
        }
        if (named && !names.insert(name->get<std::string>()).second) {
            c.duplicate(path + ".name", *name);
        }
        const Json* port = get(p, "port");
        if (port && port->is_number_integer()) {
            std::string protocol = getString(p, "protocol", "TCP");
            if (!endpoints.emplace(port->dump(), protocol).second) {
                c.add(path, kDuplicate,
                      "Duplicate value: port " + port->dump() + " with protocol " + protocol);
            }
        }
    }
}

void checkEndpointSlice(Checker& c, const Json& object) {
    const Json* typeValue = get(object, "addressType");
    const Json* endpoints = get(object, "endpoints");
    if (!typeValue || !typeValue->is_string() || !endpoints || !endpoints->is_array()) {
        return;
    }
    std::string type = typeValue->get<std::string>();
    for (std::size_t i = 0; i < endpoints->size(); ++i) {
        const Json* addresses = get((*endpoints)[i], "addresses");
        if (!addresses || !addresses->is_array()) {
            continue;
        }
        for (std::size_t j = 0; j < addresses->size(); ++j) {
            const Json& a = (*addresses)[j];
            if (!a.is_string()) {
                continue;
            }
            const auto& s = a.get_ref<const std::string&>();
            std::string path = index(index("endpoints", i) + ".addresses", j);
            if (type == "IPv4" && !isIp(s, AF_INET)) {
                c.invalid(path, a, "must be a valid IPv4 address");
            } else if (type == "IPv6" && !isPlainIpv6(s)) {
                c.invalid(path, a, "must be a valid IPv6 address");
            } else if (auto use = type == "FQDN" ? std::nullopt : specialUseOf(s)) {
                // As the API server refuses them: these never name a backend.
                c.invalid(path, a, "may not be " + std::string(*use));
            } else if (type == "FQDN" && !isFullyQualified(s)) {
                c.invalid(path, a,
                          "must be a fully qualified domain name: a lowercase RFC 1123 subdomain "
                          "of at least two labels");
            }
        }
    }
}

void checkConfigMap(Checker& c, const Json& object) {
    checkConfigKeys(c, object, "data");
    checkConfigKeys(c, object, "binaryData");
    checkBase64Values(c, object, "binaryData");
    const Json* data = get(object, "data");
    const Json* binary = get(object, "binaryData");
    // The bound is on the whole object, so the error has no field path (as the API server's).
    checkDataSize(c, "", dataBytes(data, false) + dataBytes(binary, true));
    if (data && binary && data->is_object() && binary->is_object()) {
        for (const auto& [key, value] : binary->items()) {
            if (data->contains(key)) {
                c.add(entry("binaryData", key), kDuplicate,
                      "Duplicate value: \"" + key + "\": the key also appears in data");
            }
        }
    }
}

void checkSecret(Checker& c, const Json& object) {
    checkConfigKeys(c, object, "data");
    checkConfigKeys(c, object, "stringData");
    checkBase64Values(c, object, "data");
    // stringData is merged into data (winning on shared keys) before the API server counts.
    const Json* stringData = get(object, "stringData");
    checkDataSize(c, "data",
                  dataBytes(get(object, "data"), true, stringData) + dataBytes(stringData, false));
    if (getString(object, "type") == "kubernetes.io/tls") {
        const Json* data = get(object, "data");
        for (const char* key : {"tls.crt", "tls.key"}) {
            bool present = (data && data->is_object() && data->contains(key)) ||
                           (stringData && stringData->is_object() && stringData->contains(key));
            if (!present) {
                c.required(entry("data", key), "a kubernetes.io/tls Secret needs tls.crt and tls.key");
            }
        }
    }
}

// The two CEL rules on spec.targetRefs, with upstream's messages.
void checkTargetRefs(Checker& c, const Json& refs) {
    // Per target (group, kind, name): how many entries carry a sectionName, how many don't.
    std::map<std::tuple<std::string, std::string, std::string>, std::pair<int, int>> targets;
    std::set<std::tuple<std::string, std::string, std::string, std::string>> seen;
    bool duplicate = false;
    for (const auto& ref : refs) {
        if (!ref.is_object()) {
            continue;
        }
        auto target = std::make_tuple(getString(ref, "group"), getString(ref, "kind"),
                                      getString(ref, "name"));
        std::string section = getString(ref, "sectionName");
        auto& counts = targets[target];
        (section.empty() ? counts.second : counts.first)++;
        if (!seen.emplace(std::get<0>(target), std::get<1>(target), std::get<2>(target), section)
                 .second) {
            duplicate = true;
        }
    }
    bool mixed = std::any_of(targets.begin(), targets.end(), [](const auto& t) {
        return t.second.first > 0 && t.second.second > 0;
    });
    if (mixed) {
        c.invalid("spec.targetRefs", Json("array"),
                  "sectionName must be specified when targetRefs includes 2 or more "
                  "references to the same target");
    }
    if (duplicate) {
        c.invalid("spec.targetRefs", Json("array"),
                  "sectionName must be unique when targetRefs includes 2 or more references "
                  "to the same target");
    }
}

// The two CEL rules on spec.validation: exactly one source of trust anchors.
void checkTrustAnchorChoice(Checker& c, const Json& validation) {
    const Json* caRefs = get(validation, "caCertificateRefs");
    bool hasCaRefs = caRefs && caRefs->is_array() && !caRefs->empty();
    bool hasWellKnown = !getString(validation, "wellKnownCACertificates").empty();
    if (hasCaRefs && hasWellKnown) {
        c.invalid("spec.validation", Json("object"),
                  "must not contain both CACertificateRefs and WellKnownCACertificates");
    } else if (!hasCaRefs && !hasWellKnown) {
        c.invalid("spec.validation", Json("object"),
                  "must specify either CACertificateRefs or WellKnownCACertificates");
    }
}

// The four CEL rules of each subjectAltNames entry, with upstream's messages (reported at the
// offending field rather than at the entry).
void checkSubjectAltNames(Checker& c, const Json& sans) {
    for (std::size_t i = 0; i < sans.size(); ++i) {
        const Json& san = sans[i];
        const Json* type = get(san, "type");
        if (!type || !type->is_string()) {
            continue;
        }
        std::string path = index("spec.validation.subjectAltNames", i);
        bool hasHostname = !getString(san, "hostname").empty();
        bool hasUri = !getString(san, "uri").empty();
        // A field is forbidden whenever type is not its own, including an unsupported type
        // (which the enum reports as well).
        if (*type == "Hostname" && !hasHostname) {
            c.required(path + ".hostname",
                       "SubjectAltName element must contain Hostname, if Type is set to Hostname");
        }
        if (*type != "Hostname" && hasHostname) {
            c.forbidden(path + ".hostname",
                        "SubjectAltName element must not contain Hostname, if Type is not set to "
                        "Hostname");
        }
        if (*type == "URI" && !hasUri) {
            c.required(path + ".uri",
                       "SubjectAltName element must contain URI, if Type is set to URI");
        }
        if (*type != "URI" && hasUri) {
            c.forbidden(path + ".uri",
                        "SubjectAltName element must not contain URI, if Type is not set to URI");
        }
    }
}

void checkBackendTlsPolicy(Checker& c, const Json& object) {
    const Json* spec = get(object, "spec");
    if (!spec) {
        return;
    }
    if (const Json* refs = get(*spec, "targetRefs"); refs && refs->is_array()) {
        checkTargetRefs(c, *refs);
    }
    const Json* validation = get(*spec, "validation");
    if (!validation || !validation->is_object()) {
        return;
    }
    checkTrustAnchorChoice(c, *validation);
    if (const Json* sans = get(*validation, "subjectAltNames"); sans && sans->is_array()) {
        checkSubjectAltNames(c, *sans);
    }
}

using KindCheck = void (*)(Checker&, const Json&);

KindCheck kindCheck(const std::string& kind) {
    static const std::map<std::string, KindCheck> checks{
        {"Gateway", checkGateway},       {"TCPRoute", checkTcpRoute},
        {"HTTPRoute", checkHttpRoute},   {"Service", checkService},
        {"EndpointSlice", checkEndpointSlice}, {"ConfigMap", checkConfigMap},
        {"Secret", checkSecret},         {"BackendTLSPolicy", checkBackendTlsPolicy},
    };
    auto it = checks.find(kind);
    return it == checks.end() ? nullptr : it->second;
}

// Which kind the object claims to be; errors name apiVersion or kind and list what is served.
const KindInfo* resolveKind(Checker& c, const Json& object) {
    const Json* apiVersion = get(object, "apiVersion");
    const Json* kind = get(object, "kind");
    bool ok = true;
    if (!apiVersion) {
        c.required("apiVersion");
        ok = false;
    } else if (!apiVersion->is_string()) {
        c.typeInvalid("apiVersion", *apiVersion, "must be a string");
        ok = false;
    }
    if (!kind) {
        c.required("kind");
        ok = false;
    } else if (!kind->is_string()) {
        c.typeInvalid("kind", *kind, "must be a string");
        ok = false;
    }
    if (!ok) {
        return nullptr;
    }
    const auto& v = apiVersion->get_ref<const std::string&>();
    const auto& k = kind->get_ref<const std::string&>();
    if (const KindInfo* info = findKind(v, k)) {
        return info;
    }
    std::vector<std::string> served;
    for (const auto& info : allKinds()) {
        if (info.kind == k) {
            for (const auto& version : info.versions) {
                served.push_back(info.group.empty() ? version : info.group + "/" + version);
            }
        }
    }
    if (!served.empty()) {
        c.add("apiVersion", kNotSupported,
              "Unsupported value: " + show(*apiVersion) + ": " + k +
                  " is served as: " + quoteList(served));
        return nullptr;
    }
    std::vector<std::string> kinds;
    for (const auto& info : allKinds()) {
        kinds.push_back(info.kind);
    }
    c.add("kind", kNotSupported,
          "Unsupported value: " + show(*kind) + ": supported values: " + quoteList(kinds));
    return nullptr;
}

Json normalize(const KindInfo& kind, const Json& object) {
    Json out = object;
    out["apiVersion"] = kind.storageApiVersion();
    out.erase("status");
    auto meta = out.find("metadata");
    if (meta != out.end() && meta->is_object()) {
        const Json* ns = get(*meta, "namespace");
        if (!ns || !ns->is_string() || ns->get_ref<const std::string&>().empty()) {
            (*meta)["namespace"] = "default";
        }
        meta->erase("uid");
        meta->erase("generation");
        meta->erase("creationTimestamp");
    }
    if (kind.kind == "Secret") {
        if (out.contains("stringData")) {
            // Taken out first: inserting "data" into the ordered map would invalidate iterators.
            Json stringData = std::move(out["stringData"]);
            out.erase("stringData");
            if (stringData.is_object()) {
                Json& data = out["data"];
                if (!data.is_object()) {
                    data = Json::object();
                }
                for (const auto& [key, value] : stringData.items()) {
                    if (value.is_string()) {
                        data[key] = base64Encode(value.get<std::string>());
                    }
                }
            }
        }
    }
    return out;
}

}  // namespace

Admission admit(const Json& object) {
    Admission result;
    try {
        Checker c(result.errors);
        if (!object.is_object()) {
            c.typeInvalid("", object, "an object must be a mapping with apiVersion and kind");
            result.object = object;
            return result;
        }
        const KindInfo* kind = resolveKind(c, object);
        if (!kind) {
            result.object = object;
            return result;
        }
        c.walk(*kind->schema, object, "");
        checkMetadata(c, object);
        if (KindCheck check = kindCheck(kind->kind)) {
            check(c, object);
        }
        result.object = normalize(*kind, object);
    } catch (const std::exception& e) {
        result.errors.push_back(Diagnostic{"", "InternalError", std::string("admission failed: ") + e.what()});
    } catch (...) {
        result.errors.push_back(Diagnostic{"", "InternalError", "admission failed"});
    }
    return result;
}

}  // namespace lastmile::ctrl
