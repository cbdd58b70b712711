// SPDX-License-Identifier: Apache-2.0
// The reconciler: attaches policies to Service ports through Routes, writes status, compiles
// profiles.
#include "ctrl/reconcile/reconciler.h"

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ctrl/api/base64.h"
#include "ctrl/reconcile/policy_options.h"
#include "base/result.h"
#include "base/text.h"
#include "dataplane/tls/certificate_info.h"
#include "dataplane/tls/openssl_handles.h"

namespace lastmile::ctrl {
namespace {

constexpr const char* kGatewayGroup = "gateway.networking.k8s.io";
constexpr std::size_t kMaxAncestors = 16;

// ---- JSON access: admitted objects are well-formed, but never trust shapes we do not own.

const Json* member(const Json& j, const std::string& key) {
    if (!j.is_object()) {
        return nullptr;
    }
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

std::string text(const Json& j, const std::string& key, const std::string& fallback = {}) {
    const Json* v = member(j, key);
    return v != nullptr && v->is_string() ? v->get<std::string>() : fallback;
}

std::int64_t integer(const Json& j, const std::string& key, std::int64_t fallback = 0) {
    const Json* v = member(j, key);
    return v != nullptr && v->is_number_integer() ? v->get<std::int64_t>() : fallback;
}

const Json& emptyArray() {
    static const Json kEmpty = Json::array();
    return kEmpty;
}

const Json& array(const Json& j, const std::string& key) {
    const Json* v = member(j, key);
    return v != nullptr && v->is_array() ? *v : emptyArray();
}

const Json& path(const Json& j, std::initializer_list<const char*> keys) {
    static const Json kNull;
    const Json* cur = &j;
    for (const char* k : keys) {
        cur = member(*cur, k);
        if (cur == nullptr) {
            return kNull;
        }
    }
    return *cur;
}

// Policies without a parseable creationTimestamp lose every tie: they sort last.
constexpr std::int64_t kUnknownCreation = INT64_MAX;

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// The non-blank text under `key` of a ConfigMap or Secret (`kind`): ConfigMap `data` and
// Secret `stringData` are plain text, Secret `data` and ConfigMap `binaryData` are base64.
// On failure the context is the message for status, starting with `what`.
Result<std::string> dataKey(const Json& obj, const std::string& kind, const std::string& key,
                            const std::string& what) {
    bool configMap = kind == "ConfigMap";
    const Json& plain = path(obj, {configMap ? "data" : "stringData", key.c_str()});
    const Json& encoded = path(obj, {configMap ? "binaryData" : "data", key.c_str()});
    std::string out;
    if (encoded.is_string()) {
        auto decoded = base64Decode(encoded.get<std::string>());
        if (!decoded) {
            return fail(Errc::Invalid, what + ": " + key + " is not valid base64");
        }
        out = std::move(*decoded);
    } else if (plain.is_string()) {
        out = plain.get<std::string>();
    } else {
        return fail(Errc::NotFound, what + " has no key " + key);
    }
    if (blank(out)) {
        return fail(Errc::Invalid, what + ": " + key + " is empty");
    }
    return out;
}

// ---- Conditions.

struct Cond {
    std::string type;
    bool status = true;
    std::string reason;
    std::string message;
};

const Json* findCondition(const Json* conditions, const std::string& type) {
    if (conditions == nullptr || !conditions->is_array()) {
        return nullptr;
    }
    for (const auto& c : *conditions) {
        if (text(c, "type") == type) {
            return &c;
        }
    }
    return nullptr;
}

// lastTransitionTime is kept while the status stays the same, so that an unchanged object
// produces a byte-identical status and callers write nothing.
Json conditionsJson(const std::vector<Cond>& conds, std::int64_t generation, const Json* previous,
                    const std::string& now) {
    Json out = Json::array();
    for (const auto& c : conds) {
        std::string statusText = c.status ? "True" : "False";
        std::string ltt = now;
        if (const Json* prev = findCondition(previous, c.type)) {
            std::string prevLtt = text(*prev, "lastTransitionTime");
            if (text(*prev, "status") == statusText && !prevLtt.empty()) {
                ltt = prevLtt;
            }
        }
        Json j = Json::object();
        j["type"] = c.type;
        j["status"] = statusText;
        j["observedGeneration"] = generation;
        j["lastTransitionTime"] = ltt;
        j["reason"] = c.reason;
        j["message"] = c.message;
        out.push_back(std::move(j));
    }
    return out;
}

// ---- The object model of one pass.

struct ServicePort {
    std::string name;
    int port = 0;
    std::string protocol;  // TCP, UDP, SCTP (as written: any other value is not TCP either)
    std::optional<int> targetPort;  // only a numeric targetPort; a named one needs the slice
};

struct Service {
    std::string ns;
    std::string name;
    std::vector<ServicePort> ports;
    std::string externalName;  // non-empty for `type: ExternalName`

    // A backendRef's port is dialled over TCP, so only a TCP port answers to its number: a
    // Service may also have an SCTP or UDP port of that number, which is never dialled.
    const ServicePort* tcpPort(int number) const {
        for (const auto& p : ports) {
            if (p.port == number && p.protocol == "TCP") {
                return &p;
            }
        }
        return nullptr;
    }
    const ServicePort* byName(const std::string& n) const {
        for (const auto& p : ports) {
            if (!p.name.empty() && p.name == n) {
                return &p;
            }
        }
        return nullptr;
    }
};

struct Listener {
    std::string name;
    std::string protocol;
    int port = 0;
    std::string from;  // Same, All, Selector
    std::string hostname;
    std::set<ObjectKey> attached;
    // Why the listener is not served (Accepted=False with `refusalReason`); empty: it is.
    std::string refusal;
    std::string refusalReason;
};

struct ClientCertCheck {
    bool ok = true;
    std::string message;
    std::optional<tls::ClientCertificate> cert;
};

struct Gateway {
    const Json* obj = nullptr;
    ObjectKey key;
    std::string address;  // the first local IPAddress of spec.addresses; empty: the default one
    std::vector<std::string> virtualAddresses;  // the IPAddresses that are not this host's
    std::vector<Listener> listeners;
    ClientCertCheck clientCert;
};

struct BackendRef {
    std::string group;
    std::string kind;
    std::string ns;
    std::string name;
    std::optional<int> port;
    std::int64_t weight = 1;
};

// One accepted (Route, Gateway) attachment sending traffic to a Service of the Route's namespace.
struct BackendUse {
    std::size_t gateway = 0;  // index into the sorted implemented Gateways
    std::string ns;
    std::string service;
    std::optional<int> port;
};

using NsName = std::pair<std::string, std::string>;

class Pass {
public:
    Pass(const std::vector<Json>& objects, const ReconcilerConfig& config,
         std::chrono::system_clock::time_point now, const ListenerStates& bound)
        : config_(config), bound_(bound), now_(rfc3339(now)) {
        index(objects);
    }

    ReconcileOutput run();

private:
    struct Target {
        std::string group;
        std::string kind;
        std::string name;
        std::string section;
        enum class State { Ok, NotFound, NotTcp } state = State::Ok;
        std::string problem;
        std::string conflictWinner;  // non-empty: this policy lost the target to that policy
        std::set<std::size_t> gateways;
    };

    struct Policy {
        const Json* obj = nullptr;
        ObjectKey key;
        std::string id;  // "namespace/name"
        std::int64_t generation = 0;
        std::int64_t created = 0;
        std::vector<Target> targets;
        std::vector<std::string> notes;    // appended to the Accepted message
        std::vector<std::string> invalid;  // Accepted=False/Invalid, fail closed
        bool noValidCa = false;            // every CA ref is bad
        Cond resolvedRefs{"ResolvedRefs", true, "ResolvedRefs",
                          "CA certificate references resolved"};
        tls::ProfileSpec base;
        std::string failClosedReason;
    };

    void index(const std::vector<Json>& objects);
    void readGateways();
    Cond routeResolvedRefs(const std::vector<BackendRef>& refs, const std::string& routeNs) const;
    std::string undialable(const BackendRef& r, std::vector<std::string>& problems) const;
    Cond attachToParent(const ObjectKey& route, const Json& parent,
                        const std::vector<BackendRef>& refs, const std::string& unsupported,
                        std::size_t gi);
    void readRoutes();
    void readPolicies();
    void resolveConflicts();
    ClientCertCheck checkClientCertificate(const Gateway& gw) const;
    void resolveCaRefs(Policy& p) const;
    void resolveTargets(Policy& p) const;
    std::set<std::size_t> gatewaysReaching(const std::string& ns, const std::string& name,
                                           std::optional<int> port) const;
    // A profile to build: the governing policy's spec for one reached backend.
    struct Planned {
        std::size_t policy;
        tls::ProfileSpec spec;
        std::shared_ptr<const tls::HandshakeProfile> profile;
    };
    std::map<tls::BackendKey, std::set<std::size_t>> reachedBackends() const;
    std::vector<Planned> planProfiles() const;
    void recordCompileRejection(std::size_t policy, const Error& err);
    void checkUncompiledPolicies(const std::set<std::size_t>& checked,
                                 std::set<std::size_t>& rejected);
    void buildProfiles(ReconcileOutput& out);
    std::vector<route::Endpoint> endpointsOf(const Service& svc, const ServicePort& port) const;
    void buildListenerPlans(ReconcileOutput& out) const;
    const route::ListenerState* stateOf(const Gateway& gw, const Listener& l) const;
    Cond listenerProgrammed(const Gateway& gw, const Listener& l) const;
    Cond gatewayProgrammed(const Gateway& gw) const;
    Json gatewayStatus(const Gateway& gw) const;
    Json routeStatus(const Json& route, const std::vector<Json>& ours) const;
    Json policyStatus(const Policy& p) const;
    Cond acceptedFor(const Policy& p, std::size_t gateway) const;

    const Json* lookup(const std::string& group, const std::string& kind, const std::string& ns,
                       const std::string& name) const {
        auto it = objects_.find(ObjectKey{group, kind, ns, name});
        return it == objects_.end() ? nullptr : it->second;
    }

    const ReconcilerConfig& config_;
    const ListenerStates& bound_;
    const std::string now_;
    std::map<ObjectKey, const Json*> objects_;  // sorted: every loop below is deterministic
    std::map<NsName, Service> services_;
    std::map<NsName, std::vector<const Json*>> slices_;  // EndpointSlices by (ns, Service)
    std::vector<Gateway> gateways_;  // implemented ones, sorted by namespace/name
    std::map<NsName, std::size_t> gatewayIndex_;
    std::vector<BackendUse> uses_;
    std::map<ObjectKey, std::vector<Json>> routeParents_;  // our new parent entries per Route
    std::vector<Policy> policies_;                         // sorted by namespace/name
};

void Pass::index(const std::vector<Json>& objects) {
    for (const auto& o : objects) {
        if (!o.is_object() || !path(o, {"metadata", "name"}).is_string() ||
            !path(o, {"metadata", "namespace"}).is_string() ||
            !path(o, {"apiVersion"}).is_string() || !path(o, {"kind"}).is_string()) {
            continue;
        }
        objects_[keyOf(o)] = &o;
    }
    for (const auto& [key, obj] : objects_) {
        if (key.group != "" || key.kind != "Service") {
            continue;
        }
        const Json& spec = path(*obj, {"spec"});
        Service svc{key.ns, key.name, {}, {}};
        if (text(spec, "type") == "ExternalName") {
            svc.externalName = text(spec, "externalName");
        }
        for (const auto& p : array(spec, "ports")) {
            ServicePort sp{text(p, "name"), static_cast<int>(integer(p, "port")),
                           text(p, "protocol", "TCP"), std::nullopt};
            if (const Json* target = member(p, "targetPort");
                target != nullptr && target->is_number_integer()) {
                sp.targetPort = target->get<int>();
            }
            svc.ports.push_back(std::move(sp));
        }
        services_[{key.ns, key.name}] = std::move(svc);
    }
    for (const auto& [key, obj] : objects_) {
        if (key.group != "discovery.k8s.io" || key.kind != "EndpointSlice") {
            continue;
        }
        std::string service = text(path(*obj, {"metadata", "labels"}), "kubernetes.io/service-name");
        if (!service.empty()) {
            slices_[{key.ns, service}].push_back(obj);
        }
    }
}

ClientCertCheck Pass::checkClientCertificate(const Gateway& gw) const {
    ClientCertCheck check;
    const Json& ref = path(*gw.obj, {"spec", "tls", "backend", "clientCertificateRef"});
    if (!ref.is_object()) {
        return check;
    }
    auto bad = [&](std::string why) {
        check.ok = false;
        check.message = std::move(why);
        return check;
    };
    std::string group = text(ref, "group");
    std::string kind = text(ref, "kind", "Secret");
    std::string ns = text(ref, "namespace", gw.key.ns);
    std::string name = text(ref, "name");
    if (group != "" || kind != "Secret") {
        return bad("clientCertificateRef must name a core Secret, not " +
                   (group.empty() ? kind : group + "/" + kind) + " " + name);
    }
    if (ns != gw.key.ns) {
        return bad("clientCertificateRef to Secret " + ns + "/" + name +
                   ": cross-namespace references are not supported");
    }
    std::string what = "Secret " + ns + "/" + name;
    const Json* secret = lookup("", "Secret", ns, name);
    if (secret == nullptr) {
        return bad(what + " not found");
    }
    std::string pem[2];
    const char* keys[2] = {"tls.crt", "tls.key"};
    for (int i = 0; i < 2; ++i) {
        auto content = dataKey(*secret, "Secret", keys[i], what);
        if (!content) {
            return bad(content.error().context());
        }
        pem[i] = std::move(*content);
    }
    auto chain = tls::inspectPemBundle(pem[0]);
    if (!chain) {
        return bad(what + ": tls.crt: malformed PEM: " + chain.error().context());
    }
    tls::BioPtr certBio(BIO_new_mem_buf(pem[0].data(), static_cast<int>(pem[0].size())));
    tls::BioPtr keyBio(BIO_new_mem_buf(pem[1].data(), static_cast<int>(pem[1].size())));
    if (!certBio || !keyBio) {
        return bad(what + ": out of memory reading the key pair");
    }
    tls::X509Ptr leaf(PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr));
    tls::EvpPkeyPtr key(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
    bool matches = leaf && key && X509_check_private_key(leaf.get(), key.get()) == 1;
    ERR_clear_error();  // parse failures are reported by message, not by the queue
    if (!key) {
        return bad(what + ": tls.key is not a PEM private key");
    }
    if (!matches) {
        return bad(what + ": tls.key does not match the certificate in tls.crt");
    }
    check.cert = tls::ClientCertificate{pem[0], pem[1]};
    return check;
}

void Pass::readGateways() {
    for (const auto& [key, obj] : objects_) {
        if (key.group != kGatewayGroup || key.kind != "Gateway" ||
            text(path(*obj, {"spec"}), "gatewayClassName") != config_.gatewayClassName) {
            continue;
        }
        Gateway gw;
        gw.obj = obj;
        gw.key = key;
        for (const auto& a : array(path(*obj, {"spec"}), "addresses")) {
            if (text(a, "type", "IPAddress") != "IPAddress") {
                continue;
            }
            const std::string value = text(a, "value");
            if (!config_.isLocalAddress || config_.isLocalAddress(value)) {
                if (gw.address.empty()) {
                    gw.address = value;
                }
            } else if (std::find(gw.virtualAddresses.begin(), gw.virtualAddresses.end(), value) ==
                       gw.virtualAddresses.end()) {
                gw.virtualAddresses.push_back(value);
            }
        }
        for (const auto& l : array(path(*obj, {"spec"}), "listeners")) {
            std::string from = text(path(l, {"allowedRoutes", "namespaces"}), "from", "Same");
            Listener listener{text(l, "name"),
                              text(l, "protocol"),
                              static_cast<int>(integer(l, "port")),
                              from,
                              text(l, "hostname"),
                              {},
                              {},
                              {}};
            // Traffic is bridged without looking at the request, so a listener that would
            // serve only some host names cannot be honoured: serving it would hand every
            // host's requests to its Routes.
            if (listener.protocol != "HTTP" && listener.protocol != "TCP") {
                listener.refusalReason = "UnsupportedProtocol";
                listener.refusal =
                    "protocol " + listener.protocol + " is not supported (only HTTP and TCP)";
            } else if (!listener.hostname.empty()) {
                listener.refusalReason = "UnsupportedValue";
                listener.refusal = "hostname \"" + listener.hostname +
                                   "\" is not supported: lastmile does not route by host name";
            }
            gw.listeners.push_back(std::move(listener));
        }
        gw.clientCert = checkClientCertificate(gw);
        gatewayIndex_[{key.ns, key.name}] = gateways_.size();
        gateways_.push_back(std::move(gw));
    }
}

std::vector<BackendRef> backendRefsOf(const Json& routeSpec, const std::string& routeNs) {
    std::vector<BackendRef> refs;
    for (const auto& rule : array(routeSpec, "rules")) {
        for (const auto& b : array(rule, "backendRefs")) {
            BackendRef r{text(b, "group"),         text(b, "kind", "Service"),
                         text(b, "namespace", routeNs), text(b, "name"),
                         std::nullopt,                 integer(b, "weight", 1)};
            if (const Json* port = member(b, "port");
                port != nullptr && port->is_number_integer()) {
                r.port = port->get<int>();
            }
            refs.push_back(std::move(r));
        }
    }
    return refs;
}

// A match every request satisfies: no header, query or method condition, and a path that is
// absent or the prefix "/".
bool catchAll(const Json& match) {
    const Json& p = path(match, {"path"});
    return array(match, "headers").empty() && array(match, "queryParams").empty() &&
           text(match, "method").empty() && text(p, "type", "PathPrefix") == "PathPrefix" &&
           text(p, "value", "/") == "/";
}

// The fields of an HTTPRoute spec lastmile cannot honour, as the Accepted=False message; empty
// when there are none. Connections are bridged without reading the request, so hostnames and
// matches that select some requests cannot select anything: accepting them would send every
// request to every such Route's backends.
std::string unsupportedMatching(const Json& spec) {
    std::vector<std::string> fields;
    if (!array(spec, "hostnames").empty()) {
        fields.push_back("spec.hostnames");
    }
    const Json& rules = array(spec, "rules");
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const Json& matches = array(rules[i], "matches");
        if (!matches.empty() && std::none_of(matches.begin(), matches.end(), catchAll)) {
            fields.push_back("spec.rules[" + std::to_string(i) + "].matches");
        }
    }
    if (fields.empty()) {
        return "";
    }
    return join(fields, ", ") +
           ": not supported, lastmile does not route by host name, path, header, query or "
           "method (only catch-all rules are)";
}

// ResolvedRefs is a property of the Route, the same for every parent: the reason of the first
// bad reference, a message listing all of them.
Cond Pass::routeResolvedRefs(const std::vector<BackendRef>& refs,
                             const std::string& routeNs) const {
    Cond resolved{"ResolvedRefs", true, "ResolvedRefs", "All references resolved"};
    std::vector<std::string> problems;
    for (const auto& r : refs) {
        std::string reason;
        std::string what = "Service " + r.ns + "/" + r.name;
        if (r.group != "" || r.kind != "Service") {
            reason = "InvalidKind";
            problems.push_back("backendRef " + (r.group.empty() ? r.kind : r.group + "/" + r.kind) +
                               " " + r.name + ": only core Services are supported");
        } else if (r.ns != routeNs) {
            reason = "RefNotPermitted";
            problems.push_back("backendRef to " + what +
                               ": cross-namespace references are not permitted "
                               "(ReferenceGrant is not supported)");
        } else if (services_.count({r.ns, r.name}) == 0) {
            reason = "BackendNotFound";
            problems.push_back(what + " not found");
        } else if (!r.port) {
            reason = "BackendNotFound";
            problems.push_back("backendRef to " + what + " has no port");
        } else if (const Service& svc = services_.at({r.ns, r.name});
                   svc.tcpPort(*r.port) == nullptr) {
            bool other = std::any_of(svc.ports.begin(), svc.ports.end(),
                                     [&](const ServicePort& sp) { return sp.port == *r.port; });
            reason = other ? "UnsupportedProtocol" : "BackendNotFound";
            problems.push_back(what + " has no " + (other ? "TCP " : "") + "port " +
                               std::to_string(*r.port) +
                               (other ? ": traffic is only forwarded over TCP" : ""));
        }
        if (reason.empty()) {
            reason = undialable(r, problems);
        }
        if (!reason.empty() && resolved.status) {
            resolved = Cond{"ResolvedRefs", false, reason, ""};
        }
    }
    if (!resolved.status) {
        resolved.message = join(problems, "; ");
    }
    return resolved;
}

// "BackendNotPermitted" when the dataplane will not dial an endpoint of the resolved Service
// port `r` names (not a Gateway API reason: RefNotPermitted means a missing ReferenceGrant);
// the problem names the first such endpoint and why. "" when every endpoint may be dialled.
// ExternalName answers are only known to the dataplane, which refuses them with a 503.
std::string Pass::undialable(const BackendRef& r, std::vector<std::string>& problems) const {
    const Service& svc = services_.at({r.ns, r.name});
    std::size_t refused = 0;
    std::string first;
    for (const auto& e : endpointsOf(svc, *svc.tcpPort(*r.port))) {
        auto address = net::SocketAddress::parse(e.address, e.port);
        if (!address) {
            continue;  // endpointsOf keeps IP literals only
        }
        if (auto permitted = config_.backendFilter->check(*address); !permitted) {
            if (refused++ == 0) {
                first = permitted.error().context();
            }
        }
    }
    if (refused == 0) {
        return "";
    }
    problems.push_back("Service " + r.ns + "/" + r.name + ": " + first +
                       (refused > 1 ? " (and " + std::to_string(refused - 1) + " more endpoints)"
                                    : ""));
    return "BackendNotPermitted";
}

// The Accepted condition of one parentRef naming implemented Gateway `gi`. When accepted, the
// Route is counted on the listeners that take it and its same-namespace Service refs become
// backend uses, the source of every policy ancestor.
Cond Pass::attachToParent(const ObjectKey& route, const Json& parent,
                          const std::vector<BackendRef>& refs, const std::string& unsupported,
                          std::size_t gi) {
    bool http = route.kind == "HTTPRoute";
    Gateway& gw = gateways_[gi];
    std::string section = text(parent, "sectionName");
    const Json* portField = member(parent, "port");
    std::vector<Listener*> candidates;
    for (auto& l : gw.listeners) {
        if ((section.empty() || l.name == section) &&
            (portField == nullptr || !portField->is_number_integer() ||
             portField->get<int>() == l.port)) {
            candidates.push_back(&l);
        }
    }
    std::vector<Listener*> compatible;
    for (auto* l : candidates) {
        if (l->protocol == (http ? "HTTP" : "TCP")) {
            compatible.push_back(l);
        }
    }
    std::vector<Listener*> allowed;
    for (auto* l : compatible) {
        if (l->from == "All" || (l->from == "Same" && route.ns == gw.key.ns)) {
            allowed.push_back(l);
        }
    }
    std::string gwName = "Gateway " + gw.key.ns + "/" + gw.key.name;
    if (candidates.empty()) {
        return {"Accepted", false, "NoMatchingParent",
                section.empty() ? gwName + " has no listener matching the parentRef"
                                : gwName + " has no listener named " + section};
    }
    if (compatible.empty()) {
        // The listener's protocol decides the Route kinds it allows, so this is a listener
        // refusing the Route, not a parentRef matching nothing.
        return {"Accepted", false, "NotAllowedByListeners",
                gwName + " has no " + (http ? "HTTP" : "TCP") + " listener for a " + route.kind};
    }
    if (allowed.empty()) {
        return {"Accepted", false, "NotAllowedByListeners",
                "the listeners of " + gwName + " do not allow Routes from namespace " + route.ns +
                    " (allowedRoutes Selector is not supported)"};
    }
    if (!unsupported.empty()) {
        return {"Accepted", false, "UnsupportedValue", unsupported};
    }
    std::vector<std::string> refused;
    std::erase_if(allowed, [&](const Listener* l) {
        if (!l->refusal.empty()) {
            refused.push_back("listener " + l->name + " of " + gwName + ": " + l->refusal);
        }
        return !l->refusal.empty();
    });
    if (allowed.empty()) {
        return {"Accepted", false, "UnsupportedValue", join(refused, "; ")};
    }
    for (auto* l : allowed) {
        l->attached.insert(route);
    }
    for (const auto& r : refs) {
        if (r.group == "" && r.kind == "Service" && r.ns == route.ns) {
            uses_.push_back(BackendUse{gi, r.ns, r.name, r.port});
        }
    }
    return {"Accepted", true, "Accepted", "Route accepted"};
}

void Pass::readRoutes() {
    for (const auto& [key, obj] : objects_) {
        if (key.group != kGatewayGroup || (key.kind != "HTTPRoute" && key.kind != "TCPRoute")) {
            continue;
        }
        const Json& spec = path(*obj, {"spec"});
        std::int64_t generation = integer(path(*obj, {"metadata"}), "generation");
        std::vector<BackendRef> refs = backendRefsOf(spec, key.ns);
        Cond resolved = routeResolvedRefs(refs, key.ns);
        std::string unsupported = key.kind == "HTTPRoute" ? unsupportedMatching(spec) : "";

        const Json& prevParents = array(path(*obj, {"status"}), "parents");
        std::vector<Json> ours;
        for (const auto& parent : array(spec, "parentRefs")) {
            if (text(parent, "group", kGatewayGroup) != kGatewayGroup ||
                text(parent, "kind", "Gateway") != "Gateway") {
                continue;
            }
            auto gi = gatewayIndex_.find({text(parent, "namespace", key.ns), text(parent, "name")});
            if (gi == gatewayIndex_.end()) {
                continue;
            }
            Cond accepted = attachToParent(key, parent, refs, unsupported, gi->second);
            // Previous conditions of the same parentRef, for lastTransitionTime.
            const Json* prevConds = nullptr;
            for (const auto& pp : prevParents) {
                if (text(pp, "controllerName") == config_.controllerName &&
                    path(pp, {"parentRef"}) == parent) {
                    prevConds = member(pp, "conditions");
                }
            }
            Json entry = Json::object();
            entry["parentRef"] = parent;
            entry["controllerName"] = config_.controllerName;
            entry["conditions"] = conditionsJson({accepted, resolved}, generation, prevConds, now_);
            ours.push_back(std::move(entry));
        }
        bool hadOurs = std::any_of(prevParents.begin(), prevParents.end(), [&](const Json& pp) {
            return text(pp, "controllerName") == config_.controllerName;
        });
        // An empty list is still written when we had entries: they must go.
        if (!ours.empty() || hadOurs) {
            routeParents_[key] = std::move(ours);
        }
    }
}

std::set<std::size_t> Pass::gatewaysReaching(const std::string& ns, const std::string& name,
                                             std::optional<int> port) const {
    std::set<std::size_t> out;
    for (const auto& u : uses_) {
        if (u.ns == ns && u.service == name && (!port || u.port == port)) {
            out.insert(u.gateway);
        }
    }
    return out;
}

void Pass::resolveCaRefs(Policy& p) const {
    const Json& validation = path(*p.obj, {"spec", "validation"});
    const Json& refs = array(validation, "caCertificateRefs");
    std::string wellKnown = text(validation, "wellKnownCACertificates");
    if (!refs.empty()) {
        std::vector<std::string> problems;
        bool kindProblem = false;
        std::size_t good = 0;
        for (const auto& ref : refs) {
            std::string group = text(ref, "group");
            std::string kind = text(ref, "kind");
            std::string name = text(ref, "name");
            if (group != "" || (kind != "ConfigMap" && kind != "Secret")) {
                kindProblem = true;
                problems.push_back("unsupported kind " +
                                   (group.empty() ? kind : group + "/" + kind) +
                                   " for CA certificate reference " + name +
                                   " (supported: core ConfigMap and Secret)");
                continue;
            }
            std::string what = kind + " " + p.key.ns + "/" + name;
            const Json* obj = lookup("", kind, p.key.ns, name);
            if (obj == nullptr) {
                problems.push_back(what + " not found");
                continue;
            }
            auto content = dataKey(*obj, kind, "ca.crt", what);
            if (!content) {
                problems.push_back(content.error().context());
                continue;
            }
            std::string pem = std::move(*content);
            auto certs = tls::inspectPemBundle(pem);
            if (!certs) {
                problems.push_back(what + ": malformed PEM: " + certs.error().context());
                continue;
            }
            if (pem.back() != '\n') {
                pem.push_back('\n');
            }
            p.base.caBundlePem += pem;
            ++good;
        }
        if (!problems.empty()) {
            p.noValidCa = good == 0;
            p.resolvedRefs =
                Cond{"ResolvedRefs", false, kindProblem ? "InvalidKind" : "InvalidCACertificateRef",
                     join(problems, "; ")};
            p.failClosedReason = p.noValidCa ? "no valid CA certificate: " + join(problems, "; ")
                                             : "invalid CA certificate reference (the whole policy "
                                               "fails closed): " +
                                                   join(problems, "; ");
        }
        return;
    }
    if (wellKnown == "System") {
        p.base.systemTrust = true;
        p.resolvedRefs.message = "Using the system trust store";
        return;
    }
    p.resolvedRefs.message = "no CA certificate references to resolve";
    p.invalid.push_back(wellKnown.empty()
                            ? "neither caCertificateRefs nor wellKnownCACertificates is set"
                            : "wellKnownCACertificates \"" + wellKnown +
                                  "\" is not supported (only System is)");
}

// Targets are resolved against the policy's own namespace. When a Service (or its named
// port) does not exist there is no attachment to derive ancestors from, yet the spec wants
// TargetNotFound visible: the ancestors of such a target are the implemented Gateways whose
// accepted Routes name the Service anyway (the Route itself then reports BackendNotFound).
void Pass::resolveTargets(Policy& p) const {
    std::vector<std::string> ignored;
    for (const auto& t : array(path(*p.obj, {"spec"}), "targetRefs")) {
        Target target;
        target.group = text(t, "group");
        target.kind = text(t, "kind");
        target.name = text(t, "name");
        target.section = text(t, "sectionName");
        if (target.group != "" || target.kind != "Service") {
            ignored.push_back(
                (target.group.empty() ? target.kind : target.group + "/" + target.kind) + " " +
                target.name);
            continue;
        }
        std::string what = "Service " + p.key.ns + "/" + target.name;
        auto svc = services_.find({p.key.ns, target.name});
        if (svc == services_.end()) {
            target.state = Target::State::NotFound;
            target.problem = "target " + what + " not found";
            target.gateways = gatewaysReaching(p.key.ns, target.name, std::nullopt);
        } else if (!target.section.empty()) {
            const ServicePort* port = svc->second.byName(target.section);
            if (port == nullptr) {
                target.state = Target::State::NotFound;
                target.problem = "target " + what + " has no port named " + target.section;
                target.gateways = gatewaysReaching(p.key.ns, target.name, std::nullopt);
            } else {
                if (port->protocol != "TCP") {
                    target.state = Target::State::NotTcp;
                    target.problem = "target " + what + " port " + target.section + " is " +
                                     port->protocol + ": TLS is only originated over TCP";
                }
                target.gateways = gatewaysReaching(p.key.ns, target.name, port->port);
            }
        } else {
            const auto& ports = svc->second.ports;
            if (!ports.empty() && std::all_of(ports.begin(), ports.end(), [](const auto& sp) {
                    return sp.protocol != "TCP";
                })) {
                target.state = Target::State::NotTcp;
                target.problem = "no port of target " + what +
                                 " is TCP (UDP or SCTP only): TLS is only originated over TCP";
            }
            target.gateways = gatewaysReaching(p.key.ns, target.name, std::nullopt);
        }
        p.targets.push_back(std::move(target));
    }
    if (!ignored.empty()) {
        p.notes.push_back("ignored targets of unsupported kind: " + join(ignored, ", "));
    }
}

void Pass::readPolicies() {
    for (const auto& [key, obj] : objects_) {
        if (key.group != kGatewayGroup || key.kind != "BackendTLSPolicy") {
            continue;
        }
        Policy p;
        p.obj = obj;
        p.key = key;
        p.id = key.ns + "/" + key.name;
        const Json& meta = path(*obj, {"metadata"});
        p.generation = integer(meta, "generation");
        p.created = parseRfc3339(text(meta, "creationTimestamp")).value_or(kUnknownCreation);
        p.base.policy = p.id;
        const Json& validation = path(*obj, {"spec", "validation"});
        p.base.sni = text(validation, "hostname");
        if (isIpLiteral(p.base.sni)) {
            p.invalid.push_back("validation.hostname \"" + p.base.sni +
                                "\" is an IP address; a DNS name is required");
        }
        for (const auto& san : array(validation, "subjectAltNames")) {
            if (text(san, "type") == "URI") {
                p.base.subjectAltNames.push_back({tls::SanMatcher::Type::Uri, text(san, "uri")});
            } else {
                p.base.subjectAltNames.push_back(
                    {tls::SanMatcher::Type::Hostname, text(san, "hostname")});
            }
        }
        resolveCaRefs(p);
        auto options = applyPolicyOptions(path(*obj, {"spec", "options"}), p.base);
        p.invalid.insert(p.invalid.end(), options.invalid.begin(), options.invalid.end());
        if (!options.ignored.empty()) {
            p.notes.push_back("ignored options of other implementations: " +
                              join(options.ignored, ", "));
        }
        resolveTargets(p);
        policies_.push_back(std::move(p));
    }
}

// Section 3: per (namespace, group, kind, name, sectionName) the oldest policy wins, ties
// go to the first namespace/name. A whole-Service key and a port key never collide.
void Pass::resolveConflicts() {
    using Key = std::tuple<std::string, std::string, std::string, std::string, std::string>;
    std::map<Key, std::vector<std::pair<std::size_t, std::size_t>>> byKey;
    for (std::size_t pi = 0; pi < policies_.size(); ++pi) {
        for (std::size_t ti = 0; ti < policies_[pi].targets.size(); ++ti) {
            const Target& t = policies_[pi].targets[ti];
            byKey[{policies_[pi].key.ns, t.group, t.kind, t.name, t.section}].push_back({pi, ti});
        }
    }
    for (auto& [key, claims] : byKey) {
        auto winner = *std::min_element(claims.begin(), claims.end(), [&](auto a, auto b) {
            const Policy& pa = policies_[a.first];
            const Policy& pb = policies_[b.first];
            return std::tie(pa.created, pa.id) < std::tie(pb.created, pb.id);
        });
        for (auto [pi, ti] : claims) {
            if (pi != winner.first) {
                policies_[pi].targets[ti].conflictWinner = policies_[winner.first].id;
            }
        }
    }
}

// The ancestor entry is per Gateway while problems are per target: a Gateway reached
// through several targets of the policy shows the worst of them, in the order Conflicted,
// TargetNotFound, Invalid, NoValidCACertificate; the message lists every problem. So a
// policy that loses one target but wins another is Conflicted exactly on the Gateways
// reached through the lost target.
Cond Pass::acceptedFor(const Policy& p, std::size_t gateway) const {
    std::vector<std::string> conflicted;
    std::vector<std::string> notFound;
    std::vector<std::string> invalid = p.invalid;
    for (const auto& t : p.targets) {
        if (t.gateways.count(gateway) == 0) {
            continue;
        }
        std::string target =
            "Service " + p.key.ns + "/" + t.name + (t.section.empty() ? "" : " port " + t.section);
        if (!t.conflictWinner.empty()) {
            conflicted.push_back("conflicts with BackendTLSPolicy " + t.conflictWinner +
                                 ", which takes precedence (older, or same age and first by "
                                 "namespace/name) for " +
                                 target);
        }
        if (t.state == Target::State::NotFound) {
            notFound.push_back(t.problem);
        } else if (t.state == Target::State::NotTcp) {
            invalid.push_back(t.problem);
        }
    }
    std::vector<std::string> all = conflicted;
    all.insert(all.end(), notFound.begin(), notFound.end());
    all.insert(all.end(), invalid.begin(), invalid.end());
    if (p.noValidCa) {
        all.push_back("no valid CA certificate: " + p.resolvedRefs.message);
    }
    std::string message = join(all, "; ");
    if (!p.notes.empty()) {
        message += (message.empty() ? "" : "; ") + join(p.notes, "; ");
    }
    if (!conflicted.empty()) {
        return {"Accepted", false, "Conflicted", message};
    }
    if (!notFound.empty()) {
        return {"Accepted", false, "TargetNotFound", message};
    }
    if (!invalid.empty()) {
        return {"Accepted", false, "Invalid", message};
    }
    if (p.noValidCa) {
        return {"Accepted", false, "NoValidCACertificate", message};
    }
    return {"Accepted", true, "Accepted",
            "Policy accepted" + (p.notes.empty() ? std::string() : "; " + join(p.notes, "; "))};
}

// Every (Service, port) an accepted Route sends traffic to, with the Gateways reaching it
// (sorted, so the first is stable). Only TCP ports get a profile.
std::map<tls::BackendKey, std::set<std::size_t>> Pass::reachedBackends() const {
    std::map<tls::BackendKey, std::set<std::size_t>> backends;
    for (const auto& u : uses_) {
        auto svc = services_.find({u.ns, u.service});
        if (svc == services_.end() || !u.port) {
            continue;
        }
        const ServicePort* port = svc->second.tcpPort(*u.port);
        if (port == nullptr || port->port <= 0 || port->port > 65535) {
            continue;
        }
        backends[tls::BackendKey{u.ns, u.service, static_cast<std::uint16_t>(port->port)}].insert(
            u.gateway);
    }
    return backends;
}

// One spec per reached backend a policy governs: the port-specific winner, else the
// whole-Service winner; backends neither covers are forwarded without TLS.
std::vector<Pass::Planned> Pass::planProfiles() const {
    // Winners per (namespace, Service, sectionName or "" for the whole Service).
    std::map<std::tuple<std::string, std::string, std::string>, std::size_t> governs;
    for (std::size_t pi = 0; pi < policies_.size(); ++pi) {
        for (const auto& t : policies_[pi].targets) {
            if (t.conflictWinner.empty()) {
                governs[{policies_[pi].key.ns, t.name, t.section}] = pi;
            }
        }
    }
    std::vector<Planned> planned;
    for (const auto& [backend, gws] : reachedBackends()) {
        const ServicePort* port =
            services_.at({backend.ns, backend.service}).tcpPort(backend.port);
        auto it = governs.end();
        if (!port->name.empty()) {
            it = governs.find({backend.ns, backend.service, port->name});
        }
        if (it == governs.end()) {
            it = governs.find({backend.ns, backend.service, ""});
        }
        if (it == governs.end()) {
            continue;
        }
        const Policy& p = policies_[it->second];
        tls::ProfileSpec spec = p.base;
        spec.backend = backend;
        // Several Gateways may reach one backend with different client certificates; a
        // profile has one, so the first Gateway by namespace/name that has a valid one wins.
        for (std::size_t g : gws) {
            if (gateways_[g].clientCert.cert) {
                spec.clientCertificate = gateways_[g].clientCert.cert;
                break;
            }
        }
        if (!p.invalid.empty()) {
            spec.failClosedReason =
                "BackendTLSPolicy " + p.id + " is invalid: " + join(p.invalid, "; ");
        } else if (!p.failClosedReason.empty()) {
            spec.failClosedReason = "BackendTLSPolicy " + p.id + ": " + p.failClosedReason;
        }
        planned.push_back(Planned{it->second, std::move(spec), nullptr});
    }
    return planned;
}

// Errc::Invalid from the compiler is the policy's fault: it makes the policy Invalid.
void Pass::recordCompileRejection(std::size_t policy, const Error& err) {
    Policy& p = policies_[policy];
    // The context says what could not be honoured; the code's own text adds nothing.
    std::string msg = "the TLS profile cannot be compiled: " + err.context();
    if (std::find(p.invalid.begin(), p.invalid.end(), msg) == p.invalid.end()) {
        p.invalid.push_back(msg);
    }
}

// A policy whose profiles all fail closed for another reason (a bad CA ref keeps it
// Accepted) or that governs no reached backend has had its options checked by no compile;
// it would stay Accepted with settings that cannot be honoured. A throw-away compile of its
// spec settles that. Without trust material (no valid CA at all) there is nothing to
// compile; such a policy is Accepted=False already, as is one that lost every target it
// reaches a Gateway through (Conflicted), so neither pays for a compile. Internal failures of
// this check are not reported: no profile depends on it.
void Pass::checkUncompiledPolicies(const std::set<std::size_t>& checked,
                                   std::set<std::size_t>& rejected) {
    for (std::size_t pi = 0; pi < policies_.size(); ++pi) {
        const Policy& p = policies_[pi];
        bool relevant = std::any_of(p.targets.begin(), p.targets.end(), [](const Target& t) {
            return !t.gateways.empty() && t.conflictWinner.empty();
        });
        if (checked.count(pi) != 0 || !relevant || !p.invalid.empty() ||
            (p.base.caBundlePem.empty() && !p.base.systemTrust)) {
            continue;
        }
        auto compiled = tls::HandshakeProfile::compile(p.base, config_.engines);
        if (!compiled && compiled.error().code() == make_error_code(Errc::Invalid)) {
            recordCompileRejection(pi, compiled.error());
            rejected.insert(pi);
        }
    }
}

void Pass::buildProfiles(ReconcileOutput& out) {
    std::vector<Planned> planned = planProfiles();
    std::set<std::size_t> checked;   // policies whose spec a real compile has examined
    std::set<std::size_t> rejected;  // policies the compiler found Invalid
    for (auto& b : planned) {
        if (b.spec.failClosedReason.empty()) {
            checked.insert(b.policy);
        }
        auto compiled = tls::HandshakeProfile::compile(b.spec, config_.engines);
        if (compiled) {
            b.profile = std::move(*compiled);
            continue;
        }
        const Error& err = compiled.error();
        if (err.code() == make_error_code(Errc::Invalid)) {
            recordCompileRejection(b.policy, err);
            rejected.insert(b.policy);
        } else {
            out.internalErrors.push_back("backend " + b.spec.backend.ns + "/" +
                                         b.spec.backend.service + ":" +
                                         std::to_string(b.spec.backend.port) +
                                         " (BackendTLSPolicy " + b.spec.policy +
                                         "): " + err.message());
            b.profile = tls::HandshakeProfile::failClosed(
                b.spec, "internal error compiling the TLS profile: " + err.message());
        }
    }
    checkUncompiledPolicies(checked, rejected);
    // A policy the compiler rejects is Invalid as a whole: all its backends fail closed,
    // including those whose own compile succeeded.
    for (auto& b : planned) {
        if (rejected.count(b.policy) != 0) {
            const Policy& p = policies_[b.policy];
            b.profile = tls::HandshakeProfile::failClosed(
                b.spec, "BackendTLSPolicy " + p.id + " is invalid: " + join(p.invalid, "; "));
        }
        out.profiles.push_back(std::move(b.profile));
    }
}

// Programmed must not claim bound listeners before a dataplane binds them: a listener the
// dataplane has not reported on stays Pending.
constexpr const char* kNoDataplane = "listeners are not served yet: this build has no dataplane";

std::string hostPort(const std::string& address, int port) {
    return (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" +
           std::to_string(port);
}

// Ready endpoints of every EndpointSlice of `svc`, on the slice's port for `sp`: the slice
// port of the same name (both may be unnamed), else a slice's single unnamed port, else
// the Service port's numeric targetPort, else its port. FQDN slices are skipped: the
// dataplane dials addresses, it does not resolve names on the workers.
std::vector<route::Endpoint> Pass::endpointsOf(const Service& svc, const ServicePort& sp) const {
    std::vector<route::Endpoint> out;
    auto it = slices_.find({svc.ns, svc.name});
    if (it == slices_.end()) {
        return out;
    }
    for (const Json* slice : it->second) {
        if (text(*slice, "addressType") == "FQDN") {
            continue;
        }
        const Json& ports = array(*slice, "ports");
        std::optional<std::int64_t> number;
        for (const auto& p : ports) {
            if (text(p, "name") == sp.name && member(p, "port") != nullptr) {
                number = integer(p, "port");
                break;
            }
        }
        if (!number && ports.size() == 1 && text(ports[0], "name").empty() &&
            member(ports[0], "port") != nullptr) {
            number = integer(ports[0], "port");
        }
        if (!number) {
            number = sp.targetPort.value_or(sp.port);
        }
        if (*number <= 0 || *number > 65535) {
            continue;
        }
        for (const auto& e : array(*slice, "endpoints")) {
            const Json& ready = path(e, {"conditions", "ready"});
            if (ready.is_boolean() && !ready.get<bool>()) {
                continue;
            }
            for (const auto& a : array(e, "addresses")) {
                if (a.is_string() && isIpAddress(a.get<std::string>())) {
                    out.push_back({a.get<std::string>(), static_cast<std::uint16_t>(*number)});
                }
            }
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

// A (Service, port) named by several backendRefs of the listener's Routes is one backend
// whose weight is the sum of theirs: each reference asks for its share of the traffic.
// References the Route already reports (BackendNotFound, RefNotPermitted, InvalidKind) and
// ports that are not TCP carry no traffic here.
void Pass::buildListenerPlans(ReconcileOutput& out) const {
    std::map<tls::BackendKey, std::shared_ptr<const tls::HandshakeProfile>> profiles;
    for (const auto& p : out.profiles) {
        if (p) {
            profiles[p->spec().backend] = p;
        }
    }
    for (const auto& gw : gateways_) {
        for (const auto& l : gw.listeners) {
            if (!l.refusal.empty() || l.port <= 0 || l.port > 65535) {
                continue;
            }
            route::ListenerPlan plan;
            plan.id = route::ListenerId{"", gw.key.ns, gw.key.name, l.name};
            plan.protocol =
                l.protocol == "HTTP" ? route::ListenerProtocol::Http : route::ListenerProtocol::Tcp;
            plan.address = gw.address;
            plan.virtualAddresses = gw.virtualAddresses;
            plan.port = static_cast<std::uint16_t>(l.port);
            std::map<tls::BackendKey, route::Backend> backends;
            for (const auto& routeKey : l.attached) {
                const Json& route = *objects_.at(routeKey);
                for (const auto& r : backendRefsOf(path(route, {"spec"}), routeKey.ns)) {
                    if (r.group != "" || r.kind != "Service" || r.ns != routeKey.ns || !r.port ||
                        r.weight <= 0) {
                        continue;
                    }
                    auto svc = services_.find({r.ns, r.name});
                    if (svc == services_.end()) {
                        continue;
                    }
                    const ServicePort* sp = svc->second.tcpPort(*r.port);
                    if (sp == nullptr || sp->port <= 0 || sp->port > 65535) {
                        continue;
                    }
                    tls::BackendKey key{r.ns, r.name, static_cast<std::uint16_t>(sp->port)};
                    auto [it, fresh] = backends.try_emplace(key);
                    route::Backend& b = it->second;
                    if (fresh) {
                        b.key = key;
                        b.weight = 0;
                        if (!svc->second.externalName.empty()) {
                            b.externalName = svc->second.externalName;
                            b.externalPort = key.port;
                        } else {
                            b.endpoints = endpointsOf(svc->second, *sp);
                        }
                        if (auto p = profiles.find(key); p != profiles.end()) {
                            b.profile = p->second;
                        }
                    }
                    b.weight = static_cast<std::uint32_t>(
                        std::min<std::int64_t>(std::int64_t{b.weight} + r.weight, UINT32_MAX));
                }
            }
            for (auto& [key, b] : backends) {
                plan.backends.push_back(std::move(b));
            }
            out.listeners.push_back(std::move(plan));
        }
    }
    std::sort(out.listeners.begin(), out.listeners.end(),
              [](const route::ListenerPlan& a, const route::ListenerPlan& b) { return a.id < b.id; });
}

const route::ListenerState* Pass::stateOf(const Gateway& gw, const Listener& l) const {
    auto it = bound_.find({gw.key, l.name});
    return it == bound_.end() ? nullptr : &it->second;
}

Cond Pass::listenerProgrammed(const Gateway& gw, const Listener& l) const {
    const route::ListenerState* state = stateOf(gw, l);
    if (state == nullptr) {
        return {"Programmed", false, "Pending", kNoDataplane};
    }
    if (state->bound) {
        std::string message = gw.address.empty()
                                  ? "Listener is bound to port " + std::to_string(l.port) +
                                        " of the default bind address"
                                  : "Listener is bound to " + hostPort(gw.address, l.port);
        for (const auto& i : state->intercepted) {
            message += "; takes over " + hostPort(i.address, l.port) + " (" + join(i.modes, ", ") +
                       " mode)";
        }
        return {"Programmed", true, "Programmed", message};
    }
    return {"Programmed", false, "Invalid",
            state->message.empty() ? "the dataplane could not bind the listener"
                                   : state->message};
}

// Failed binds outrank listeners still waiting: a Gateway with one failed listener is not
// usable as requested whatever the others do.
Cond Pass::gatewayProgrammed(const Gateway& gw) const {
    std::vector<std::string> failed;
    std::vector<std::string> pending;
    std::vector<std::string> refused;
    std::size_t supported = 0;
    for (const auto& l : gw.listeners) {
        if (!l.refusal.empty()) {
            refused.push_back("listener " + l.name + ": " + l.refusal);
            continue;
        }
        ++supported;
        const route::ListenerState* state = stateOf(gw, l);
        if (state == nullptr) {
            pending.push_back(l.name);
        } else if (!state->bound) {
            failed.push_back("listener " + l.name + ": " +
                             (state->message.empty() ? "not bound" : state->message));
        }
    }
    if (supported == 0) {
        return {"Programmed", false, "Invalid",
                "no listener can be served: " + join(refused, "; ")};
    }
    if (!failed.empty()) {
        return {"Programmed", false, "AddressNotUsable", join(failed, "; ")};
    }
    if (pending.size() == supported) {
        return {"Programmed", false, "Pending", kNoDataplane};
    }
    if (!pending.empty()) {
        return {"Programmed", false, "Pending",
                "waiting for the dataplane to bind listeners: " + join(pending, ", ")};
    }
    return {"Programmed", true, "Programmed", "Every listener is bound"};
}

Json Pass::gatewayStatus(const Gateway& gw) const {
    std::int64_t generation = integer(path(*gw.obj, {"metadata"}), "generation");
    const Json& prev = path(*gw.obj, {"status"});
    Json status = Json::object();
    Cond resolved{"ResolvedRefs", true, "ResolvedRefs", "All references resolved"};
    if (!gw.clientCert.ok) {
        resolved = {"ResolvedRefs", false, "InvalidClientCertificateRef", gw.clientCert.message};
    }
    status["conditions"] = conditionsJson({{"Accepted", true, "Accepted", "Gateway accepted"},
                                           gatewayProgrammed(gw),
                                           resolved},
                                          generation, member(prev, "conditions"), now_);
    Json listeners = Json::array();
    for (const auto& l : gw.listeners) {
        const Json* prevConds = nullptr;
        for (const auto& pl : array(prev, "listeners")) {
            if (text(pl, "name") == l.name) {
                prevConds = member(pl, "conditions");
            }
        }
        Json entry = Json::object();
        entry["name"] = l.name;
        Json kinds = Json::array();
        std::vector<Cond> conds;
        if (l.protocol == "HTTP" || l.protocol == "TCP") {
            kinds.push_back(Json{{"group", kGatewayGroup},
                                 {"kind", l.protocol == "HTTP" ? "HTTPRoute" : "TCPRoute"}});
        }
        if (l.refusal.empty()) {
            conds = {{"Accepted", true, "Accepted", "Listener accepted"},
                     {"ResolvedRefs", true, "ResolvedRefs", "All references resolved"},
                     listenerProgrammed(gw, l)};
        } else {
            conds = {{"Accepted", false, l.refusalReason, l.refusal},
                     {"ResolvedRefs", true, "ResolvedRefs", "All references resolved"},
                     {"Programmed", false, "Invalid", l.refusal}};
        }
        entry["supportedKinds"] = std::move(kinds);
        entry["attachedRoutes"] = l.attached.size();
        entry["conditions"] = conditionsJson(conds, generation, prevConds, now_);
        listeners.push_back(std::move(entry));
    }
    status["listeners"] = std::move(listeners);
    // The virtual addresses some bound listener takes over: interception carries them.
    std::set<std::string> inUse;
    for (const auto& l : gw.listeners) {
        if (const route::ListenerState* state = stateOf(gw, l); state && state->bound) {
            for (const auto& i : state->intercepted) {
                inUse.insert(i.address);
            }
        }
    }
    Json addresses = Json::array();
    for (const auto& ip : gw.virtualAddresses) {
        if (inUse.contains(ip)) {
            addresses.push_back(Json{{"type", "IPAddress"}, {"value", ip}});
        }
    }
    if (!addresses.empty()) {
        status["addresses"] = std::move(addresses);
    }
    return status;
}

Json Pass::routeStatus(const Json& route, const std::vector<Json>& ours) const {
    Json parents = Json::array();
    for (const auto& pp : array(path(route, {"status"}), "parents")) {
        if (text(pp, "controllerName") != config_.controllerName) {
            parents.push_back(pp);
        }
    }
    for (const auto& entry : ours) {
        parents.push_back(entry);
    }
    return Json{{"parents", std::move(parents)}};
}

Json Pass::policyStatus(const Policy& p) const {
    Json ancestors = Json::array();
    const Json& prev = array(path(*p.obj, {"status"}), "ancestors");
    // Other controllers' entries come first and stay untouched; the list as a whole never
    // exceeds the schema's 16, so ours are what gets cut.
    for (const auto& a : prev) {
        if (text(a, "controllerName") != config_.controllerName &&
            ancestors.size() < kMaxAncestors) {
            ancestors.push_back(a);
        }
    }
    std::set<std::size_t> relevant;
    for (const auto& t : p.targets) {
        relevant.insert(t.gateways.begin(), t.gateways.end());
    }
    // gateways_ is sorted by namespace/name, and so is the set of indices into it.
    for (std::size_t g : relevant) {
        if (ancestors.size() >= kMaxAncestors) {
            break;
        }
        const Gateway& gw = gateways_[g];
        const Json* prevConds = nullptr;
        for (const auto& a : prev) {
            const Json& ref = path(a, {"ancestorRef"});
            if (text(a, "controllerName") == config_.controllerName &&
                text(ref, "name") == gw.key.name && text(ref, "namespace", p.key.ns) == gw.key.ns &&
                text(ref, "kind", "Gateway") == "Gateway") {
                prevConds = member(a, "conditions");
            }
        }
        Json entry = Json::object();
        entry["ancestorRef"] = Json{{"group", kGatewayGroup},
                                    {"kind", "Gateway"},
                                    {"namespace", gw.key.ns},
                                    {"name", gw.key.name}};
        entry["controllerName"] = config_.controllerName;
        entry["conditions"] =
            conditionsJson({acceptedFor(p, g), p.resolvedRefs}, p.generation, prevConds, now_);
        ancestors.push_back(std::move(entry));
    }
    return Json{{"ancestors", std::move(ancestors)}};
}

ReconcileOutput Pass::run() {
    ReconcileOutput out;
    readGateways();
    readRoutes();
    readPolicies();
    resolveConflicts();
    buildProfiles(out);
    buildListenerPlans(out);
    for (const auto& gw : gateways_) {
        out.statuses.push_back(StatusUpdate{gw.key, gatewayStatus(gw)});
    }
    for (const auto& [key, ours] : routeParents_) {
        out.statuses.push_back(StatusUpdate{key, routeStatus(*objects_.at(key), ours)});
    }
    for (const auto& p : policies_) {
        out.statuses.push_back(StatusUpdate{p.key, policyStatus(p)});
    }
    std::sort(out.statuses.begin(), out.statuses.end(),
              [](const StatusUpdate& a, const StatusUpdate& b) { return a.key < b.key; });
    return out;
}

}  // namespace

ReconcileOutput reconcile(const std::vector<Json>& objects, const ReconcilerConfig& config,
                          std::chrono::system_clock::time_point now, const ListenerStates& bound) {
    try {
        return Pass(objects, config, now, bound).run();
    } catch (const std::exception& e) {
        ReconcileOutput out;
        out.internalErrors.push_back(std::string("reconcile failed: ") + e.what());
        return out;
    } catch (...) {
        ReconcileOutput out;
        out.internalErrors.push_back("reconcile failed: unknown exception");
        return out;
    }
}

}  // namespace lastmile::ctrl
