// SPDX-License-Identifier: Apache-2.0
// Tests for admission: every rule of spec section 1, the other kinds' shape rules, normalization.
#include "ctrl/api/admission.h"

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "ctrl/api/decode.h"
#include "tests/support/seed_manifests.h"

namespace lastmile::ctrl {
namespace {

using Mutation = std::function<void(Json&)>;

Json parse(const std::string& yaml) {
    auto docs = decodeManifests(yaml, "test.yaml");
    if (!docs || docs->size() != 1) {
        throw std::runtime_error("bad fixture: " + (docs ? std::string("count") : docs.error().message()));
    }
    return (*docs)[0].object;
}

Json::json_pointer ptr(const std::string& p) { return Json::json_pointer(p); }

// Mutations, written as JSON pointers into the object.
Mutation set(const std::string& p, Json value) {
    return [p, value](Json& o) { o[ptr(p)] = value; };
}
Mutation erase(const std::string& p) {
    return [p](Json& o) {
        auto jp = ptr(p);
        o[jp.parent_pointer()].erase(jp.back());
    };
}
Mutation both(Mutation a, Mutation b) {
    return [a, b](Json& o) {
        a(o);
        b(o);
    };
}

std::string describe(const Diagnostics& errors) {
    std::string out;
    for (const auto& d : errors) {
        out += "  " + d.reason + " " + format(d) + "\n";
    }
    return out;
}

bool hasError(const Diagnostics& errors, const std::string& path, const std::string& reason) {
    for (const auto& d : errors) {
        if (d.path == path && d.reason == reason) {
            return true;
        }
    }
    return false;
}

const char* kPolicy = test::kSeedPolicyYaml;

Json targetRef(const std::string& name, const std::string& section = "") {
    Json r = {{"group", ""}, {"kind", "Service"}, {"name", name}};
    if (!section.empty()) {
        r["sectionName"] = section;
    }
    return r;
}

Json caRef(const std::string& name) {
    return {{"group", ""}, {"kind", "ConfigMap"}, {"name", name}};
}

Json manyTargets(int n) {
    Json refs = Json::array();
    for (int i = 0; i < n; ++i) {
        refs.push_back(targetRef("svc-" + std::to_string(i)));
    }
    return refs;
}

Json manyOptions(int n) {
    Json o = Json::object();
    for (int i = 0; i < n; ++i) {
        o["lastmile.dev/opt-" + std::to_string(i)] = "x";
    }
    return o;
}

Json sans(int n) {
    Json s = Json::array();
    for (int i = 0; i < n; ++i) {
        s.push_back({{"type", "Hostname"}, {"hostname", "h" + std::to_string(i) + ".example.com"}});
    }
    return s;
}

Mutation useCaRefs(Json refs) {
    return both(erase("/spec/validation/wellKnownCACertificates"),
                set("/spec/validation/caCertificateRefs", std::move(refs)));
}

struct ValidCase {
    std::string name;
    Mutation mutate;
};

struct InvalidCase {
    std::string name;
    Mutation mutate;
    std::string path;
    std::string reason;
};

// gtest prints a failing parameter by its bytes unless told how; the case name is enough.
void PrintTo(const ValidCase& c, std::ostream* os) { *os << c.name; }
void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.name; }

std::vector<ValidCase> validPolicyCases() {
    return {
        {"SeedExample", [](Json&) {}},
        {"SixteenTargetRefs", set("/spec/targetRefs", manyTargets(16))},
        {"CoreGroupIsEmptyString", set("/spec/targetRefs/0/group", "")},
        {"NamedGroup", set("/spec/targetRefs/0/group", "gateway.networking.k8s.io")},
        {"KindWithDash", set("/spec/targetRefs/0/kind", "My-Kind2")},
        {"LongName", set("/spec/targetRefs/0/name", std::string(253, 'a'))},
        {"SectionName", set("/spec/targetRefs/0/sectionName", "https")},
        {"DistinctSectionsOfOneTarget",
         set("/spec/targetRefs", Json::array({targetRef("svc", "a"), targetRef("svc", "b")}))},
        {"TwoTargetsWithoutSections",
         set("/spec/targetRefs", Json::array({targetRef("svc-a"), targetRef("svc-b")}))},
        {"HostnameMaxLength",
         set("/spec/validation/hostname",
             std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                 std::string(61, 'd'))},
        {"EightCaRefs",
         useCaRefs(Json::array({caRef("a"), caRef("b"), caRef("c"), caRef("d"), caRef("e"),
                                caRef("f"), caRef("g"), caRef("h")}))},
        {"SecretCaRef", useCaRefs(Json::array({{{"group", ""}, {"kind", "Secret"}, {"name", "ca"}}}))},
        {"WellKnownDomainPrefixed", set("/spec/validation/wellKnownCACertificates", "example.com/bundle")},
        {"FiveSans", set("/spec/validation/subjectAltNames", sans(5))},
        {"WildcardHostnameSan",
         set("/spec/validation/subjectAltNames",
             Json::array({{{"type", "Hostname"}, {"hostname", "*.example.com"}}}))},
        {"SpiffeUriSan",
         set("/spec/validation/subjectAltNames",
             Json::array({{{"type", "URI"}, {"uri", "spiffe://cluster.local/ns/a/sa/b"}}}))},
        {"SixteenOptions", set("/spec/options", manyOptions(16))},
        {"OptionValueMaxLength", set("/spec/options", Json{{"lastmile.dev/cipher-suites", std::string(4096, 'x')}})},
        {"StatusOfAnyShapeIsAccepted", set("/status", "whatever")},
        {"StatusIsAccepted", set("/status", Json{{"ancestors", Json::array({{{"anything", 1}}})}})},
        {"EmptyNamespaceMeansDefault", set("/metadata/namespace", "")},
        {"ServerOwnedMetadataIsAccepted",
         both(set("/metadata/uid", "1234"), set("/metadata/creationTimestamp", "2026-01-01T00:00:00Z"))},
    };
}

std::vector<InvalidCase> invalidPolicyCases() {
    std::string longGroup = std::string(250, 'a') + ".com";
    return {
        {"TargetRefsMissing", erase("/spec/targetRefs"), "spec.targetRefs", "FieldValueRequired"},
        {"TargetRefsEmpty", set("/spec/targetRefs", Json::array()), "spec.targetRefs", "FieldValueRequired"},
        {"SeventeenTargetRefs", set("/spec/targetRefs", manyTargets(17)), "spec.targetRefs", "FieldValueTooMany"},
        {"TargetRefsNotAList", set("/spec/targetRefs", "svc"), "spec.targetRefs", "FieldValueTypeInvalid"},
        {"GroupMissing", erase("/spec/targetRefs/0/group"), "spec.targetRefs[0].group", "FieldValueRequired"},
        {"GroupBadPattern", set("/spec/targetRefs/0/group", "Bad_Group"), "spec.targetRefs[0].group", "FieldValueInvalid"},
        {"GroupTooLong", set("/spec/targetRefs/0/group", longGroup), "spec.targetRefs[0].group", "FieldValueTooLong"},
        {"KindMissing", erase("/spec/targetRefs/0/kind"), "spec.targetRefs[0].kind", "FieldValueRequired"},
        {"KindEmpty", set("/spec/targetRefs/0/kind", ""), "spec.targetRefs[0].kind", "FieldValueRequired"},
        {"KindStartsWithDigit", set("/spec/targetRefs/0/kind", "1Service"), "spec.targetRefs[0].kind", "FieldValueInvalid"},
        {"KindTooLong", set("/spec/targetRefs/0/kind", "S" + std::string(63, 'a')), "spec.targetRefs[0].kind", "FieldValueTooLong"},
        {"NameMissing", erase("/spec/targetRefs/0/name"), "spec.targetRefs[0].name", "FieldValueRequired"},
        {"NameTooLong", set("/spec/targetRefs/0/name", std::string(254, 'a')), "spec.targetRefs[0].name", "FieldValueTooLong"},
        {"SectionNameUppercase", set("/spec/targetRefs/0/sectionName", "HTTPS"), "spec.targetRefs[0].sectionName", "FieldValueInvalid"},
        {"SectionNameEmpty", set("/spec/targetRefs/0/sectionName", ""), "spec.targetRefs[0].sectionName", "FieldValueInvalid"},
        {"SectionNameTooLong", set("/spec/targetRefs/0/sectionName", std::string(254, 'a')), "spec.targetRefs[0].sectionName", "FieldValueTooLong"},
        {"SectionNameOnOnlySomeRefsOfOneTarget",
         set("/spec/targetRefs", Json::array({targetRef("svc", "a"), targetRef("svc")})),
         "spec.targetRefs", "FieldValueInvalid"},
        {"SameSectionTwice",
         set("/spec/targetRefs", Json::array({targetRef("svc", "a"), targetRef("svc", "a")})),
         "spec.targetRefs", "FieldValueInvalid"},
        {"SameTargetTwiceWithoutSection",
         set("/spec/targetRefs", Json::array({targetRef("svc"), targetRef("svc")})),
         "spec.targetRefs", "FieldValueInvalid"},
        {"ValidationMissing", erase("/spec/validation"), "spec.validation", "FieldValueRequired"},
        {"HostnameMissing", erase("/spec/validation/hostname"), "spec.validation.hostname", "FieldValueRequired"},
        {"HostnameWildcard", set("/spec/validation/hostname", "*.example.com"), "spec.validation.hostname", "FieldValueInvalid"},
        {"HostnameUppercase", set("/spec/validation/hostname", "Backend.example.com"), "spec.validation.hostname", "FieldValueInvalid"},
        {"HostnameTrailingDot", set("/spec/validation/hostname", "backend.example.com."), "spec.validation.hostname", "FieldValueInvalid"},
        {"HostnameTooLong", set("/spec/validation/hostname", std::string(254, 'a')), "spec.validation.hostname", "FieldValueTooLong"},
        {"NineCaRefs",
         useCaRefs(Json::array({caRef("a"), caRef("b"), caRef("c"), caRef("d"), caRef("e"),
                                caRef("f"), caRef("g"), caRef("h"), caRef("i")})),
         "spec.validation.caCertificateRefs", "FieldValueTooMany"},
        {"CaRefWithoutGroup", useCaRefs(Json::array({{{"kind", "ConfigMap"}, {"name", "ca"}}})),
         "spec.validation.caCertificateRefs[0].group", "FieldValueRequired"},
        {"CaRefWithoutKind", useCaRefs(Json::array({{{"group", ""}, {"name", "ca"}}})),
         "spec.validation.caCertificateRefs[0].kind", "FieldValueRequired"},
        {"CaRefWithoutName", useCaRefs(Json::array({{{"group", ""}, {"kind", "ConfigMap"}}})),
         "spec.validation.caCertificateRefs[0].name", "FieldValueRequired"},
        {"CaRefWithNamespace",
         useCaRefs(Json::array({{{"group", ""}, {"kind", "ConfigMap"}, {"name", "ca"}, {"namespace", "other"}}})),
         "spec.validation.caCertificateRefs[0].namespace", "FieldUnknown"},
        // The upstream type is an enum: "" is no value of it, even beside caCertificateRefs.
        {"CaRefsWithEmptyWellKnown",
         both(set("/spec/validation/wellKnownCACertificates", ""),
              set("/spec/validation/caCertificateRefs", Json::array({caRef("ca")}))),
         "spec.validation.wellKnownCACertificates", "FieldValueInvalid"},
        {"WellKnownLowercase", set("/spec/validation/wellKnownCACertificates", "system"),
         "spec.validation.wellKnownCACertificates", "FieldValueInvalid"},
        {"WellKnownUnprefixed", set("/spec/validation/wellKnownCACertificates", "Mozilla"),
         "spec.validation.wellKnownCACertificates", "FieldValueInvalid"},
        // Upstream bounds the name after the prefix like a label name: at most 63 characters.
        {"WellKnownNamePartTooLong",
         set("/spec/validation/wellKnownCACertificates", "example.com/" + std::string(64, 'a')),
         "spec.validation.wellKnownCACertificates", "FieldValueInvalid"},
        {"CaRefsAndWellKnown", set("/spec/validation/caCertificateRefs", Json::array({caRef("ca")})),
         "spec.validation", "FieldValueInvalid"},
        {"NeitherCaRefsNorWellKnown", erase("/spec/validation/wellKnownCACertificates"),
         "spec.validation", "FieldValueInvalid"},
        {"EmptyCaRefsAndNoWellKnown", useCaRefs(Json::array()), "spec.validation", "FieldValueInvalid"},
        {"SixSans", set("/spec/validation/subjectAltNames", sans(6)),
         "spec.validation.subjectAltNames", "FieldValueTooMany"},
        {"SanTypeUnknown",
         set("/spec/validation/subjectAltNames", Json::array({{{"type", "DNS"}, {"hostname", "a.example.com"}}})),
         "spec.validation.subjectAltNames[0].type", "FieldValueNotSupported"},
        {"SanTypeMissing",
         set("/spec/validation/subjectAltNames", Json::array({{{"hostname", "a.example.com"}}})),
         "spec.validation.subjectAltNames[0].type", "FieldValueRequired"},
        {"HostnameSanWithoutHostname",
         set("/spec/validation/subjectAltNames", Json::array({{{"type", "Hostname"}}})),
         "spec.validation.subjectAltNames[0].hostname", "FieldValueRequired"},
        {"HostnameSanWithUri",
         set("/spec/validation/subjectAltNames",
             Json::array({{{"type", "Hostname"}, {"hostname", "a.example.com"}, {"uri", "spiffe://a/b"}}})),
         "spec.validation.subjectAltNames[0].uri", "FieldValueForbidden"},
        {"UriSanWithoutUri", set("/spec/validation/subjectAltNames", Json::array({{{"type", "URI"}}})),
         "spec.validation.subjectAltNames[0].uri", "FieldValueRequired"},
        {"UriSanWithHostname",
         set("/spec/validation/subjectAltNames",
             Json::array({{{"type", "URI"}, {"uri", "spiffe://a/b"}, {"hostname", "a.example.com"}}})),
         "spec.validation.subjectAltNames[0].hostname", "FieldValueForbidden"},
        // The CEL rules forbid hostname (uri) whenever type is not Hostname (URI), not only
        // when it is the other enum value.
        {"UnknownSanTypeWithHostname",
         set("/spec/validation/subjectAltNames", Json::array({{{"type", "DNS"}, {"hostname", "a.example.com"}}})),
         "spec.validation.subjectAltNames[0].hostname", "FieldValueForbidden"},
        {"UnknownSanTypeWithUri",
         set("/spec/validation/subjectAltNames", Json::array({{{"type", "SPIFFE"}, {"uri", "spiffe://a/b"}}})),
         "spec.validation.subjectAltNames[0].uri", "FieldValueForbidden"},
        {"UrnUriSan", set("/spec/validation/subjectAltNames", Json::array({{{"type", "URI"}, {"uri", "urn:example:a"}}})),
         "spec.validation.subjectAltNames[0].uri", "FieldValueInvalid"},
        {"SpiffeUriWithoutAuthority",
         set("/spec/validation/subjectAltNames", Json::array({{{"type", "URI"}, {"uri", "spiffe:/x"}}})),
         "spec.validation.subjectAltNames[0].uri", "FieldValueInvalid"},
        {"HostnameSanUppercase",
         set("/spec/validation/subjectAltNames", Json::array({{{"type", "Hostname"}, {"hostname", "A.example.com"}}})),
         "spec.validation.subjectAltNames[0].hostname", "FieldValueInvalid"},
        {"SeventeenOptions", set("/spec/options", manyOptions(17)), "spec.options", "FieldValueTooMany"},
        {"OptionValueTooLong", set("/spec/options", Json{{"lastmile.dev/cipher-suites", std::string(4097, 'x')}}),
         "spec.options[lastmile.dev/cipher-suites]", "FieldValueTooLong"},
        {"OptionValueNotString", set("/spec/options", Json{{"lastmile.dev/session-resumption", true}}),
         "spec.options[lastmile.dev/session-resumption]", "FieldValueTypeInvalid"},
        {"SpecMissing", erase("/spec"), "spec", "FieldValueRequired"},
        {"UnknownSpecField", set("/spec/foo", 1), "spec.foo", "FieldUnknown"},
        {"UnknownValidationField", set("/spec/validation/sni", "x"), "spec.validation.sni", "FieldUnknown"},
        {"UnknownTopLevelField", set("/data", Json::object()), "data", "FieldUnknown"},
        {"MetadataNameMissing", erase("/metadata/name"), "metadata.name", "FieldValueRequired"},
        {"MetadataNameUppercase", set("/metadata/name", "Secure"), "metadata.name", "FieldValueInvalid"},
        {"MetadataNamespaceInvalid", set("/metadata/namespace", "a.b"), "metadata.namespace", "FieldValueInvalid"},
        {"LabelKeyInvalid", set("/metadata/labels", Json{{"bad key", "v"}}), "metadata.labels[bad key]", "FieldValueInvalid"},
        {"LabelValueInvalid", set("/metadata/labels", Json{{"app.kubernetes.io/name", "-x"}}),
         "metadata.labels[app.kubernetes.io/name]", "FieldValueInvalid"},
        {"AnnotationKeyInvalid", set("/metadata/annotations", Json{{"/x", "v"}}), "metadata.annotations[/x]", "FieldValueInvalid"},
        {"UnknownMetadataField", set("/metadata/finalizers", Json::array()), "metadata.finalizers", "FieldUnknown"},
        {"ApiVersionNotServed", set("/apiVersion", "gateway.networking.k8s.io/v1beta1"), "apiVersion", "FieldValueNotSupported"},
        {"ApiVersionMissing", erase("/apiVersion"), "apiVersion", "FieldValueRequired"},
        {"KindNotServed", set("/kind", "BackendPolicy"), "kind", "FieldValueNotSupported"},
    };
}

class ValidPolicyTest : public testing::TestWithParam<ValidCase> {};

TEST_P(ValidPolicyTest, IsAdmittedWithoutErrors) {
    Json policy = parse(kPolicy);
    GetParam().mutate(policy);
    auto result = admit(policy);
    EXPECT_TRUE(result.errors.empty()) << describe(result.errors);
}

INSTANTIATE_TEST_SUITE_P(BackendTlsPolicy, ValidPolicyTest, testing::ValuesIn(validPolicyCases()),
                         [](const auto& p) { return p.param.name; });

class InvalidPolicyTest : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidPolicyTest, IsRejectedAtTheFieldPathWithTheReason) {
    const auto& c = GetParam();
    Json policy = parse(kPolicy);
    c.mutate(policy);
    auto result = admit(policy);
    EXPECT_TRUE(hasError(result.errors, c.path, c.reason))
        << "want " << c.reason << " at " << c.path << ", got:\n"
        << describe(result.errors);
}

