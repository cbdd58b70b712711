// SPDX-License-Identifier: Apache-2.0
// Tests for lastmilectl's pure renderers: tables, ages, describe pages and server errors.
#include "ctrl/lastmilectl/printers.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "ctrl/api/kinds.h"

namespace lastmile::ctl {
namespace {

// 2026-11-26T12:00:00Z
constexpr std::int64_t kNow = 1795694400;

const ctrl::KindInfo& kindOf(std::string_view name) {
    const ctrl::KindInfo* k = ctrl::findResource(name);
    if (k == nullptr) {
        throw std::runtime_error("kind not served: " + std::string(name));
    }
    return *k;
}

Json meta(const std::string& ns, const std::string& name, const std::string& created) {
    return Json{{"name", name}, {"namespace", ns}, {"creationTimestamp", created}};
}

Json policy(const std::string& name, const std::string& created) {
    Json p = {
        {"apiVersion", "gateway.networking.k8s.io/v1"},
        {"kind", "BackendTLSPolicy"},
        {"metadata", meta("default", name, created)},
        {"spec",
         {{"targetRefs",
           {{{"group", ""}, {"kind", "Service"}, {"name", "echo"}, {"sectionName", "https"}}}},
          {"validation",
           {{"caCertificateRefs", {{{"group", ""}, {"kind", "ConfigMap"}, {"name", "ca"}}}},
            {"hostname", "echo.example.com"}}}}}};
    return p;
}

Json condition(const std::string& type, const std::string& status, const std::string& reason,
               const std::string& message) {
    return Json{{"type", type},
                {"status", status},
                {"reason", reason},
                {"message", message},
                {"observedGeneration", 2},
                {"lastTransitionTime", "2026-11-26T11:59:00Z"}};
}

// A vector, not Json: a one-element brace list would be an array under GCC but a copy of the
// element under clang (nlohmann's single-element initializer rule).
Json ancestor(const std::string& gateway, const std::vector<Json>& conditions) {
    return Json{{"ancestorRef",
                 {{"group", "gateway.networking.k8s.io"},
                  {"kind", "Gateway"},
                  {"namespace", "default"},
                  {"name", gateway}}},
                {"controllerName", "lastmile.dev/appliance"},
                {"conditions", conditions}};
}

TEST(FormatAgeTest, FollowsKubectlHumanDuration) {
    EXPECT_EQ(formatAge(0), "0s");
    EXPECT_EQ(formatAge(5), "5s");
    EXPECT_EQ(formatAge(119), "119s");
    EXPECT_EQ(formatAge(180), "3m");
    EXPECT_EQ(formatAge(200), "3m20s");
    EXPECT_EQ(formatAge(45 * 60), "45m");
    EXPECT_EQ(formatAge(2 * 3600), "120m");
    EXPECT_EQ(formatAge(4 * 3600), "4h");
    EXPECT_EQ(formatAge(7 * 3600 + 5 * 60), "7h5m");
    EXPECT_EQ(formatAge(30 * 3600), "30h");
    EXPECT_EQ(formatAge(4 * 86400), "4d");
    EXPECT_EQ(formatAge(4 * 86400 + 3 * 3600), "4d3h");
    EXPECT_EQ(formatAge(100 * 86400), "100d");
    EXPECT_EQ(formatAge(3 * 365 * 86400), "3y");
}

TEST(FormatAgeTest, ClockSkewIsNotANegativeAge) {
    EXPECT_EQ(formatAge(-1), "0s");
    EXPECT_EQ(formatAge(-30), "<invalid>");
}

TEST(AgeOfTest, IsUnknownWithoutCreationTimestamp) {
    EXPECT_EQ(ageOf(Json{{"metadata", {{"name", "x"}}}}, kNow), "<unknown>");
    EXPECT_EQ(ageOf(Json{{"metadata", meta("d", "x", "2026-11-26T11:59:55Z")}}, kNow), "5s");
}

TEST(TabAlignTest, PadsColumnsButNotTheLastCell) {
    EXPECT_EQ(tabAlign("NAME\tAGE\nlong-name\t5s\n", 6, 3), "NAME        AGE\nlong-name   5s\n");
    // A line with fewer cells ends the block: the next block is aligned on its own.
    EXPECT_EQ(tabAlign("a:\t1\nlonger:\t2\nSection:\nx:\t3\n", 0, 2),
              "a:       1\nlonger:  2\nSection:\nx:  3\n");
}

TEST(PrintTableTest, DefaultColumnsAreNameAndAge) {
    Json route = {{"metadata", meta("default", "r1", "2026-11-26T11:57:00Z")}};
    EXPECT_EQ(printTable(kindOf("tcproutes"), {route}, {false, false, kNow}),
              "NAME   AGE\n"
              "r1     3m\n");
}

TEST(PrintTableTest, AllNamespacesPutsNamespaceFirst) {
    Json a = {{"metadata", meta("default", "r1", "2026-11-26T11:57:00Z")}};
    Json b = {{"metadata", meta("team-a", "route-two", "2026-11-22T12:00:00Z")}};
    EXPECT_EQ(printTable(kindOf("tcproute"), {a, b}, {false, true, kNow}),
              "NAMESPACE   NAME        AGE\n"
              "default     r1          3m\n"
              "team-a      route-two   4d\n");
}

TEST(PrintTableTest, GatewayShowsClassAddressAndProgrammed) {
    Json gw = {{"metadata", meta("default", "edge", "2026-11-26T08:00:00Z")},
               {"spec",
                {{"gatewayClassName", "lastmile"},
                 {"addresses", {{{"type", "IPAddress"}, {"value", "127.0.0.1"}}}}}},
               {"status", {{"conditions", {condition("Programmed", "True", "Programmed", "")}}}}};
    EXPECT_EQ(printTable(kindOf("gateways"), {gw}, {false, false, kNow}),
              "NAME   CLASS      ADDRESS     PROGRAMMED   AGE\n"
              "edge   lastmile   127.0.0.1   True         4h\n");
}

TEST(PrintTableTest, HttpRouteShowsHostnames) {
    Json route = {{"metadata", meta("default", "web", "2026-11-26T11:59:00Z")},
                  {"spec", {{"hostnames", {"a.example.com", "b.example.com"}}}}};
    EXPECT_EQ(printTable(kindOf("httproutes"), {route}, {false, false, kNow}),
              "NAME   HOSTNAMES                     AGE\n"
              "web    a.example.com,b.example.com   60s\n");
}

TEST(PrintTableTest, ServiceShowsTypeAndPortsAndSelectorWhenWide) {
    Json svc = {{"metadata", meta("default", "echo", "2026-11-26T11:00:00Z")},
                {"spec",
                 {{"ports",
                   {{{"name", "https"}, {"port", 443}, {"protocol", "TCP"}},
                    {{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}}}},
                  {"selector", {{"app", "echo"}}}}}};
    EXPECT_EQ(printTable(kindOf("svc"), {svc}, {false, false, kNow}),
              "NAME   TYPE        PORT(S)          AGE\n"
              "echo   ClusterIP   443/TCP,53/UDP   60m\n");
    EXPECT_EQ(printTable(kindOf("svc"), {svc}, {true, false, kNow}),
              "NAME   TYPE        PORT(S)          AGE   SELECTOR\n"
              "echo   ClusterIP   443/TCP,53/UDP   60m   app=echo\n");
}

TEST(PrintTableTest, EndpointSliceShowsFirstThreeEndpoints) {
    Json slice = {{"metadata", meta("default", "echo-1", "2026-11-26T11:59:50Z")},
                  {"addressType", "IPv4"},
                  {"ports", {{{"port", 8443}}}},
                  {"endpoints",
                   {{{"addresses", {"10.0.0.1"}}},
                    {{"addresses", {"10.0.0.2"}}},
                    {{"addresses", {"10.0.0.3"}}},
                    {{"addresses", {"10.0.0.4"}}}}}};
    EXPECT_EQ(printTable(kindOf("endpointslices"), {slice}, {false, false, kNow}),
              "NAME     ADDRESSTYPE   PORTS   ENDPOINTS                                AGE\n"
              "echo-1   IPv4          8443    10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...   10s\n");
}

TEST(PrintTableTest, ConfigMapAndSecretCountTheirData) {
    Json cm = {{"metadata", meta("default", "ca", "2026-11-26T11:59:00Z")},
               {"data", {{"ca.crt", "x"}, {"extra", "y"}}}};
    EXPECT_EQ(printTable(kindOf("cm"), {cm}, {false, false, kNow}),
              "NAME   DATA   AGE\n"
              "ca     2      60s\n");
    Json secret = {{"metadata", meta("default", "client", "2026-11-26T11:59:00Z")},
                   {"type", "kubernetes.io/tls"},
                   {"data", {{"tls.crt", "eA=="}, {"tls.key", "eQ=="}}}};
    EXPECT_EQ(printTable(kindOf("secrets"), {secret}, {false, false, kNow}),
              "NAME     TYPE                DATA   AGE\n"
              "client   kubernetes.io/tls   2      60s\n");
}

TEST(PrintTableTest, PolicySummarizesAcceptedAcrossAncestors) {
    Json ok = policy("good", "2026-11-26T11:59:00Z");
    ok["status"]["ancestors"] = {ancestor("a", {condition("Accepted", "True", "Accepted", "")}),
                                 ancestor("b", {condition("Accepted", "True", "Accepted", "")})};
    Json bad = policy("bad", "2026-11-26T11:59:00Z");
    bad["status"]["ancestors"] = {
        ancestor("a", {condition("Accepted", "True", "Accepted", ""),
                       condition("ResolvedRefs", "False", "InvalidCACertificateRef", "m")}),
        ancestor("b", {condition("Accepted", "False", "NoValidCACertificate", "")})};
    Json pending = policy("new", "2026-11-26T11:59:00Z");
    EXPECT_EQ(printTable(kindOf("btlspolicy"), {ok, bad, pending}, {false, false, kNow}),
              "NAME   HOSTNAME           ACCEPTED   AGE\n"
              "good   echo.example.com   True       60s\n"
              "bad    echo.example.com   False      60s\n"
              "new    echo.example.com   Unknown    60s\n");
    EXPECT_EQ(printTable(kindOf("BackendTLSPolicy"), {ok, bad}, {true, false, kNow}),
              "NAME   HOSTNAME           ACCEPTED   AGE   TARGETS              REASON\n"
              "good   echo.example.com   True       60s   Service/echo:https   Accepted\n"
              "bad    echo.example.com   False      60s   Service/echo:https   "
              "InvalidCACertificateRef,NoValidCACertificate\n");
}

TEST(PrintTableTest, WithKindPrefixesNamesAsKubectlDoesForSeveralTypes) {
    Json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", meta("default", "echo", "2026-11-26T11:59:00Z")}};
    TableOptions options{false, false, kNow};
    options.withKind = true;
    EXPECT_EQ(printTable(kindOf("svc"), {svc}, options),
              "NAME           TYPE        PORT(S)   AGE\n"
              "service/echo   ClusterIP   <none>    60s\n");
    Json gw = {{"apiVersion", "gateway.networking.k8s.io/v1"},
               {"kind", "Gateway"},
               {"metadata", meta("default", "edge", "2026-11-26T11:59:00Z")}};
    EXPECT_NE(printTable(kindOf("gtw"), {gw}, options)
                  .find("\ngateway.gateway.networking.k8s.io/edge   "),
              std::string::npos);
}

TEST(PrintNamesTest, UsesSingularDotGroup) {
    Json p = policy("secure-backend", "2026-11-26T11:59:00Z");
    EXPECT_EQ(printNames(kindOf("btlspolicy"), {p}),
              "backendtlspolicy.gateway.networking.k8s.io/secure-backend\n");
    Json svc = {{"metadata", meta("default", "echo", "")}};
    EXPECT_EQ(printNames(kindOf("services"), {svc}), "service/echo\n");
}

TEST(PrintJsonTest, OneObjectIsPrintedAloneAndSeveralAsAList) {
    Json a = {{"kind", "ConfigMap"}, {"metadata", {{"name", "a"}}}};
    EXPECT_EQ(printJson({a}, true), a.dump(4) + "\n");
    Json list = Json::parse(printJson({a, a}, false));
    EXPECT_EQ(list["kind"], "List");
    EXPECT_EQ(list["items"].size(), 2u);
    EXPECT_NE(printJson({a}, true).find("\n    \"kind\""), std::string::npos);
}

TEST(DescribeTest, PolicyShowsEveryAncestorWithAConditionTable) {
    Json p = policy("secure-backend", "2026-11-26T11:59:00Z");
    p["metadata"]["generation"] = 2;
    p["metadata"]["resourceVersion"] = "17";
    p["metadata"]["uid"] = "0b1c";
    p["status"]["ancestors"] = {
        ancestor("edge", {condition("Accepted", "True", "Accepted", "Policy has been accepted"),
                          condition("ResolvedRefs", "True", "ResolvedRefs", "resolved")}),
        ancestor("internal", {condition("Accepted", "False", "NoValidCACertificate", "no valid CA"),
                              condition("ResolvedRefs", "False", "InvalidCACertificateRef",
                                        "ConfigMap default/ca has no ca.crt")})};
    std::string page = describeObject(kindOf("btlspolicy"), p);
    EXPECT_NE(page.find("Name:         secure-backend\n"), std::string::npos) << page;
    EXPECT_NE(page.find("Namespace:    default\n"), std::string::npos) << page;
    EXPECT_NE(page.find("Labels:       <none>\n"), std::string::npos) << page;
    EXPECT_NE(page.find("API Version:  gateway.networking.k8s.io/v1\n"), std::string::npos);
    EXPECT_NE(page.find("Kind:         BackendTLSPolicy\n"), std::string::npos);
    EXPECT_NE(page.find("  Creation Timestamp:  2026-11-26T11:59:00Z\n"), std::string::npos)
        << page;
    EXPECT_NE(page.find("  Resource Version:    17\n"), std::string::npos) << page;
    EXPECT_NE(page.find("Spec:\n  Target Refs:\n"), std::string::npos) << page;
    EXPECT_NE(page.find("Section Name:  https\n"), std::string::npos) << page;
    EXPECT_NE(page.find("  Validation:\n    Ca Certificate Refs:\n"), std::string::npos) << page;
    EXPECT_NE(page.find("    Hostname:  echo.example.com\n"), std::string::npos) << page;
    EXPECT_NE(page.find("Ancestor Ref:     Gateway default/edge\n"), std::string::npos) << page;
    EXPECT_NE(page.find("Ancestor Ref:     Gateway default/internal\n"), std::string::npos) << page;
    EXPECT_NE(page.find("Controller Name:  lastmile.dev/appliance\n"), std::string::npos) << page;
    EXPECT_NE(page.find("      Type          Status  Reason                   Message              "
                        "               "),
              std::string::npos)
        << page;
    EXPECT_NE(page.find("ResolvedRefs  False   InvalidCACertificateRef  ConfigMap default/ca has "
                        "no ca.crt  2                    2026-11-26T11:59:00Z\n"),
              std::string::npos)
        << page;
}

TEST(DescribeTest, CompiledProfilesShowOnlyThisPolicysProfiles) {
    Json profiles = Json::parse(R"({"generation": 3, "items": [
      {"backend": {"namespace": "default", "service": "echo", "port": 443},
       "policy": "default/secure-backend", "sni": "echo.example.com",
       "verify": {"hostname": "echo.example.com"}, "trust": "bundle",
       "trustAnchors": [{"subject": "CN=Test CA", "notAfter": "2027-01-01T00:00:00Z",
                         "sha256": "AB:CD"}],
       "minVersion": "1.2", "maxVersion": "1.3", "cipherSuites": [], "ecdhCurves": ["X25519"],
       "signatureAlgorithms": [], "alpnProtocols": ["h2"], "sessionResumption": true,
       "offload": "kernel", "warmPool": 8, "clientCertificate": false, "failClosedReason": ""},
      {"backend": {"namespace": "default", "service": "api", "port": 8443},
       "policy": "default/secure-backend", "sni": "api.example.com",
       "verify": {"subjectAltNames": [{"type": "URI", "value": "spiffe://td/api"}]},
       "trust": "system", "trustAnchors": [], "minVersion": "1.3", "maxVersion": "1.3",
       "cipherSuites": [], "ecdhCurves": [], "signatureAlgorithms": [], "alpnProtocols": [],
       "sessionResumption": false, "offload": "auto", "clientCertificate": true,
       "failClosedReason": "ConfigMap default/ca has no ca.crt"},
      {"backend": {"namespace": "default", "service": "other", "port": 1},
       "policy": "default/other", "sni": "other.example.com"}]})");
    std::string section = describeProfiles(profiles, "default/secure-backend");
    EXPECT_EQ(section.rfind("Compiled Profiles:\n", 0), 0u) << section;
    EXPECT_NE(section.find("Backend:               default/echo:443\n"), std::string::npos)
        << section;
    EXPECT_NE(section.find("Verify:                hostname echo.example.com\n"), std::string::npos)
        << section;
    EXPECT_NE(section.find("Verify:                SANs [URI:spiffe://td/api]\n"),
              std::string::npos)
        << section;
    EXPECT_NE(section.find("  Trust Anchors:         1\n"
                           "    Subject:             CN=Test CA\n"
                           "    Not After:           2027-01-01T00:00:00Z\n"
                           "    SHA-256:             AB:CD\n"),
              std::string::npos)
        << section;
    EXPECT_NE(section.find("Versions:              1.2-1.3\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Ciphers:               default\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Curves:                X25519\n"), std::string::npos) << section;
    EXPECT_NE(section.find("ALPN:                  h2\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Engine Preference:     kernel\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Warm Pool:             8 per endpoint\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Warm Pool:             off\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Client Certificate:    yes\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Fail Closed:           ConfigMap default/ca has no ca.crt\n"),
              std::string::npos)
        << section;
    EXPECT_EQ(section.find("other"), std::string::npos) << section;
    EXPECT_NE(section.find("Record Engine:         <unknown>\n"), std::string::npos)
        << "an older server sends no engines" << section;
    // The section is printed as is, after the describe page: no raw tab may reach the terminal.
    EXPECT_EQ(describeProfiles(profiles, "default/none"), "Compiled Profiles:  <none>\n");
}

