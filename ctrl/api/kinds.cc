// SPDX-License-Identifier: Apache-2.0
// The served kinds and their schemas; descriptions paraphrase the Gateway API and Kubernetes docs.
#include "ctrl/api/kinds.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <utility>

namespace lastmile::ctrl {

namespace {

using schema::Field;
using schema::Node;
using schema::NodePtr;
using schema::Type;

// Patterns are matched against the whole value (std::regex_match), so they carry no anchors.
const std::string kDnsLabel = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const std::string kDnsSubdomain = kDnsLabel + "(\\." + kDnsLabel + ")*";
const std::string kDns1035Label = "[a-z]([-a-z0-9]*[a-z0-9])?";
const std::string kGatewayKind = "[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?";
const std::string kGatewayGroup = "(" + kDnsSubdomain + ")?";
const std::string kHostnameWildcard = "(\\*\\.)?" + kDnsSubdomain;
// IANA_SVC_NAME: at most 15 characters, lowercase alphanumerics and '-', at least one letter,
// no leading, trailing or doubled '-'.
const std::string kIanaSvcName = "(?=.*[a-z])(?!.*--)[a-z0-9]([a-z0-9-]*[a-z0-9])?";
// The name after the prefix is bounded like a label name (upstream's pattern): 1..63 characters.
const std::string kWellKnownCa =
    "System|" + kDnsSubdomain + "/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
// scheme "://" non-empty authority, then anything without whitespace: rejects urn: and spiffe:/x.
const std::string kUri = "[a-zA-Z][-a-zA-Z0-9+.]*://[^/?#\\s]+[^\\s]*";

const std::string kDnsLabelHelp =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character";
const std::string kDnsSubdomainHelp =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character";

NodePtr make(Node n) { return std::make_shared<const Node>(std::move(n)); }

NodePtr str(std::string desc, Node n = {}) {
    n.type = Type::String;
    n.description = std::move(desc);
    return make(std::move(n));
}

NodePtr enumStr(std::string desc, std::vector<std::string> values) {
    return str(std::move(desc), {.enumValues = std::move(values)});
}

NodePtr integer(std::string desc, std::optional<std::int64_t> min = std::nullopt,
                std::optional<std::int64_t> max = std::nullopt) {
    return make({.type = Type::Integer, .description = std::move(desc), .minimum = min,
                 .maximum = max});
}

NodePtr boolean(std::string desc) { return make({.type = Type::Boolean, .description = std::move(desc)}); }

NodePtr object(std::string desc, std::vector<Field> fields) {
    return make({.type = Type::Object, .description = std::move(desc), .fields = std::move(fields)});
}

NodePtr array(std::string desc, NodePtr items, std::optional<std::size_t> minItems = std::nullopt,
              std::optional<std::size_t> maxItems = std::nullopt) {
    return make({.type = Type::Array, .description = std::move(desc), .items = std::move(items),
                 .minItems = minItems, .maxItems = maxItems});
}

NodePtr stringMap(std::string desc, std::optional<std::size_t> maxEntries = std::nullopt,
                  NodePtr values = nullptr) {
    if (!values) {
        values = str("");
    }
    return make({.type = Type::Map, .description = std::move(desc), .items = std::move(values),
                 .maxItems = maxEntries});
}

Field req(std::string name, NodePtr node) { return Field{std::move(name), std::move(node), true}; }
Field opt(std::string name, NodePtr node) { return Field{std::move(name), std::move(node), false}; }

NodePtr port(std::string desc) { return integer(std::move(desc), 1, 65535); }

NodePtr dnsLabel(std::string desc, std::size_t max = 63) {
    return str(std::move(desc),
               {.maxLength = max, .pattern = kDnsLabel, .patternHelp = kDnsLabelHelp});
}

NodePtr dnsSubdomain(std::string desc) {
    return str(std::move(desc),
               {.maxLength = 253, .pattern = kDnsSubdomain, .patternHelp = kDnsSubdomainHelp});
}

// --- pieces every kind shares ---------------------------------------------------------------

Field apiVersionField() {
    return opt("apiVersion",
               str("APIVersion defines the versioned schema of this representation of an object. "
                   "Servers convert recognized schemas to the latest internal value and may reject "
                   "unrecognized values."));
}

Field kindField() {
    return opt("kind", str("Kind is a string value representing the REST resource this object "
                           "represents. It is written in CamelCase and cannot be updated."));
}

Field metadataField(bool dns1035Name) {
    NodePtr name =
        dns1035Name
            ? str("Name must be unique within a namespace. For a Service it is an RFC 1035 "
                  "label: at most 63 characters, starting with a letter.",
                  {.minLength = 1, .maxLength = 63, .pattern = kDns1035Label,
                   .patternHelp = "a DNS-1035 label must consist of lower case alphanumeric "
                                  "characters or '-', start with an alphabetic character, and "
                                  "end with an alphanumeric character"})
            : str("Name must be unique within a namespace and is required when creating "
                  "resources. It is a DNS-1123 subdomain of at most 253 characters and cannot be "
                  "updated.",
                  {.minLength = 1, .maxLength = 253, .pattern = kDnsSubdomain,
                   .patternHelp = kDnsSubdomainHelp});
    return opt(
        "metadata",
        object(
            "Standard object metadata: identity, labels and annotations, and the fields the "
            "server maintains.",
            {
                req("name", std::move(name)),
                opt("namespace",
                    str("Namespace defines the space within which each name must be unique. It "
                        "is a DNS-1123 label and defaults to \"default\" when empty.",
                        {.maxLength = 63, .pattern = "(" + kDnsLabel + ")?",
                         .patternHelp = kDnsLabelHelp})),
                opt("labels",
                    stringMap("Map of string keys and values that can be used to organize and "
                              "categorize (scope and select) objects. Keys are an optional "
                              "DNS-subdomain prefix and a name of at most 63 characters; values "
                              "are at most 63 characters.")),
                opt("annotations",
                    stringMap("Unstructured key value map stored with a resource that tools may "
                              "set to store and retrieve arbitrary metadata. It is not queryable.")),
                opt("uid", str("UID is the unique in time and space value for this object, "
                               "generated by the server on successful creation. Read-only.")),
                opt("resourceVersion",
                    str("An opaque value that represents the internal version of this object, "
                        "used for optimistic concurrency and change detection. Clients must "
                        "not interpret it; a stale value makes an update fail. Set by the "
                        "server.")),
                opt("generation",
                    integer("A sequence number representing a specific generation of the "
                            "desired state. Populated by the server; read-only.")),
                opt("creationTimestamp",
                    str("The time this object was created, in RFC 3339 form, UTC. Set by the "
                        "server; read-only.")),
            }));
}

Field statusField(std::string desc, std::vector<Field> fields = {}) {
    // Written by the controller. Admission accepts any content here and drops it; the fields
    // are declared for explain only.
    return opt("status", object(std::move(desc), std::move(fields)));
}

NodePtr conditions(std::string desc) {
    return array(
        std::move(desc),
        object("One aspect of the current state, in the Kubernetes condition form.",
               {
                   req("type", str("Type of the condition, e.g. Accepted or ResolvedRefs.")),
                   req("status", enumStr("Status of the condition.", {"True", "False", "Unknown"})),
                   opt("observedGeneration",
                       integer("The metadata.generation the condition was computed from.")),
                   req("lastTransitionTime",
                       str("When the condition last changed status, RFC 3339.")),
                   req("reason", str("A CamelCase reason for the condition's last transition.")),
                   req("message", str("A human-readable message with details of the transition.")),
               }),
        std::nullopt, 8);
}

NodePtr parentReference(std::string desc) {
    return object(std::move(desc),
                  {
                      opt("group", str("Group of the referent.")),
                      opt("kind", str("Kind of the referent.")),
                      opt("namespace", str("Namespace of the referent.")),
                      req("name", str("Name of the referent.")),
                      opt("sectionName", str("Name of a section within the referent.")),
                      opt("port", integer("Port of the referent.")),
                  });
}

NodePtr controllerName() {
    return str("The controller that wrote this status entry, in domain/path form "
               "(lastmile.dev/appliance).");
}

std::vector<Field> routeStatus() {
    return {opt("parents",
                array("The parents (Gateways) the Route is attached to, and the Route's status "
                      "with respect to each.",
                      object("Status of the Route with respect to one parent.",
                             {req("parentRef", parentReference("The parent this entry "
                                                               "describes.")),
                              req("controllerName", controllerName()),
                              opt("conditions", conditions("Accepted and ResolvedRefs of the "
                                                           "Route for this parent."))}),
                      std::nullopt, 32))};
}

NodePtr root(std::string desc, bool dns1035Name, std::vector<Field> body) {
    std::vector<Field> fields{apiVersionField(), kindField(), metadataField(dns1035Name)};
    for (auto& f : body) {
        fields.push_back(std::move(f));
    }
    return object(std::move(desc), std::move(fields));
}

// --- Gateway API common types -------------------------------------------------------------

NodePtr groupNode(std::string desc) {
    return str(std::move(desc),
               {.maxLength = 253, .pattern = kGatewayGroup, .patternHelp = kDnsSubdomainHelp});
}

NodePtr kindNode(std::string desc) {
    return str(std::move(desc),
               {.minLength = 1, .maxLength = 63, .pattern = kGatewayKind,
                .patternHelp = "a kind must start with a letter and consist of alphanumeric "
                               "characters or '-', ending with an alphanumeric character"});
}

NodePtr objectName(std::string desc) {
    return str(std::move(desc), {.minLength = 1, .maxLength = 253});
}

NodePtr sectionName(std::string desc) {
    return str(std::move(desc), {.minLength = 1, .maxLength = 253, .pattern = kDnsSubdomain,
                                 .patternHelp = kDnsSubdomainHelp});
}

NodePtr namespaceNode(std::string desc) {
    return str(std::move(desc), {.minLength = 1, .maxLength = 63, .pattern = kDnsLabel,
                                 .patternHelp = kDnsLabelHelp});
}

NodePtr hostnameNode(std::string desc) {
    return str(std::move(desc),
               {.minLength = 1, .maxLength = 253, .pattern = kHostnameWildcard,
                .patternHelp = "a hostname must be a lowercase RFC 1123 subdomain, optionally "
                               "prefixed by a wildcard label \"*.\""});
}

NodePtr parentRefs() {
    return array(
        "References to the resources (usually Gateways) a Route wants to be attached to. The "
        "Route is only used by a listener that also allows it.",
        object("A reference to a parent resource, usually a Gateway.",
               {
                   opt("group", groupNode("Group of the referent. Defaults to "
                                          "\"gateway.networking.k8s.io\".")),
                   opt("kind", kindNode("Kind of the referent. Defaults to \"Gateway\".")),
                   opt("namespace", namespaceNode("Namespace of the referent. Defaults to the "
                                                  "namespace of the Route.")),
                   req("name", objectName("Name of the referent.")),
                   opt("sectionName",
                       sectionName("Name of a section within the target resource: for a "
                                   "Gateway, a listener name. When unset the Route attaches to "
                                   "every listener that allows it.")),
                   opt("port", port("Network port the Route targets: attaches to every listener "
                                    "of the Gateway on this port that allows the Route.")),
               }),
        std::nullopt, 32);
}

NodePtr backendRefs() {
    return array(
        "The backends (Services) where matching connections or requests are sent. With several "
        "entries, traffic is split by weight.",
        object("A reference to a backend, by default a Service port.",
               {
                   opt("group", groupNode("Group of the referent; \"\" (core) by default.")),
                   opt("kind", kindNode("Kind of the referent; \"Service\" by default.")),
                   req("name", objectName("Name of the referent.")),
                   opt("namespace", namespaceNode("Namespace of the backend. Defaults to the "
                                                  "namespace of the Route.")),
                   opt("port", port("Destination port number on the referent. Required when the "
                                    "referent is a Service.")),
                   opt("weight", integer("Proportion of traffic forwarded to this backend, "
                                         "relative to the sum of all weights of the rule. "
                                         "Defaults to 1; 0 sends no traffic.",
                                         0, 1000000)),
               }),
        std::nullopt, 16);
}

NodePtr ruleName() {
    return sectionName("Optional name of the rule; it must be unique within the Route.");
}

// --- kinds --------------------------------------------------------------------------------

KindInfo gateway() {
    auto listener = object(
        "A listener: a logical endpoint where the Gateway accepts connections.",
        {
            req("name", dnsLabel("Name of the listener; unique within the Gateway.")),
            opt("hostname",
                hostnameNode("Hostname the listener matches (for HTTP, HTTPS and TLS). When "
                             "unset, all hostnames match. A leading \"*.\" is a wildcard.")),
            req("port", port("Network port the listener accepts connections on.")),
            req("protocol", enumStr("Network protocol the listener expects.",
                                    {"TCP", "HTTP", "HTTPS", "TLS", "UDP"})),
            opt("allowedRoutes",
                object("Which Routes may attach to this listener.",
                       {
                           opt("namespaces",
                               object("Namespaces from which Routes may attach.",
                                      {opt("from", enumStr("Where Routes may come from: All "
                                                           "namespaces, the Same namespace as "
                                                           "the Gateway, or those matching a "
                                                           "Selector. Defaults to Same.",
                                                           {"All", "Same", "Selector"}))})),
                           opt("kinds",
                               array("Kinds of Routes allowed to attach. When unset, the kinds "
                                     "that fit the listener's protocol are allowed.",
                                     object("A group and kind of Route.",
                                            {opt("group", groupNode("Group of the Route kind.")),
                                             req("kind", kindNode("Kind of the Route."))}),
                                     std::nullopt, 8)),
                       })),
        });
    auto address = object(
        "An address the Gateway is requested to bind to.",
        {
            opt("type", enumStr("Type of the address: IPAddress (default) or Hostname.",
                                {"IPAddress", "Hostname"})),
            req("value", str("The address; for IPAddress an IPv4 or IPv6 literal.",
                             {.minLength = 1, .maxLength = 253})),
        });
    auto tls = object(
        "TLS settings that apply to the Gateway as a whole.",
        {opt("backend",
             object("TLS settings for connections from the Gateway to backends.",
                    {opt("clientCertificateRef",
                         object("A reference to a kubernetes.io/tls Secret holding the "
                                "certificate and key the Gateway presents to backends that "
                                "request a client certificate.",
                                {
                                    opt("group", groupNode("Group of the referent; \"\" (core) "
                                                           "by default.")),
                                    opt("kind", kindNode("Kind of the referent; \"Secret\" by "
                                                         "default.")),
                                    req("name", objectName("Name of the referent.")),
                                    opt("namespace", namespaceNode("Namespace of the referent; "
                                                                   "the Gateway's by default.")),
                                }))}))});
    auto spec = object(
        "Desired state of the Gateway: its class, listeners and addresses.",
        {
            req("gatewayClassName",
                str("Name of the GatewayClass this Gateway belongs to; the controller that "
                    "implements the class manages the Gateway.",
                    {.minLength = 1, .maxLength = 253})),
            req("listeners", array("Logical endpoints bound on the Gateway's addresses. At "
                                   "least one is required.",
                                   listener, 1, 64)),
            opt("addresses", array("Addresses requested for this Gateway.", address,
                                   std::nullopt, 16)),
            opt("tls", tls),
        });
    return KindInfo{
        .group = "gateway.networking.k8s.io",
        .versions = {"v1"},
        .kind = "Gateway",
        .plural = "gateways",
        .singular = "gateway",
        .shortNames = {"gtw"},
        .description = "Gateway represents an instance of a service-traffic handling "
                       "infrastructure by binding Listeners to a set of IP addresses.",
        .schema = root("Gateway represents an instance of a service-traffic handling "
                       "infrastructure by binding Listeners to a set of IP addresses.",
                       false,
                       {req("spec", spec),
                        statusField(
                            "Current state of the Gateway, written by the controller.",
                            {opt("addresses",
                                 array("Addresses the Gateway is bound to.",
                                       object("A bound address.",
                                              {opt("type", str("Type of the address.")),
                                               req("value", str("The address."))}))),
                             opt("conditions", conditions("Accepted and Programmed of the "
                                                          "Gateway, and ResolvedRefs of its "
                                                          "backend client certificate.")),
                             opt("listeners",
                                 array("Status of each listener.",
                                       object("Status of one listener.",
                                              {req("name", str("Name of the listener.")),
                                               req("attachedRoutes",
                                                   integer("How many Routes are attached to "
                                                           "the listener.")),
                                               opt("supportedKinds",
                                                   array("Route kinds the listener supports.",
                                                         object("A group and kind.",
                                                                {opt("group", str("Group.")),
                                                                 req("kind", str("Kind."))}))),
                                               opt("conditions",
                                                   conditions("Conditions of the "
                                                              "listener."))})))})}),
    };
}

KindInfo tcpRoute() {
    auto spec = object(
        "Desired state of the TCPRoute.",
        {
            opt("parentRefs", parentRefs()),
            req("rules", array("Rules for forwarding TCP connections.",
                               object("A rule: where matching connections are forwarded.",
                                      {opt("name", ruleName()), opt("backendRefs", backendRefs())}),
                               1, 16)),
        });
    std::string desc = "TCPRoute forwards TCP connections from a Gateway listener to backends.";
    return KindInfo{
        .group = "gateway.networking.k8s.io",
        .versions = {"v1alpha2"},
        .kind = "TCPRoute",
        .plural = "tcproutes",
        .singular = "tcproute",
        .shortNames = {},
        .description = desc,
        .schema = root(desc, false,
                       {req("spec", spec), statusField("Current state of the TCPRoute.", routeStatus())}),
    };
}

KindInfo httpRoute() {
    auto match = object(
        "Conditions a request must meet to match the rule. lastmile supports only catch-all "
        "matches for now: no path, or PathPrefix \"/\".",
        {opt("path",
             object("An HTTP request path matcher.",
                    {opt("type", enumStr("How to match the path. Defaults to PathPrefix.",
                                         {"Exact", "PathPrefix", "RegularExpression"})),
                     opt("value", str("The path to match against. Defaults to \"/\".",
                                      {.maxLength = 1024}))}))});
    auto spec = object(
        "Desired state of the HTTPRoute.",
        {
            opt("parentRefs", parentRefs()),
            opt("hostnames", array("Hostnames matched against the HTTP Host header.",
                                   hostnameNode("A hostname, optionally with a leading \"*.\" "
                                                "wildcard label."),
                                   std::nullopt, 16)),
            opt("rules",
                array("Rules: request matchers and the backends matching requests go to.",
                      object("A rule: matches and backends.",
                             {opt("name", ruleName()),
                              opt("matches",
                                  array("Conditions for matching the rule against requests. "
                                        "When absent every request matches.",
                                        match, std::nullopt, 64)),
                              opt("backendRefs", backendRefs())}),
                      std::nullopt, 16)),
        });
    std::string desc =
        "HTTPRoute provides a way to route HTTP requests from a Gateway listener to backends.";
    return KindInfo{
        .group = "gateway.networking.k8s.io",
        .versions = {"v1"},
        .kind = "HTTPRoute",
        .plural = "httproutes",
        .singular = "httproute",
        .shortNames = {},
        .description = desc,
        .schema = root(desc, false,
                       {req("spec", spec), statusField("Current state of the HTTPRoute.", routeStatus())}),
    };
}

KindInfo service() {
    auto servicePort = object(
        "A port the Service exposes.",
        {
            opt("name", dnsLabel("Name of this port within the Service; a DNS label. Required "
                                 "and unique when the Service has more than one port.")),
            opt("protocol", enumStr("IP protocol of this port. Defaults to TCP.",
                                    {"TCP", "UDP", "SCTP"})),
            opt("appProtocol",
                str("Application protocol of this port, used as a hint by implementations "
                    "(an IANA service name or a domain-prefixed name).",
                    {.maxLength = 253})),
            req("port", port("The port this Service exposes.")),
            opt("targetPort",
                make({.type = Type::Integer,
                      .description = "Number or name of the port to access on the pods "
                                     "targeted by the Service: an integer 1..65535 or an "
                                     "IANA_SVC_NAME. Defaults to the value of port.",
                      .maxLength = 15,
                      .pattern = kIanaSvcName,
                      .patternHelp = "must be an IANA_SVC_NAME: at most 15 lowercase "
                                     "alphanumerics or '-', with at least one letter, and no "
                                     "leading, trailing or adjacent '-'",
                      .minimum = 1,
                      .maximum = 65535})),
        });
    auto spec = object(
        "Behavior of the Service.",
        {
            opt("type", enumStr("How the Service is exposed. Defaults to ClusterIP. "
                                "ExternalName maps the Service to the DNS name in "
                                "externalName.",
                                {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"})),
            opt("selector",
                stringMap("Route traffic to pods with labels matching this selector.")),
            opt("clusterIP", str("IP address of the Service, \"None\" for a headless Service, "
                                 "or empty to have one allocated.",
                                 {.maxLength = 64})),
            // The API server strips one trailing dot before checking the subdomain, so a
            // fully qualified name is accepted; admission checks the 253 bound without it.
            opt("externalName",
                str("External DNS name this Service resolves to (a lowercase RFC 1123 "
                    "hostname, optionally fully qualified with a trailing dot). Required when "
                    "type is ExternalName.",
                    {.maxLength = 254, .pattern = kDnsSubdomain + "\\.?",
                     .patternHelp = kDnsSubdomainHelp})),
            opt("ports", array("The ports the Service exposes.", servicePort)),
        });
    std::string desc =
        "Service is a named abstraction of a backend: its ports, and either a selector over "
        "endpoints or an external DNS name.";
    return KindInfo{
        .group = "",
        .versions = {"v1"},
        .kind = "Service",
        .plural = "services",
        .singular = "service",
        .shortNames = {"svc"},
        .description = desc,
        .schema = root(desc, true, {opt("spec", spec), statusField("Current status of the Service.")}),
    };
}

KindInfo endpointSlice() {
    auto endpoint = object(
        "A single logical backend.",
        {
            req("addresses", array("Addresses of this endpoint, interpreted per the slice's "
                                   "addressType.",
                                   str("An address.", {.maxLength = 253}), 1, 100)),
            opt("conditions",
                object("Current state of the endpoint.",
                       {opt("ready", boolean("Whether the endpoint is ready to receive traffic.")),
                        opt("serving", boolean("Whether the endpoint can serve traffic, "
                                               "regardless of termination.")),
                        opt("terminating", boolean("Whether the endpoint is terminating."))})),
            opt("hostname", dnsLabel("Hostname of this endpoint; a DNS label.")),
            opt("nodeName", dnsSubdomain("Name of the node hosting this endpoint.")),
            opt("zone", str("Zone this endpoint is in.", {.maxLength = 253})),
        });
    auto endpointPort = object(
        "A port served by the endpoints of the slice.",
        {
            opt("name", str("Name of this port; must match a port name of the Service, and be "
                            "empty or a DNS label.",
                            {.maxLength = 63, .pattern = "(" + kDnsLabel + ")?",
                             .patternHelp = kDnsLabelHelp})),
            opt("protocol", enumStr("IP protocol of this port. Defaults to TCP.",
                                    {"TCP", "UDP", "SCTP"})),
            opt("port", port("The port number of the endpoint.")),
            opt("appProtocol", str("Application protocol of this port.", {.maxLength = 253})),
        });
    std::string desc =
        "EndpointSlice represents a subset of the endpoints that implement a Service; it is "
        "linked to its Service by the label kubernetes.io/service-name.";
    return KindInfo{
        .group = "discovery.k8s.io",
        .versions = {"v1"},
        .kind = "EndpointSlice",
        .plural = "endpointslices",
        .singular = "endpointslice",
        .shortNames = {},
        .description = desc,
        .schema = root(desc, false,
                       {
                           req("addressType", enumStr("Type of address carried by this slice: "
                                                      "IPv4, IPv6 or FQDN.",
                                                      {"IPv4", "IPv6", "FQDN"})),
                           opt("endpoints", array("A list of unique endpoints in this slice.",
                                                  endpoint, std::nullopt, 1000)),
                           opt("ports", array("Network ports exposed by each endpoint of the "
                                              "slice.",
                                              endpointPort, std::nullopt, 100)),
                       }),
    };
}

KindInfo configMap() {
    std::string desc = "ConfigMap holds configuration data for other objects to consume.";
    return KindInfo{
        .group = "",
        .versions = {"v1"},
        .kind = "ConfigMap",
        .plural = "configmaps",
        .singular = "configmap",
        .shortNames = {"cm"},
        .description = desc,
        .schema = root(
            desc, false,
            {
                opt("data", stringMap("Configuration data (UTF-8). Keys consist of "
                                      "alphanumeric characters, '-', '_' or '.'. A CA bundle "
                                      "for BackendTLSPolicy lives under ca.crt.")),
                opt("binaryData",
                    stringMap("Binary data, base64-encoded. Keys follow the rules of data and "
                              "must not also appear in data.")),
                opt("immutable", boolean("If true, the data cannot be updated.")),
            }),
    };
}

KindInfo secret() {
    std::string desc =
        "Secret holds secret data of a certain type, such as a TLS certificate and key.";
    return KindInfo{
        .group = "",
        .versions = {"v1"},
        .kind = "Secret",
        .plural = "secrets",
        .singular = "secret",
        .shortNames = {},
        .description = desc,
        .schema = root(
            desc, false,
            {
                opt("type", str("Used to facilitate programmatic handling of secret data. "
                                "kubernetes.io/tls requires the keys tls.crt and tls.key.",
                                {.maxLength = 253})),
                opt("data", stringMap("Secret data; values are base64-encoded. Keys consist of "
                                      "alphanumeric characters, '-', '_' or '.'.")),
                opt("stringData",
                    stringMap("Write-only convenience: non-binary secret data in plain text, "
                              "merged into data on write (overriding keys present in both).")),
                opt("immutable", boolean("If true, the data cannot be updated.")),
            }),
    };
}

KindInfo backendTlsPolicy() {
    auto targetRef = object(
        "Identifies an API object to apply the policy to, optionally one section of it.",
        {
            req("group", groupNode("Group of the target resource; \"\" for the core group.")),
            req("kind", kindNode("Kind of the target resource, e.g. Service.")),
            req("name", objectName("Name of the target resource.")),
            opt("sectionName",
                sectionName("Name of a section within the target: a Service port name, a "
                            "Gateway listener or an HTTPRoute rule. When unset, the policy "
                            "targets the entire resource.")),
        });
    auto caRef = object(
        "A reference to an object holding a PEM-encoded CA certificate bundle under the key "
        "ca.crt, in the policy's namespace.",
        {
            req("group", groupNode("Group of the referent; \"\" for the core group.")),
            req("kind", kindNode("Kind of the referent: ConfigMap (or Secret in lastmile).")),
            req("name", objectName("Name of the referent.")),
        });
    auto san = object(
        "A Subject Alternative Name the backend certificate may carry.",
        {
            req("type", enumStr("Which kind of SAN this is: Hostname or URI.", {"Hostname", "URI"})),
            opt("hostname",
                hostnameNode("The DNS SAN to match; required when type is Hostname, forbidden "
                             "otherwise. A leading \"*.\" matches only a literal wildcard SAN.")),
            opt("uri", str("The URI SAN to match, in scheme://authority form (e.g. a SPIFFE "
                           "ID); required when type is URI, forbidden otherwise.",
                           {.minLength = 1, .maxLength = 253, .pattern = kUri,
                            .patternHelp = "must be an absolute URI of the form "
                                           "scheme://authority[/path]"})),
        });
    auto validation = object(
        "Backend TLS validation configuration: which CA certificates to trust and which "
        "hostname the backend certificate must match.",
        {
            opt("caCertificateRefs",
                array("One or more references to objects holding a PEM-encoded CA certificate "
                      "bundle used to validate the TLS handshake with the backend. Exactly one "
                      "of caCertificateRefs or wellKnownCACertificates must be set.",
                      caRef, std::nullopt, 8)),
            opt("wellKnownCACertificates",
                str("Set to System to trust the system CA certificates in the handshake. "
                    "Mutually exclusive with caCertificateRefs.",
                    {.maxLength = 253, .pattern = kWellKnownCa,
                     .patternHelp = "must be \"System\" or a domain-prefixed name "
                                    "(example.com/name)"})),
            req("hostname",
                str("Hostname used as the SNI to connect to the backend and, unless "
                    "subjectAltNames is set, to authenticate the certificate the backend "
                    "serves. No wildcards, no uppercase, no trailing dot.",
                    {.minLength = 1, .maxLength = 253, .pattern = kDnsSubdomain,
                     .patternHelp = kDnsSubdomainHelp})),
            opt("subjectAltNames",
                array("One or more Subject Alternative Names; when set, the backend certificate "
                      "must match at least one of them, and hostname is used only as SNI.",
                      san, std::nullopt, 5)),
        });
    auto spec = object(
        "Desired state of the BackendTLSPolicy.",
        {
            req("targetRefs",
                array("Identifies the resources this policy applies to. Target references must "
                      "be distinct by the combined group, kind and name (or by sectionName "
                      "within the same target). Services have Extended support; other kinds "
                      "are implementation-specific.",
                      targetRef, 1, 16)),
            req("validation", validation),
            opt("options",
                stringMap("Key/value pairs enabling implementation-specific extended TLS "
                          "configuration, such as a minimum TLS version or cipher suites. Keys "
                          "must be domain-prefixed (e.g. lastmile.dev/min-tls-version).",
                          16, str("An option value.", {.maxLength = 4096}))),
        });
    std::string desc =
        "BackendTLSPolicy configures how a Gateway establishes a TLS connection to the backend "
        "it routes traffic to: which CA certificates to trust and which hostname the "
        "backend's certificate must match.";
    return KindInfo{
        .group = "gateway.networking.k8s.io",
        .versions = {"v1", "v1alpha3"},
        .kind = "BackendTLSPolicy",
        .plural = "backendtlspolicies",
        .singular = "backendtlspolicy",
        .shortNames = {"btlspolicy"},
        .description = desc,
        .schema = root(
            desc, false,
            {req("spec", spec),
             statusField(
                 "Current state of the policy, written by the controller.",
                 {req("ancestors",
                      array("The ancestor resources (usually Gateways) associated with this "
                            "policy, and the policy's status with respect to each. At most 16 "
                            "are tracked; an empty list means the policy is not relevant to "
                            "any ancestor.",
                            object("Status of the policy with respect to one ancestor.",
                                   {req("ancestorRef",
                                        parentReference("The parent reference (usually a "
                                                        "Gateway) this status entry "
                                                        "describes.")),
                                    req("controllerName", controllerName()),
                                    opt("conditions",
                                        conditions("Tracks state such as Accepted and "
                                                   "ResolvedRefs for the policy relative to "
                                                   "the ancestor."))}),
                            std::nullopt, 16))})}),
    };
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool namesResource(const KindInfo& k, std::string_view name) {
    if (equalsIgnoreCase(name, k.plural) || equalsIgnoreCase(name, k.singular) ||
        equalsIgnoreCase(name, k.kind)) {
        return true;
    }
    return std::any_of(k.shortNames.begin(), k.shortNames.end(),
                       [&](const std::string& s) { return equalsIgnoreCase(name, s); });
}

}  // namespace

std::string KindInfo::storageApiVersion() const {
    const std::string& v = versions.empty() ? std::string() : versions.front();
    return group.empty() ? v : group + "/" + v;
}

const std::vector<KindInfo>& allKinds() {
    static const std::vector<KindInfo> kinds{gateway(),   tcpRoute(),      httpRoute(),
                                             service(),   endpointSlice(), configMap(),
                                             secret(),    backendTlsPolicy()};
    return kinds;
}

const KindInfo* findKind(std::string_view apiVersion, std::string_view kind) {
    auto slash = apiVersion.find('/');
    std::string_view group = slash == std::string_view::npos ? std::string_view() : apiVersion.substr(0, slash);
    std::string_view version =
        slash == std::string_view::npos ? apiVersion : apiVersion.substr(slash + 1);
    for (const auto& k : allKinds()) {
        if (k.kind != kind || k.group != group) {
            continue;
        }
        if (std::find(k.versions.begin(), k.versions.end(), version) != k.versions.end()) {
            return &k;
        }
    }
    return nullptr;
}

int applyRank(std::string_view kind) {
    constexpr std::pair<std::string_view, int> ranks[] = {
        {"ConfigMap", 0}, {"Secret", 0},       {"BackendTLSPolicy", 1}, {"Service", 2},
        {"EndpointSlice", 2}, {"TCPRoute", 3}, {"HTTPRoute", 3},        {"Gateway", 4},
    };
    for (const auto& [name, rank] : ranks) {
        if (name == kind) {
            return rank;
        }
    }
    return 5;
}

const KindInfo* findResource(std::string_view name) {
    for (const auto& k : allKinds()) {
        if (namesResource(k, name)) {
            return &k;
        }
    }
    // Qualified forms: "<resource>.<group>" and "<resource>.<version>.<group>".
    auto dot = name.find('.');
    if (dot == std::string_view::npos) {
        return nullptr;
    }
    std::string_view resource = name.substr(0, dot);
    std::string_view rest = name.substr(dot + 1);
    for (const auto& k : allKinds()) {
        if (!namesResource(k, resource)) {
            continue;
        }
        if (equalsIgnoreCase(rest, k.group)) {
            return &k;
        }
        for (const auto& v : k.versions) {
            std::string qualified = k.group.empty() ? v : v + "." + k.group;
            if (equalsIgnoreCase(rest, qualified)) {
                return &k;
            }
        }
    }
    return nullptr;
}

}  // namespace lastmile::ctrl