INSTANTIATE_TEST_SUITE_P(BackendTlsPolicy, InvalidPolicyTest,
                         testing::ValuesIn(invalidPolicyCases()),
                         [](const auto& p) { return p.param.name; });

TEST(AdmissionTest, QuotesTheMessagesOfTheTargetRefsRules) {
    Json policy = parse(kPolicy);
    policy["spec"]["targetRefs"] = Json::array({targetRef("svc", "a"), targetRef("svc")});
    auto result = admit(policy);
    ASSERT_EQ(result.errors.size(), 1u) << describe(result.errors);
    EXPECT_NE(result.errors[0].message.find("sectionName must be specified when targetRefs"),
              std::string::npos);
}

TEST(AdmissionTest, ReportsEveryErrorOfAnObjectTogether) {
    Json policy = parse(kPolicy);
    policy["spec"]["validation"]["hostname"] = "*.bad";
    policy["spec"]["targetRefs"][0]["kind"] = "1x";
    policy["spec"]["bogus"] = true;
    auto result = admit(policy);
    EXPECT_EQ(result.errors.size(), 3u) << describe(result.errors);
    EXPECT_TRUE(hasError(result.errors, "spec.validation.hostname", "FieldValueInvalid"));
    EXPECT_TRUE(hasError(result.errors, "spec.targetRefs[0].kind", "FieldValueInvalid"));
    EXPECT_TRUE(hasError(result.errors, "spec.bogus", "FieldUnknown"));
}