TEST(DescribeTest, InterceptionShowsVirtualAddressesModesAndAttachedPrograms) {
    const Json gateway = Json::parse(
        R"({"status": {"addresses": [{"type": "IPAddress", "value": "10.9.0.1"}]}})");
    EXPECT_EQ(describeInterception(Json{{"items", Json::array()}}, gateway), "")
        << "not configured: nothing to say beyond the conditions";
    const Json profiles = Json::parse(R"({"interception": {
        "modes": [{"name": "host", "usable": true, "detail": ""},
                  {"name": "routed", "usable": false, "detail": "no interfaces configured"}],
        "attachments": [{"mode": "host", "program": "lm_connect4",
                         "target": "/sys/fs/cgroup/apps", "attached": true}]}})");
    const std::string section = describeInterception(profiles, gateway);
    EXPECT_NE(section.find("Interception:\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Virtual Addresses:"), std::string::npos) << section;
    EXPECT_NE(section.find("10.9.0.1\n"), std::string::npos) << section;
    EXPECT_NE(section.find("Mode host:"), std::string::npos) << section;
    EXPECT_NE(section.find("unusable: no interfaces configured\n"), std::string::npos) << section;
    EXPECT_NE(section.find("lm_connect4 on /sys/fs/cgroup/apps:"), std::string::npos) << section;
    EXPECT_NE(section.find(" attached\n"), std::string::npos) << section;
    EXPECT_EQ(section.find('\t'), std::string::npos) << "no raw tab reaches the terminal";
}

TEST(DescribeTest, RecordEngineIsTheFirstUsableOneThePreferenceAllowsAndSaysWhyOthersWerePassed) {
    auto profiles = [](const char* offload, bool kernelUsable) {
        const Json every = Json::array({"auto", "nic", "kernel", "cryptodev", "userspace"});
        return Json{{"items", Json::array({{{"policy", "default/p"}, {"offload", offload}}})},
                    {"recordEngines",
                     Json::array({{{"name", "nic"},
                                   {"usable", false},
                                   {"detail", "no interface has tls-hw-tx-offload enabled"},
                                   {"serves", {"auto", "nic"}}},
                                  {{"name", "kernel"},
                                   {"usable", kernelUsable},
                                   {"detail", kernelUsable ? "ulp ok" : "TCP_ULP: ENOENT"},
                                   {"serves", {"auto", "kernel"}}},
                                  {{"name", "openssl"},
                                   {"usable", true},
                                   {"detail", "OpenSSL 3"},
                                   {"serves", every}}})}};
    };
    EXPECT_NE(describeProfiles(profiles("auto", true), "default/p")
                  .find("Record Engine:         kernel (ulp ok; nic unusable: no interface has "
                        "tls-hw-tx-offload enabled)\n"),
              std::string::npos)
        << describeProfiles(profiles("auto", true), "default/p");
    EXPECT_NE(describeProfiles(profiles("kernel", false), "default/p")
                  .find("Record Engine:         openssl (OpenSSL 3; nic not wanted (offload: kernel); "
                        "kernel unusable: TCP_ULP: ENOENT)\n"),
              std::string::npos)
        << describeProfiles(profiles("kernel", false), "default/p");
    EXPECT_NE(describeProfiles(profiles("userspace", true), "default/p")
                  .find("Record Engine:         openssl (OpenSSL 3; nic not wanted (offload: "
                        "userspace); kernel not wanted (offload: userspace))\n"),
              std::string::npos)
        << describeProfiles(profiles("userspace", true), "default/p");
    EXPECT_NE(describeProfiles(profiles("cryptodev", true), "default/p")
                  .find("Record Engine:         openssl (OpenSSL 3; nic not wanted (offload: "
                        "cryptodev); kernel not wanted (offload: cryptodev))\n"),
              std::string::npos)
        << describeProfiles(profiles("cryptodev", true), "default/p");
}