TEST(AdmissionTest, BoundsTheNumberOfReportedErrors) {
    Json policy = parse(kPolicy);
    policy["spec"]["targetRefs"] = Json::array();
    for (int i = 0; i < 5000; ++i) {
        policy["spec"]["targetRefs"].push_back(1);
    }
    auto result = admit(policy);
    EXPECT_EQ(result.errors.size(), 1001u);
    EXPECT_EQ(result.errors.back().path, "");
}

TEST(AdmissionTest, NormalizesV1alpha3ToTheStorageVersion) {
    Json policy = parse(kPolicy);
    policy["apiVersion"] = "gateway.networking.k8s.io/v1alpha3";
    auto result = admit(policy);
    ASSERT_TRUE(result.errors.empty()) << describe(result.errors);
    EXPECT_EQ(result.object["apiVersion"], "gateway.networking.k8s.io/v1");
}

TEST(AdmissionTest, DefaultsTheNamespaceAndDropsServerOwnedFields) {
    Json policy = parse(kPolicy);
    policy["metadata"]["uid"] = "u";
    policy["metadata"]["generation"] = 3;
    policy["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z";
    policy["metadata"]["resourceVersion"] = "7";
    policy["status"] = {{"ancestors", Json::array()}};
    auto result = admit(policy);
    ASSERT_TRUE(result.errors.empty()) << describe(result.errors);
    const auto& meta = result.object["metadata"];
    EXPECT_EQ(meta["namespace"], "default");
    EXPECT_FALSE(meta.contains("uid"));
    EXPECT_FALSE(meta.contains("generation"));
    EXPECT_FALSE(meta.contains("creationTimestamp"));
    EXPECT_EQ(meta["resourceVersion"], "7");
    EXPECT_FALSE(result.object.contains("status"));
}

TEST(AdmissionTest, KeepsAnExplicitNamespace) {
    Json policy = parse(kPolicy);
    policy["metadata"]["namespace"] = "team-a";
    auto result = admit(policy);
    ASSERT_TRUE(result.errors.empty()) << describe(result.errors);
    EXPECT_EQ(result.object["metadata"]["namespace"], "team-a");
}

TEST(AdmissionTest, ReportsAQuotedNumberAsATypeError) {
    Json gw = parse(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: lastmile
  listeners:
  - {name: tcp, port: "80", protocol: TCP}
)");
    auto result = admit(gw);
    ASSERT_EQ(result.errors.size(), 1u) << describe(result.errors);
    EXPECT_EQ(result.errors[0].path, "spec.listeners[0].port");
    EXPECT_EQ(result.errors[0].reason, "FieldValueTypeInvalid");
    EXPECT_EQ(format(result.errors[0]), "spec.listeners[0].port: Invalid value: \"80\": must be an integer");
}

TEST(AdmissionTest, TypesUnquotedManifestScalarsByTheCoreSchema) {
    auto docs = decodeManifests(R"(apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: "", kind: Service, name: s}]
  validation: {hostname: null, wellKnownCACertificates: System}
  options: {lastmile.dev/min-tls-version: 1.3}
)",
                                "p.yaml");
    ASSERT_TRUE(docs) << docs.error().message();
    auto result = admit((*docs)[0].object);
    EXPECT_TRUE(hasError(result.errors, "spec.validation.hostname", "FieldValueRequired"))
        << describe(result.errors);
    EXPECT_TRUE(hasError(result.errors, "spec.options[lastmile.dev/min-tls-version]",
                         "FieldValueTypeInvalid"))
        << describe(result.errors);
}