TEST(DescribeTest, SecretValuesAreShownAsSizes) {
    Json secret = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", meta("default", "client", "2026-11-26T11:59:00Z")},
                   {"type", "kubernetes.io/tls"},
                   {"data", {{"tls.key", "c2VjcmV0"}}}};
    std::string page = describeObject(kindOf("secret"), secret);
    EXPECT_EQ(page.find("c2VjcmV0"), std::string::npos) << page;
    // "c2VjcmV0" is "secret": kubectl counts the decoded bytes, not the base64 text.
    EXPECT_NE(page.find("tls.key:  6 bytes"), std::string::npos) << page;
}

TEST(DescribeTest, SecretSizesCountDecodedBytesAndStringDataAsIs) {
    Json secret = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", meta("default", "client", "2026-11-26T11:59:00Z")},
                   {"data", {{"a", "aGVsbG8="}, {"b", "not base64!"}}},
                   {"stringData", {{"c", "plain"}}}};
    std::string page = describeObject(kindOf("secret"), secret);
    EXPECT_NE(page.find("a:  5 bytes\n"), std::string::npos) << page;
    EXPECT_NE(page.find("b:  11 bytes\n"), std::string::npos) << page;
    EXPECT_NE(page.find("c:  5 bytes\n"), std::string::npos) << page;
    EXPECT_EQ(page.find("plain"), std::string::npos) << page;
    EXPECT_EQ(page.find("aGVsbG8="), std::string::npos) << page;
}

TEST(DescribeTest, UserKeysKeepTheirSpelling) {
    Json cm = {{"apiVersion", "v1"},
               {"kind", "ConfigMap"},
               {"metadata", meta("default", "ca", "2026-11-26T11:59:00Z")},
               {"data", {{"ca.crt", "-----BEGIN CERTIFICATE-----\nAAA\n"}}}};
    std::string page = describeObject(kindOf("cm"), cm);
    EXPECT_NE(page.find("Data:\n  ca.crt:\n    -----BEGIN CERTIFICATE-----\n    AAA\n"),
              std::string::npos)
        << page;
}

TEST(FormatServerErrorTest, InvalidListsEveryCauseOnItsOwnLine) {
    std::string body = R"({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 422,
      "reason": "Invalid", "message": "BackendTLSPolicy \"x\" is invalid: [a, b]",
      "details": {"group": "gateway.networking.k8s.io", "kind": "BackendTLSPolicy", "name": "x",
        "causes": [{"field": "spec.validation.hostname", "reason": "FieldValueInvalid",
                    "message": "must be a lowercase DNS name"},
                   {"field": "spec.targetRefs", "reason": "FieldValueRequired",
                    "message": "Required value"}]}})";
    EXPECT_EQ(formatServerError(422, body, "error when applying \"p.yaml\": "),
              "Error from server (Invalid): error when applying \"p.yaml\": BackendTLSPolicy \"x\" "
              "is invalid:\n"
              "  spec.validation.hostname: must be a lowercase DNS name\n"
              "  spec.targetRefs: Required value\n");
}

TEST(FormatServerErrorTest, InvalidWithoutAKindInTheMessageNamesTheKind) {
    std::string body = R"({"kind": "Status", "code": 422, "reason": "Invalid", "message": "",
      "details": {"kind": "backendtlspolicies", "name": "x",
        "causes": [{"field": "spec", "message": "Required value"}]}})";
    EXPECT_EQ(formatServerError(422, body, ""),
              "Error from server (Invalid): BackendTLSPolicy \"x\" is invalid:\n"
              "  spec: Required value\n");
}

TEST(FormatServerErrorTest, UsesTheStatusMessageAndFallsBackToTheCode) {
    EXPECT_EQ(formatServerError(404, R"({"kind": "Status", "reason": "NotFound", "message":
                 "backendtlspolicies.gateway.networking.k8s.io \"x\" not found"})",
                                ""),
              "Error from server (NotFound): backendtlspolicies.gateway.networking.k8s.io \"x\" "
              "not found\n");
    EXPECT_EQ(formatServerError(502, "bad gateway\n", ""),
              "Error from server (Unknown): the server responded with HTTP 502: bad gateway\n");
}

}  // namespace
}  // namespace lastmile::ctl