TEST(AdmissionTest, RejectsANonObject) {
    auto result = admit(Json::array());
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].reason, "FieldValueTypeInvalid");
}

// --- other kinds ---------------------------------------------------------------------------

const char* kGateway = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: lastmile
  listeners:
  - name: tcp
    port: 8443
    protocol: TCP
  - name: http
    port: 8080
    protocol: HTTP
    allowedRoutes:
      namespaces: {from: Same}
      kinds: [{kind: HTTPRoute}]
  addresses:
  - value: 127.0.0.1
  tls:
    backend:
      clientCertificateRef: {name: client-cert}
)";

const char* kTcpRoute = R"(
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, sectionName: tcp}]
  rules:
  - backendRefs: [{name: svc, port: 443}]
)";

const char* kHttpRoute = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  hostnames: [www.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: svc, port: 443, weight: 1}]
)";

const char* kService = R"(
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  selector: {app: x}
  ports:
  - {name: https, port: 443, targetPort: 8443}
  - {name: alt, port: 8443, targetPort: https-alt, protocol: TCP}
)";

const char* kSlice = R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-1
  labels: {kubernetes.io/service-name: svc}
addressType: IPv4
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
ports:
- {name: https, port: 8443, protocol: TCP}
)";

const char* kConfigMap = R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: ca}
data:
  ca.crt: |
    -----BEGIN CERTIFICATE-----
    -----END CERTIFICATE-----
)";

const char* kSecret = R"(
apiVersion: v1
kind: Secret
metadata: {name: client-cert}
type: kubernetes.io/tls
data:
  tls.crt: YWJj
  tls.key: YWJjZA==
)";

struct KindCase {
    std::string name;
    const char* base;
    Mutation mutate;
    std::string path;    // "" names the whole object
    std::string reason;  // empty: must be admitted
};

void PrintTo(const KindCase& c, std::ostream* os) { *os << c.name; }

std::vector<KindCase> kindCases() {
    return {
        {"GatewayIsValid", kGateway, [](Json&) {}, "", ""},
        {"GatewayWithoutSpec", kGateway, erase("/spec"), "spec", "FieldValueRequired"},
        {"GatewayWithoutClass", kGateway, erase("/spec/gatewayClassName"), "spec.gatewayClassName", "FieldValueRequired"},
        {"GatewayWithoutListeners", kGateway, erase("/spec/listeners"), "spec.listeners", "FieldValueRequired"},
        {"GatewayDuplicateListenerName", kGateway, set("/spec/listeners/1/name", "tcp"), "spec.listeners[1].name", "FieldValueDuplicate"},
        {"GatewayDuplicatePortAndProtocol", kGateway,
         both(set("/spec/listeners/1/port", 8443), set("/spec/listeners/1/protocol", "TCP")),
         "spec.listeners[1]", "FieldValueDuplicate"},
        // Upstream CEL: "hostname must not be specified for protocols ['TCP', 'UDP']".
        {"GatewayTcpListenerWithHostname", kGateway, set("/spec/listeners/0/hostname", "a.example.com"),
         "spec.listeners[0].hostname", "FieldValueForbidden"},
        {"GatewayHttpListenerWithHostname", kGateway, set("/spec/listeners/1/hostname", "a.example.com"), "", ""},
        {"GatewayListenerNameNotALabel", kGateway, set("/spec/listeners/0/name", "a.b"), "spec.listeners[0].name", "FieldValueInvalid"},
        {"GatewayPortOutOfRange", kGateway, set("/spec/listeners/0/port", 70000), "spec.listeners[0].port", "FieldValueInvalid"},
        {"GatewayProtocolUnknown", kGateway, set("/spec/listeners/0/protocol", "FTP"), "spec.listeners[0].protocol", "FieldValueNotSupported"},
        {"GatewayFromUnknown", kGateway, set("/spec/listeners/1/allowedRoutes/namespaces/from", "Any"),
         "spec.listeners[1].allowedRoutes.namespaces.from", "FieldValueNotSupported"},
        {"GatewayAddressNotAnIp", kGateway, set("/spec/addresses/0/value", "localhost"), "spec.addresses[0].value", "FieldValueInvalid"},
        {"GatewayHostnameAddress", kGateway, set("/spec/addresses/0", Json{{"type", "Hostname"}, {"value", "gw.example.com"}}), "", ""},
        {"GatewayClientCertWithoutName", kGateway, erase("/spec/tls/backend/clientCertificateRef/name"),
         "spec.tls.backend.clientCertificateRef.name", "FieldValueRequired"},
        {"GatewayUnknownListenerField", kGateway, set("/spec/listeners/0/tls", Json::object()), "spec.listeners[0].tls", "FieldUnknown"},
        {"TcpRouteIsValid", kTcpRoute, [](Json&) {}, "", ""},
        {"TcpRouteWithoutRules", kTcpRoute, erase("/spec/rules"), "spec.rules", "FieldValueRequired"},
        {"TcpRouteServiceWithoutPort", kTcpRoute, erase("/spec/rules/0/backendRefs/0/port"),
         "spec.rules[0].backendRefs[0].port", "FieldValueRequired"},
        // The two upstream CEL rules on parentRefs (CommonRouteSpec).
        {"TcpRouteTwoListenersOfOneGateway", kTcpRoute,
         set("/spec/parentRefs", Json::array({{{"name", "gw"}, {"sectionName", "a"}}, {{"name", "gw"}, {"sectionName", "b"}}})),
         "", ""},
        {"TcpRouteSameGatewayInTwoNamespaces", kTcpRoute,
         set("/spec/parentRefs", Json::array({{{"name", "gw"}}, {{"name", "gw"}, {"namespace", "other"}}})), "", ""},
        {"TcpRouteSectionOnOnlyOneRefOfAGateway", kTcpRoute,
         set("/spec/parentRefs", Json::array({{{"name", "gw"}, {"sectionName", "a"}}, {{"name", "gw"}}})),
         "spec.parentRefs", "FieldValueInvalid"},
        {"TcpRouteSameParentTwice", kTcpRoute,
         set("/spec/parentRefs",
             Json::array({{{"name", "gw"}, {"port", 443}}, {{"name", "gw"}, {"kind", "Gateway"}, {"port", 443}}})),
         "spec.parentRefs", "FieldValueInvalid"},
        {"HttpRouteSameParentTwice", kHttpRoute,
         set("/spec/parentRefs", Json::array({{{"name", "gw"}}, {{"name", "gw"}}})), "spec.parentRefs",
         "FieldValueInvalid"},
        {"TcpRouteParentWithoutName", kTcpRoute, erase("/spec/parentRefs/0/name"), "spec.parentRefs[0].name", "FieldValueRequired"},
        {"HttpRouteIsValid", kHttpRoute, [](Json&) {}, "", ""},
        {"HttpRouteWithoutMatches", kHttpRoute, erase("/spec/rules/0/matches"), "", ""},
        {"HttpRouteExactPath", kHttpRoute, set("/spec/rules/0/matches/0/path/type", "Exact"),
         "spec.rules[0].matches[0].path", "FieldValueNotSupported"},
        {"HttpRouteSubPath", kHttpRoute, set("/spec/rules/0/matches/0/path/value", "/api"),
         "spec.rules[0].matches[0].path", "FieldValueNotSupported"},
        {"HttpRouteHeaderMatch", kHttpRoute, set("/spec/rules/0/matches/0/headers", Json::array()),
         "spec.rules[0].matches[0].headers", "FieldUnknown"},
        {"HttpRouteServiceWithoutPort", kHttpRoute, erase("/spec/rules/0/backendRefs/0/port"),
         "spec.rules[0].backendRefs[0].port", "FieldValueRequired"},
        {"HttpRouteBadHostname", kHttpRoute, set("/spec/hostnames/0", "WWW"), "spec.hostnames[0]", "FieldValueInvalid"},
        {"ServiceIsValid", kService, [](Json&) {}, "", ""},
        {"ServiceNameNot1035", kService, set("/metadata/name", "1svc"), "metadata.name", "FieldValueInvalid"},
        {"ServiceUnnamedPortAmongSeveral", kService, erase("/spec/ports/1/name"), "spec.ports[1].name", "FieldValueRequired"},
        {"ServiceDuplicatePortName", kService, set("/spec/ports/1/name", "https"), "spec.ports[1].name", "FieldValueDuplicate"},
        {"ServiceDuplicatePort", kService, set("/spec/ports/1/port", 443), "spec.ports[1]", "FieldValueDuplicate"},
        {"ServiceSamePortOtherProtocol", kService,
         both(set("/spec/ports/1/port", 443), set("/spec/ports/1/protocol", "UDP")), "", ""},
        {"ServicePortMissing", kService, erase("/spec/ports/0/port"), "spec.ports[0].port", "FieldValueRequired"},
        {"ServiceTargetPortZero", kService, set("/spec/ports/0/targetPort", 0), "spec.ports[0].targetPort", "FieldValueInvalid"},
        {"ServiceTargetPortBadName", kService, set("/spec/ports/0/targetPort", "HTTPS"), "spec.ports[0].targetPort", "FieldValueInvalid"},
        {"ServiceTargetPortDigitsOnly", kService, set("/spec/ports/0/targetPort", "8443"), "spec.ports[0].targetPort", "FieldValueInvalid"},
        {"ServiceTargetPortBoolean", kService, set("/spec/ports/0/targetPort", true), "spec.ports[0].targetPort", "FieldValueTypeInvalid"},
        {"ServiceProtocolUnknown", kService, set("/spec/ports/0/protocol", "ICMP"), "spec.ports[0].protocol", "FieldValueNotSupported"},
        {"ServiceExternalNameMissing", kService, set("/spec/type", "ExternalName"), "spec.externalName", "FieldValueRequired"},
        {"ServiceExternalName", kService,
         both(set("/spec/type", "ExternalName"), set("/spec/externalName", "backend.example.com")), "", ""},
        {"ServiceExternalNameWithClusterIpType", kService, set("/spec/externalName", "backend.example.com"),
         "spec.externalName", "FieldValueForbidden"},
        {"ServiceTypeUnknown", kService, set("/spec/type", "Internal"), "spec.type", "FieldValueNotSupported"},
        // The API server requires ports unless the Service is headless or ExternalName.
        {"ServiceWithoutPorts", kService, erase("/spec/ports"), "spec.ports", "FieldValueRequired"},
        {"ServiceWithEmptyPorts", kService, set("/spec/ports", Json::array()), "spec.ports", "FieldValueRequired"},
        {"HeadlessServiceWithoutPorts", kService,
         both(erase("/spec/ports"), set("/spec/clusterIP", "None")), "", ""},
        {"ExternalNameServiceWithoutPorts", kService,
         both(erase("/spec/ports"), both(set("/spec/type", "ExternalName"),
                                         set("/spec/externalName", "backend.example.com"))),
         "", ""},
        // The API server strips one trailing dot (a fully qualified name) before validating.
        {"ServiceExternalNameFullyQualified", kService,
         both(set("/spec/type", "ExternalName"), set("/spec/externalName", "backend.example.com.")), "", ""},
        {"ServiceExternalNameTwoTrailingDots", kService,
         both(set("/spec/type", "ExternalName"), set("/spec/externalName", "backend.example.com..")),
         "spec.externalName", "FieldValueInvalid"},
        {"SliceIsValid", kSlice, [](Json&) {}, "", ""},
        {"SliceWithoutAddressType", kSlice, erase("/addressType"), "addressType", "FieldValueRequired"},
        {"SliceBadIpv4", kSlice, set("/endpoints/0/addresses/0", "::1"), "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceIpv6", kSlice, both(set("/addressType", "IPv6"), set("/endpoints/0/addresses/0", "::1")), "", ""},
        // FQDN addresses are checked like IsFullyQualifiedDomainName: one trailing dot is
        // allowed, and a single label is not a fully qualified name.
        {"SliceFqdn", kSlice, both(set("/addressType", "FQDN"), set("/endpoints/0/addresses/0", "backend.example.com")), "", ""},
        {"SliceFqdnWithTrailingDot", kSlice,
         both(set("/addressType", "FQDN"), set("/endpoints/0/addresses/0", "backend.example.com.")), "", ""},
        {"SliceFqdnSingleLabel", kSlice, both(set("/addressType", "FQDN"), set("/endpoints/0/addresses/0", "localhost")),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceFqdnUppercase", kSlice, both(set("/addressType", "FQDN"), set("/endpoints/0/addresses/0", "Backend.example.com")),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        // An IPv4-mapped IPv6 address is an IPv4 address to the API server, not an IPv6 one.
        {"SliceIpv6MappedIpv4", kSlice,
         both(set("/addressType", "IPv6"), set("/endpoints/0/addresses/0", "::ffff:10.0.0.1")),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceEmptyAddresses", kSlice, set("/endpoints/0/addresses", Json::array()), "endpoints[0].addresses", "FieldValueRequired"},
        {"SliceReadyNotBoolean", kSlice, set("/endpoints/0/conditions/ready", "yes"), "endpoints[0].conditions.ready", "FieldValueTypeInvalid"},
        {"SliceSpecIsUnknown", kSlice, set("/spec", Json::object()), "spec", "FieldUnknown"},
        // Kubernetes refuses these endpoint addresses; lastmile never dials them either.
        {"SliceLinkLocal", kSlice, set("/endpoints/0/addresses/0", "169.254.169.254"), "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceMulticast", kSlice, set("/endpoints/0/addresses/0", "239.1.2.3"), "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceUnspecified", kSlice, set("/endpoints/0/addresses/0", "0.0.0.0"), "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceBroadcast", kSlice, set("/endpoints/0/addresses/0", "255.255.255.255"), "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceIpv6LinkLocal", kSlice, both(set("/addressType", "IPv6"), set("/endpoints/0/addresses/0", "fe80::1")),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceIpv6Multicast", kSlice, both(set("/addressType", "IPv6"), set("/endpoints/0/addresses/0", "ff02::1")),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceIpv6Unspecified", kSlice, both(set("/addressType", "IPv6"), set("/endpoints/0/addresses/0", "::")),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceIpv4Compatible", kSlice, both(set("/addressType", "IPv6"), set("/endpoints/0/addresses/0", "::127.0.0.1")),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        // inet_pton would stop at the NUL and read only the address before it.
        {"SliceAddressWithNul", kSlice, set("/endpoints/0/addresses/0", std::string("169.254.169.254\0x", 17)),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        {"SliceIpv6AddressWithNul", kSlice, both(set("/addressType", "IPv6"), set("/endpoints/0/addresses/0", std::string("fd00::1\0x", 9))),
         "endpoints[0].addresses[0]", "FieldValueInvalid"},
        // Loopback stays admissible: allowedBackendNetworks decides whether it is dialled.
        {"SliceLoopbackIsAdmitted", kSlice, set("/endpoints/0/addresses/0", "127.0.0.2"), "", ""},
        {"ConfigMapIsValid", kConfigMap, [](Json&) {}, "", ""},
        {"ConfigMapBadKey", kConfigMap, set("/data/bad key", "x"), "data[bad key]", "FieldValueInvalid"},
        {"ConfigMapNonStringValue", kConfigMap, set("/data/n", 1), "data[n]", "FieldValueTypeInvalid"},
        {"ConfigMapBinaryNotBase64", kConfigMap, set("/binaryData", Json{{"b", "!!"}}), "binaryData[b]", "FieldValueInvalid"},
        {"SecretIsValid", kSecret, [](Json&) {}, "", ""},
        {"SecretDataNotBase64", kSecret, set("/data/ca.crt", "not base64"), "data[ca.crt]", "FieldValueInvalid"},
        {"SecretTlsWithoutKey", kSecret, erase("/data/tls.key"), "data[tls.key]", "FieldValueRequired"},
        {"SecretTlsKeyFromStringData", kSecret,
         both(erase("/data/tls.key"), set("/stringData", Json{{"tls.key", "k"}})), "", ""},
        {"SecretBadKey", kSecret, set("/data/a:b", "YQ=="), "data[a:b]", "FieldValueInvalid"},
        {"SecretImmutableNotBoolean", kSecret, set("/immutable", "yes"), "immutable", "FieldValueTypeInvalid"},
        // The API server bounds the data of a ConfigMap or Secret at 1 MiB (MaxSecretSize).
        {"ConfigMapOneMebibyte", kConfigMap, set("/data", Json{{"ca.crt", std::string(1 << 20, 'x')}}), "", ""},
        {"ConfigMapOverOneMebibyte", kConfigMap,
         set("/data", Json{{"a", std::string(1 << 19, 'x')}, {"b", std::string((1 << 19) + 1, 'x')}}),
         "", "FieldValueTooLong"},
        {"SecretOverOneMebibyte", kSecret,
         set("/stringData", Json{{"big", std::string((1 << 20) - 6, 'x')}}), "data", "FieldValueTooLong"},
    };
}

class KindShapeTest : public testing::TestWithParam<KindCase> {};

TEST_P(KindShapeTest, FollowsTheKindsRules) {
    const auto& c = GetParam();
    Json object = parse(c.base);
    c.mutate(object);
    auto result = admit(object);
    if (c.reason.empty()) {
        EXPECT_TRUE(result.errors.empty()) << describe(result.errors);
    } else {
        EXPECT_TRUE(hasError(result.errors, c.path, c.reason))
            << "want " << c.reason << " at " << c.path << ", got:\n"
            << describe(result.errors);
    }
}

INSTANTIATE_TEST_SUITE_P(Kinds, KindShapeTest, testing::ValuesIn(kindCases()),
                         [](const auto& p) { return p.param.name; });

TEST(AdmissionTest, MergesStringDataIntoDataAsBase64) {
    Json secret = parse(R"(
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {a: YQ==}
stringData: {ca.crt: hello, a: b}
)");
    auto result = admit(secret);
    ASSERT_TRUE(result.errors.empty()) << describe(result.errors);
    EXPECT_FALSE(result.object.contains("stringData"));
    EXPECT_EQ(result.object["data"]["ca.crt"], "aGVsbG8=");
    EXPECT_EQ(result.object["data"]["a"], "Yg==");
}

TEST(AdmissionTest, MergesStringDataWrittenBeforeData) {
    // Regression (fuzzer): adding "data" while holding an iterator into stringData.
    Json secret = parse("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n");
    auto result = admit(secret);
    ASSERT_TRUE(result.errors.empty()) << describe(result.errors);
    EXPECT_EQ(result.object["data"]["k"], "dg==");
}

TEST(AdmissionTest, ListsTheServedVersionsOfAKnownKind) {
    Json policy = parse(kPolicy);
    policy["apiVersion"] = "gateway.networking.k8s.io/v2";
    auto result = admit(policy);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_NE(result.errors[0].message.find("gateway.networking.k8s.io/v1alpha3"), std::string::npos);
}

}  // namespace
}  // namespace lastmile::ctrl
