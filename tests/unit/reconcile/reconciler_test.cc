// SPDX-License-Identifier: Apache-2.0
// Tests for the reconciler: every row of spec section 2, every case of section 3, profiles.
#include "ctrl/reconcile/reconciler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ctrl/api/base64.h"
#include "tests/support/test_pki.h"

namespace lastmile::ctrl {
namespace {

using namespace std::chrono_literals;

const std::string kController = "lastmile.dev/appliance";

class ReconcilerTest : public ::testing::Test {
protected:
    // ---- fixtures as JSON literals

    // `tls` is the Gateway's spec.tls (null: none).
    void addGateway(const std::string& ns, const std::string& name,
                    const std::string& cls = "lastmile", const std::string& tls = "null") {
        Json gw = Json::parse(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"generation": 1},
            "spec": {"listeners": [
                {"name": "http", "port": 8080, "protocol": "HTTP"},
                {"name": "tcp", "port": 9000, "protocol": "TCP",
                 "allowedRoutes": {"namespaces": {"from": "All"}}}]}})");
        gw["metadata"]["namespace"] = ns;
        gw["metadata"]["name"] = name;
        gw["spec"]["gatewayClassName"] = cls;
        if (Json t = Json::parse(tls); !t.is_null()) {
            gw["spec"]["tls"] = t;
        }
        objects_.push_back(std::move(gw));
    }

    // `parentExtra` is merged into the single parentRef (sectionName, namespace...).
    void addHttpRoute(const std::string& ns, const std::string& name, const std::string& gateway,
                      const std::string& service, int port, const std::string& parentExtra = "{}") {
        Json route = Json::parse(R"({"apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute", "metadata": {"generation": 1},
            "spec": {"parentRefs": [{}], "rules": [{"backendRefs": [{}]}]}})");
        route["metadata"]["namespace"] = ns;
        route["metadata"]["name"] = name;
        Json parent = Json{{"name", gateway}};
        parent.update(Json::parse(parentExtra));
        route["spec"]["parentRefs"][0] = parent;
        route["spec"]["rules"][0]["backendRefs"][0] = Json{{"name", service}, {"port", port}};
        objects_.push_back(std::move(route));
    }

    void addService(const std::string& ns, const std::string& name,
                    const std::string& ports = R"([{"name": "https", "port": 443},
                                                   {"name": "alt", "port": 8443}])") {
        Json svc = Json::parse(R"({"apiVersion": "v1", "kind": "Service", "spec": {}})");
        svc["metadata"] = Json{{"namespace", ns}, {"name", name}};
        svc["spec"]["ports"] = Json::parse(ports);
        objects_.push_back(std::move(svc));
    }

    void addConfigMap(const std::string& name, const Json& data) {
        Json cm = Json::parse(R"({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"namespace": "default"}})");
        cm["metadata"]["name"] = name;
        if (!data.is_null()) {
            cm["data"] = data;
        }
        objects_.push_back(std::move(cm));
    }

    void addCaConfigMap(const std::string& name, const std::string& pem) {
        addConfigMap(name, Json{{"ca.crt", pem}});
    }

    void addSecret(const std::string& ns, const std::string& name, const Json& plainData) {
        Json s = Json::parse(R"({"apiVersion": "v1", "kind": "Secret", "data": {}})");
        s["metadata"] = Json{{"namespace", ns}, {"name", name}};
        for (const auto& [k, v] : plainData.items()) {
            s["data"][k] = base64Encode(v.get<std::string>());
        }
        objects_.push_back(std::move(s));
    }

    // A policy on Service `echo` (whole) with the CA ConfigMap `ca`, unless told otherwise.
    void addPolicy(
        const std::string& name,
        const std::string& targets = R"([{"group": "", "kind": "Service", "name": "echo"}])",
        const std::string& validation = R"({"hostname": "echo.default.svc",
                     "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
        const std::string& created = "2026-01-01T00:00:00Z", int generation = 1,
        const std::string& options = "null") {
        Json policy = Json::parse(R"({"apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "BackendTLSPolicy", "metadata": {"namespace": "default"}, "spec": {}})");
        policy["metadata"]["name"] = name;
        policy["metadata"]["generation"] = generation;
        policy["metadata"]["creationTimestamp"] = created;
        policy["spec"]["targetRefs"] = Json::parse(targets);
        policy["spec"]["validation"] = Json::parse(validation);
        if (Json o = Json::parse(options); !o.is_null()) {
            policy["spec"]["options"] = o;
        }
        objects_.push_back(std::move(policy));
    }

    void addPolicyWithValidation(const std::string& name, const std::string& validation) {
        addPolicy(name, R"([{"group": "", "kind": "Service", "name": "echo"}])", validation);
    }

    // The usual world: Gateway default/gw, Service echo, HTTPRoute to echo:443, CA ConfigMap.
    void addWorld() {
        addGateway("default", "gw");
        addService("default", "echo");
        addHttpRoute("default", "r", "gw", "echo", 443);
        addCaConfigMap("ca", pki_.caPem());
    }

    void add(const std::string& json) { objects_.push_back(Json::parse(json)); }

    // ---- running and reading

    ReconcileOutput run() {
        out_ = reconcile(objects_, config_, now_, bound_);
        EXPECT_TRUE(out_.internalErrors.empty()) << out_.internalErrors.front();
        return out_;
    }

    // Feeds the statuses of the last run back into the objects, like the store would.
    void writeBack() {
        for (auto& o : objects_) {
            for (const auto& s : out_.statuses) {
                if (keyOf(o) == s.key) {
                    o["status"] = s.status;
                }
            }
        }
    }

    Json& object(const std::string& kind, const std::string& ns, const std::string& name) {
        for (auto& o : objects_) {
            if (o["kind"] == kind && o["metadata"]["namespace"] == ns &&
                o["metadata"]["name"] == name) {
                return o;
            }
        }
        throw std::runtime_error("no object " + kind + " " + ns + "/" + name);
    }

    void remove(const std::string& kind, const std::string& name) {
        objects_.erase(std::remove_if(objects_.begin(), objects_.end(),
                                      [&](const Json& o) {
                                          return o["kind"] == kind && o["metadata"]["name"] == name;
                                      }),
                       objects_.end());
    }

    const Json* status(const std::string& kind, const std::string& ns,
                       const std::string& name) const {
        for (const auto& s : out_.statuses) {
            if (s.key.kind == kind && s.key.ns == ns && s.key.name == name) {
                return &s.status;
            }
        }
        return nullptr;
    }

    const Json& policyStatus(const std::string& name) const {
        const Json* s = status("BackendTLSPolicy", "default", name);
        if (s == nullptr) {
            throw std::runtime_error("no status for policy " + name);
        }
        return *s;
    }

    // Our ancestor entry of policy `name` for Gateway `gwNs/gw`.
    const Json& ancestor(const std::string& name, const std::string& gw = "gw",
                         const std::string& gwNs = "default") const {
        for (const auto& a : policyStatus(name)["ancestors"]) {
            if (a["controllerName"] == kController && a["ancestorRef"]["name"] == gw &&
                a["ancestorRef"]["namespace"] == gwNs) {
                return a;
            }
        }
        throw std::runtime_error("no ancestor " + gwNs + "/" + gw + " on policy " + name);
    }

    static const Json& cond(const Json& holder, const std::string& type) {
        for (const auto& c : holder["conditions"]) {
            if (c["type"] == type) {
                return c;
            }
        }
        throw std::runtime_error("no condition " + type);
    }

    void expectCond(const Json& holder, const std::string& type, const std::string& st,
                    const std::string& reason) const {
        const Json& c = cond(holder, type);
        EXPECT_EQ(c["status"], st) << type << ": " << c.dump();
        EXPECT_EQ(c["reason"], reason) << type << ": " << c.dump();
    }

    std::string message(const Json& holder, const std::string& type) const {
        return cond(holder, type)["message"].get<std::string>();
    }

    const tls::HandshakeProfile* profile(const std::string& service, int port,
                                         const std::string& ns = "default") const {
        for (const auto& p : out_.profiles) {
            const auto& b = p->spec().backend;
            if (b.ns == ns && b.service == service && b.port == port) {
                return p.get();
            }
        }
        return nullptr;
    }

    std::vector<Json> objects_;
    ReconcilerConfig config_;
    ListenerStates bound_;  // the dataplane's bind results fed to the pass
    std::chrono::system_clock::time_point now_ =
        std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
    ReconcileOutput out_;
    test::TestPki pki_;
};

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// ---- Section 2, row by row.

TEST_F(ReconcilerTest, ValidPolicyIsAcceptedAndCompilesAVerifyingProfile) {
    addWorld();
    addPolicy("p");
    run();
    const Json& a = ancestor("p");
    EXPECT_EQ(a["ancestorRef"], Json::parse(R"({"group": "gateway.networking.k8s.io",
        "kind": "Gateway", "namespace": "default", "name": "gw"})"));
    expectCond(a, "Accepted", "True", "Accepted");
    EXPECT_EQ(message(a, "Accepted"), "Policy accepted");
    expectCond(a, "ResolvedRefs", "True", "ResolvedRefs");
    EXPECT_EQ(cond(a, "Accepted")["lastTransitionTime"], "2027-01-15T08:00:00Z");

    ASSERT_EQ(out_.profiles.size(), 1u);  // only the routed port, not "alt"
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_FALSE(prof->isFailClosed()) << prof->failClosedReason();
    EXPECT_EQ(prof->spec().policy, "default/p");
    EXPECT_EQ(prof->spec().sni, "echo.default.svc");
    EXPECT_FALSE(prof->spec().systemTrust);
    EXPECT_EQ(prof->spec().caBundlePem, pki_.caPem());
    EXPECT_EQ(prof->trustAnchors().size(), 1u);
}

// A backend certificate that fails verification is a handshake-time failure: status is
// still Accepted/ResolvedRefs and the profile verifies (it is not fail-closed).
TEST_F(ReconcilerTest, CaThatDoesNotSignTheBackendStillAccepts) {
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "other.example",
        "subjectAltNames": [{"type": "URI", "uri": "spiffe://td/ns/default/sa/echo"}],
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    expectCond(ancestor("p"), "ResolvedRefs", "True", "ResolvedRefs");
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_FALSE(prof->isFailClosed());
    ASSERT_EQ(prof->spec().subjectAltNames.size(), 1u);
    EXPECT_EQ(prof->spec().subjectAltNames[0].type, tls::SanMatcher::Type::Uri);
}

TEST_F(ReconcilerTest, MissingConfigMapIsNoValidCaAndFailsClosed) {
    addWorld();
    remove("ConfigMap", "ca");
    addPolicy("p");
    run();
    const Json& a = ancestor("p");
    expectCond(a, "Accepted", "False", "NoValidCACertificate");
    expectCond(a, "ResolvedRefs", "False", "InvalidCACertificateRef");
    EXPECT_TRUE(contains(message(a, "ResolvedRefs"), "ConfigMap default/ca not found"));
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_TRUE(prof->isFailClosed());
    EXPECT_TRUE(contains(prof->failClosedReason(), "ConfigMap default/ca not found"));
}

TEST_F(ReconcilerTest, ConfigMapWithoutCaCrtKeyIsNamedInTheMessage) {
    addWorld();
    remove("ConfigMap", "ca");
    addConfigMap("ca", Json{{"other", "x"}});
    addPolicy("p");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    expectCond(ancestor("p"), "ResolvedRefs", "False", "InvalidCACertificateRef");
    EXPECT_TRUE(
        contains(message(ancestor("p"), "ResolvedRefs"), "ConfigMap default/ca has no key ca.crt"));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

TEST_F(ReconcilerTest, EmptyCaCrtIsNamedInTheMessage) {
    addWorld();
    remove("ConfigMap", "ca");
    addCaConfigMap("ca", "");
    addPolicy("p");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    EXPECT_TRUE(
        contains(message(ancestor("p"), "ResolvedRefs"), "ConfigMap default/ca: ca.crt is empty"));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

TEST_F(ReconcilerTest, MalformedPemIsNamedInTheMessage) {
    addWorld();
    remove("ConfigMap", "ca");
    addCaConfigMap("ca",
                   "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
    addPolicy("p");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    expectCond(ancestor("p"), "ResolvedRefs", "False", "InvalidCACertificateRef");
    EXPECT_TRUE(
        contains(message(ancestor("p"), "ResolvedRefs"), "ConfigMap default/ca: malformed PEM: "));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

TEST_F(ReconcilerTest, CaRefOfUnsupportedKindIsInvalidKind) {
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
        "caCertificateRefs": [{"group": "example.com", "kind": "Bundle", "name": "ca"}]})");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    expectCond(ancestor("p"), "ResolvedRefs", "False", "InvalidKind");
    EXPECT_TRUE(contains(message(ancestor("p"), "ResolvedRefs"), "Bundle"));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

TEST_F(ReconcilerTest, SomeBadRefsKeepAcceptedButFailTheWholePolicyClosed) {
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"},
                              {"group": "", "kind": "ConfigMap", "name": "gone"}]})");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    expectCond(ancestor("p"), "ResolvedRefs", "False", "InvalidCACertificateRef");
    EXPECT_TRUE(
        contains(message(ancestor("p"), "ResolvedRefs"), "ConfigMap default/gone not found"));
    EXPECT_FALSE(contains(message(ancestor("p"), "ResolvedRefs"), "default/ca "));
    ASSERT_NE(profile("echo", 443), nullptr);
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

TEST_F(ReconcilerTest, UnsupportedWellKnownCaIsInvalidAndFailsClosed) {
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
                                     "wellKnownCACertificates": "example.com/bundle"})");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "example.com/bundle"));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

// The host may or may not have a system store; either way status and profile agree.
TEST_F(ReconcilerTest, SystemTrustIsAcceptedOrInvalidWhenTheHostHasNoStore) {
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
                                     "wellKnownCACertificates": "System"})");
    run();
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_TRUE(prof->spec().systemTrust);
    if (prof->isFailClosed()) {
        expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    } else {
        expectCond(ancestor("p"), "Accepted", "True", "Accepted");
        expectCond(ancestor("p"), "ResolvedRefs", "True", "ResolvedRefs");
    }
}

TEST_F(ReconcilerTest, MissingTargetServiceIsTargetNotFoundOnGatewaysRoutingToIt) {
    addGateway("default", "gw");
    addHttpRoute("default", "r", "gw", "echo", 443);
    addCaConfigMap("ca", pki_.caPem());
    addPolicy("p");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "TargetNotFound");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "Service default/echo not found"));
    EXPECT_TRUE(out_.profiles.empty());
    expectCond((*status("HTTPRoute", "default", "r"))["parents"][0], "ResolvedRefs", "False",
               "BackendNotFound");
}

TEST_F(ReconcilerTest, SectionNameNamingNoPortIsTargetNotFound) {
    addWorld();
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "nope"}])");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "TargetNotFound");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "no port named nope"));
    EXPECT_EQ(profile("echo", 443), nullptr);
}

TEST_F(ReconcilerTest, TargetingAUdpPortIsInvalidAndGetsNoProfile) {
    addGateway("default", "gw");
    addService("default", "dns", R"([{"name": "dns", "port": 53, "protocol": "UDP"}])");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
            "metadata": {"namespace": "default", "name": "t", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "dns", "port": 53}]}]}})");
    addCaConfigMap("ca", pki_.caPem());
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "dns", "sectionName": "dns"}])");
    addPolicy("whole", R"([{"group": "", "kind": "Service", "name": "dns"}])");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "UDP"));
    expectCond(ancestor("whole"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(out_.profiles.empty());
}

TEST_F(ReconcilerTest, IpLiteralHostnameIsInvalidAndFailsClosed) {
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "10.0.0.1",
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "10.0.0.1"));
    expectCond(ancestor("p"), "ResolvedRefs", "True", "ResolvedRefs");
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

// The hostname pattern admits forms that resolvers and URL parsers read as IPv4 (a last label
// that is a number: "10.0.0.010", "10.1", "167772161", or hex: "0x7f000001", "0x7f.1").
TEST_F(ReconcilerTest, IpLiteralHostnameInShortOrZeroPaddedFormIsInvalid) {
    for (const char* host : {"10.0.0.010", "10.1", "167772161", "0x7f000001", "127.1", "0x7f.1"}) {
        objects_.clear();
        addWorld();
        addPolicyWithValidation("p", std::string(R"({"hostname": ")") + host + R"(",
            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})");
        run();
        expectCond(ancestor("p"), "Accepted", "False", "Invalid");
        EXPECT_TRUE(profile("echo", 443)->isFailClosed()) << host;
    }
    objects_.clear();
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "10-0-0-1.echo.svc",
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
}

TEST_F(ReconcilerTest, BadOptionsAreInvalidNamingTheKeyAndFailClosed) {
    struct Case {
        const char* options;
        const char* named;
    };
    const Case cases[] = {
        {R"({"min-tls-version": "1.3"})", "min-tls-version"},
        {R"({"lastmile.dev/turbo": "on"})", "lastmile.dev/turbo"},
        {R"({"lastmile.dev/min-tls-version": "1.0"})", "1.0"},
        {R"({"lastmile.dev/offload": "gpu"})", "gpu"},
    };
    for (const auto& c : cases) {
        objects_.clear();
        addWorld();
        addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo"}])",
                  R"({"hostname": "echo.default.svc",
                      "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
                  "2026-01-01T00:00:00Z", 1, c.options);
        run();
        expectCond(ancestor("p"), "Accepted", "False", "Invalid");
        EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), c.named)) << c.options;
        EXPECT_TRUE(profile("echo", 443)->isFailClosed()) << c.options;
    }
}

TEST_F(ReconcilerTest, OptionValueTheCompilerRejectsIsInvalidWithItsMessage) {
    addWorld();
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "echo.default.svc",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z", 1, R"({"lastmile.dev/cipher-suites": "NOT-A-CIPHER"})");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

// The mixed-refs row keeps Accepted=True, but an option the compiler rejects is still Invalid:
// the fail-closed profile must not hide it.
TEST_F(ReconcilerTest, OptionTheCompilerRejectsIsInvalidEvenWhenSomeRefsAreBad) {
    addWorld();
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "echo.default.svc",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"},
                                        {"group": "", "kind": "ConfigMap", "name": "gone"}]})",
              "2026-01-01T00:00:00Z", 1, R"({"lastmile.dev/cipher-suites": "NOT-A-CIPHER"})");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "NOT-A-CIPHER"));
    expectCond(ancestor("p"), "ResolvedRefs", "False", "InvalidCACertificateRef");
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

// Whether a policy is Invalid must not depend on which of its ports traffic happens to reach.
TEST_F(ReconcilerTest, OptionTheCompilerRejectsIsInvalidEvenWhenThePolicyGovernsNoBackend) {
    addWorld();
    addPolicy("whole", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "echo.default.svc",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z", 1, R"({"lastmile.dev/cipher-suites": "NOT-A-CIPHER"})");
    addPolicy("port",
              R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "https"}])");
    run();
    expectCond(ancestor("port"), "Accepted", "True", "Accepted");
    expectCond(ancestor("whole"), "Accepted", "False", "Invalid");
    EXPECT_FALSE(profile("echo", 443)->isFailClosed());
}

TEST_F(ReconcilerTest, OptionKeyWithAnEmptyDomainIsInvalid) {
    addWorld();
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "echo.default.svc",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z", 1, R"({"/min-tls-version": "1.3"})");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "/min-tls-version"));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

// Rows marked "-" for ResolvedRefs: there is nothing to resolve, and the message must not
// claim that references were resolved.
TEST_F(ReconcilerTest, ResolvedRefsDoesNotClaimResolvedReferencesWhenThereAreNone) {
    addWorld();
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
                                     "wellKnownCACertificates": "example.com/bundle"})");
    run();
    expectCond(ancestor("p"), "ResolvedRefs", "True", "ResolvedRefs");
    EXPECT_FALSE(contains(message(ancestor("p"), "ResolvedRefs"), "references resolved"));
}

TEST_F(ReconcilerTest, OptionsOfOtherDomainsAreIgnoredAndNoted) {
    addWorld();
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "echo.default.svc",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z", 1,
              R"({"example.com/foo": "bar", "lastmile.dev/max-tls-version": "1.3",
                               "lastmile.dev/alpn-protocols": "h2"})");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"),
                         "ignored options of other implementations: example.com/foo"));
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_FALSE(prof->isFailClosed());
    EXPECT_EQ(prof->spec().alpnProtocols, std::vector<std::string>{"h2"});
}

// ---- CA sources and live changes.

TEST_F(ReconcilerTest, ConfigMapLifecycleIsFollowedByStatusAndProfiles) {
    addGateway("default", "gw");
    addService("default", "echo");
    addHttpRoute("default", "r", "gw", "echo", 443);
    addPolicy("p");

    run();  // missing
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
    writeBack();

    addCaConfigMap("ca", pki_.caPem());  // created
    now_ += 10s;
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    expectCond(ancestor("p"), "ResolvedRefs", "True", "ResolvedRefs");
    EXPECT_FALSE(profile("echo", 443)->isFailClosed());
    writeBack();

    object("ConfigMap", "default", "ca")["data"]["ca.crt"] = "";  // emptied
    now_ += 10s;
    run();
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    EXPECT_TRUE(contains(message(ancestor("p"), "ResolvedRefs"), "ca.crt is empty"));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
    writeBack();

    object("ConfigMap", "default", "ca")["data"]["ca.crt"] = pki_.caPem();  // restored
    now_ += 10s;
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    EXPECT_FALSE(profile("echo", 443)->isFailClosed());
    writeBack();

    remove("ConfigMap", "ca");  // deleted
    now_ += 10s;
    run();
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    EXPECT_TRUE(contains(message(ancestor("p"), "ResolvedRefs"), "not found"));
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

TEST_F(ReconcilerTest, SecretIsAcceptedAsCaSource) {
    addGateway("default", "gw");
    addService("default", "echo");
    addHttpRoute("default", "r", "gw", "echo", 443);
    addSecret("default", "ca-secret", Json{{"ca.crt", pki_.caPem()}});
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
        "caCertificateRefs": [{"group": "", "kind": "Secret", "name": "ca-secret"}]})");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    expectCond(ancestor("p"), "ResolvedRefs", "True", "ResolvedRefs");
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_FALSE(prof->isFailClosed());
    EXPECT_EQ(prof->spec().caBundlePem, pki_.caPem());
}

// Secret `data` is base64 and must decode to PEM; ConfigMap `binaryData` is base64 too.
TEST_F(ReconcilerTest, BadBase64InASecretIsNamedAndBinaryDataOfAConfigMapIsDecoded) {
    addGateway("default", "gw");
    addService("default", "echo");
    addHttpRoute("default", "r", "gw", "echo", 443);
    add(R"({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"namespace": "default", "name": "garbled"}, "data": {"ca.crt": "%%%"}})");
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
        "caCertificateRefs": [{"group": "", "kind": "Secret", "name": "garbled"}]})");
    run();
    expectCond(ancestor("p"), "Accepted", "False", "NoValidCACertificate");
    expectCond(ancestor("p"), "ResolvedRefs", "False", "InvalidCACertificateRef");
    EXPECT_TRUE(contains(message(ancestor("p"), "ResolvedRefs"),
                         "Secret default/garbled: ca.crt is not valid base64"));

    Json cm = Json::parse(R"({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"namespace": "default", "name": "garbled"}})");
    cm["binaryData"]["ca.crt"] = base64Encode(pki_.caPem());
    objects_.push_back(std::move(cm));
    Json& refs = object("BackendTLSPolicy", "default", "p")["spec"]["validation"];
    refs["caCertificateRefs"][0]["kind"] = "ConfigMap";
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    EXPECT_EQ(profile("echo", 443)->spec().caBundlePem, pki_.caPem());
}

TEST_F(ReconcilerTest, SeveralRefsAreConcatenated) {
    addWorld();
    test::TestPki other;
    addSecret("default", "ca2", Json{{"ca.crt", other.caPem()}});
    addPolicyWithValidation("p", R"({"hostname": "echo.default.svc",
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"},
                              {"group": "", "kind": "Secret", "name": "ca2"}]})");
    run();
    expectCond(ancestor("p"), "ResolvedRefs", "True", "ResolvedRefs");
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_EQ(prof->spec().caBundlePem, pki_.caPem() + other.caPem());
    EXPECT_EQ(prof->trustAnchors().size(), 2u);
}

// ---- Section 3: conflicts.

TEST_F(ReconcilerTest, OlderPolicyWinsAndTheLoserIsConflictedOnEveryAncestor) {
    addWorld();
    addGateway("default", "gw2");
    addHttpRoute("default", "r2", "gw2", "echo", 443);
    addPolicy("young", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "young.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-02T00:00:00Z");
    addPolicy("old", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "old.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z");
    run();
    for (const char* gw : {"gw", "gw2"}) {
        expectCond(ancestor("old", gw), "Accepted", "True", "Accepted");
        expectCond(ancestor("young", gw), "Accepted", "False", "Conflicted");
        EXPECT_TRUE(contains(message(ancestor("young", gw), "Accepted"), "default/old"));
    }
    EXPECT_EQ(profile("echo", 443)->spec().sni, "old.example");
    EXPECT_EQ(profile("echo", 443)->spec().policy, "default/old");
}

TEST_F(ReconcilerTest, SameSecondTieGoesToTheFirstNamespaceName) {
    addWorld();
    addPolicy("b", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "b.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z");
    addPolicy("a", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "a.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z");
    run();
    expectCond(ancestor("a"), "Accepted", "True", "Accepted");
    expectCond(ancestor("b"), "Accepted", "False", "Conflicted");
    EXPECT_EQ(profile("echo", 443)->spec().sni, "a.example");
}

TEST_F(ReconcilerTest, PortPolicyAndWholeServicePolicyBothGovernTheirPorts) {
    addWorld();
    addHttpRoute("default", "r-alt", "gw", "echo", 8443);
    addPolicy("whole", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "whole.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z");
    addPolicy("port", R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "alt"}])",
              R"({"hostname": "port.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-02T00:00:00Z");
    run();
    expectCond(ancestor("whole"), "Accepted", "True", "Accepted");
    expectCond(ancestor("port"), "Accepted", "True", "Accepted");
    ASSERT_NE(profile("echo", 443), nullptr);
    ASSERT_NE(profile("echo", 8443), nullptr);
    EXPECT_EQ(profile("echo", 443)->spec().sni, "whole.example");
    EXPECT_EQ(profile("echo", 8443)->spec().sni, "port.example");
}

TEST_F(ReconcilerTest, PoliciesOnTheSameSectionNameConflict) {
    addWorld();
    addPolicy("first",
              R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "https"}])",
              R"({"hostname": "first.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z");
    addPolicy("second",
              R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "https"}])",
              R"({"hostname": "second.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:05Z");
    run();
    expectCond(ancestor("first"), "Accepted", "True", "Accepted");
    expectCond(ancestor("second"), "Accepted", "False", "Conflicted");
    EXPECT_EQ(profile("echo", 443)->spec().sni, "first.example");
}

// A policy that wins one target and loses another is Conflicted only on the Gateways
// reached through the lost target, and never governs it.
TEST_F(ReconcilerTest, MultiTargetPolicyIsConflictedOnlyWhereItLoses) {
    addWorld();
    addService("default", "other");
    addGateway("default", "gw2");
    addHttpRoute("default", "r2", "gw2", "other", 443);
    addPolicy("old", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "old.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z");
    addPolicy("multi", R"([{"group": "", "kind": "Service", "name": "echo"},
                            {"group": "", "kind": "Service", "name": "other"}])",
              R"({"hostname": "multi.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-05T00:00:00Z");
    run();
    expectCond(ancestor("multi", "gw"), "Accepted", "False", "Conflicted");
    expectCond(ancestor("multi", "gw2"), "Accepted", "True", "Accepted");
    EXPECT_EQ(profile("echo", 443)->spec().policy, "default/old");
    EXPECT_EQ(profile("other", 443)->spec().policy, "default/multi");
}

// ---- Ancestor bookkeeping.

TEST_F(ReconcilerTest, ObservedGenerationFollowsThePolicyGeneration) {
    addWorld();
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "echo.default.svc",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z", 7);
    run();
    EXPECT_EQ(cond(ancestor("p"), "Accepted")["observedGeneration"], 7);
    EXPECT_EQ(cond(ancestor("p"), "ResolvedRefs")["observedGeneration"], 7);
    object("BackendTLSPolicy", "default", "p")["metadata"]["generation"] = 8;
    run();
    EXPECT_EQ(cond(ancestor("p"), "Accepted")["observedGeneration"], 8);
}

TEST_F(ReconcilerTest, OtherControllersAncestorEntriesAreKept) {
    addWorld();
    addPolicy("p");
    Json foreign = Json::parse(R"({"ancestorRef": {"group": "gateway.networking.k8s.io",
        "kind": "Gateway", "namespace": "default", "name": "theirs"},
        "controllerName": "example.com/other",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]})");
    Json staleOurs = Json::parse(R"({"ancestorRef": {"group": "gateway.networking.k8s.io",
        "kind": "Gateway", "namespace": "default", "name": "gone"},
        "controllerName": "lastmile.dev/appliance", "conditions": []})");
    object("BackendTLSPolicy", "default", "p")["status"] =
        Json{{"ancestors", Json::array({foreign, staleOurs})}};
    run();
    const Json& ancestors = policyStatus("p")["ancestors"];
    ASSERT_EQ(ancestors.size(), 2u);
    EXPECT_EQ(ancestors[0], foreign);
    EXPECT_EQ(ancestors[1]["ancestorRef"]["name"], "gw");
}

TEST_F(ReconcilerTest, PolicyRelevantToNoAncestorHasAnEmptyList) {
    addGateway("default", "gw");
    addService("default", "echo");
    addCaConfigMap("ca", pki_.caPem());
    addPolicy("p");
    object("BackendTLSPolicy", "default", "p")["status"] = Json::parse(R"({"ancestors": [
        {"ancestorRef": {"name": "gw"}, "controllerName": "lastmile.dev/appliance", "conditions": []}]})");
    run();
    EXPECT_EQ(policyStatus("p"), Json::parse(R"({"ancestors": []})"));
    EXPECT_TRUE(out_.profiles.empty());
}

TEST_F(ReconcilerTest, AncestorsAreCappedAtSixteenSortedByNamespaceName) {
    addService("default", "echo");
    addCaConfigMap("ca", pki_.caPem());
    for (int i = 0; i < 20; ++i) {
        char name[8];
        std::snprintf(name, sizeof name, "gw%02d", i);
        addGateway("default", name);
        addHttpRoute("default", std::string("r") + name, name, "echo", 443);
    }
    addPolicy("p");
    run();
    const Json& ancestors = policyStatus("p")["ancestors"];
    ASSERT_EQ(ancestors.size(), 16u);
    EXPECT_EQ(ancestors[0]["ancestorRef"]["name"], "gw00");
    EXPECT_EQ(ancestors[15]["ancestorRef"]["name"], "gw15");
}

TEST_F(ReconcilerTest, CapKeepsOtherControllersEntriesFirst) {
    addService("default", "echo");
    addCaConfigMap("ca", pki_.caPem());
    for (int i = 0; i < 20; ++i) {
        char name[8];
        std::snprintf(name, sizeof name, "gw%02d", i);
        addGateway("default", name);
        addHttpRoute("default", std::string("r") + name, name, "echo", 443);
    }
    addPolicy("p");
    Json foreign = Json::array();
    for (int i = 0; i < 3; ++i) {
        foreign.push_back(Json{{"ancestorRef", Json{{"name", "theirs" + std::to_string(i)}}},
                               {"controllerName", "example.com/other"},
                               {"conditions", Json::array()}});
    }
    object("BackendTLSPolicy", "default", "p")["status"] = Json{{"ancestors", foreign}};
    run();
    const Json& ancestors = policyStatus("p")["ancestors"];
    ASSERT_EQ(ancestors.size(), 16u);
    EXPECT_EQ(ancestors[0], foreign[0]);
    EXPECT_EQ(ancestors[2], foreign[2]);
    EXPECT_EQ(ancestors[3]["ancestorRef"]["name"], "gw00");
    EXPECT_EQ(ancestors[15]["ancestorRef"]["name"], "gw12");
}

TEST_F(ReconcilerTest, ServiceWithoutEndpointSlicesStillGetsItsAncestor) {
    addWorld();  // no EndpointSlice anywhere
    add(R"({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "default", "name": "unrelated",
                         "labels": {"kubernetes.io/service-name": "other"}}})");
    addPolicy("p");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
}

TEST_F(ReconcilerTest, LastTransitionTimeIsKeptWhileTheStatusIsUnchanged) {
    addWorld();
    addPolicy("p");
    run();
    writeBack();
    const std::string first = cond(ancestor("p"), "Accepted")["lastTransitionTime"];
    now_ += 1h;
    run();
    EXPECT_EQ(cond(ancestor("p"), "Accepted")["lastTransitionTime"], first);
    writeBack();
    remove("ConfigMap", "ca");
    run();
    EXPECT_NE(cond(ancestor("p"), "Accepted")["lastTransitionTime"], first);
    EXPECT_EQ(cond(ancestor("p"), "Accepted")["lastTransitionTime"], "2027-01-15T09:00:00Z");
}

// ---- Gateways and Routes.

TEST_F(ReconcilerTest, GatewayStatusListsListenersAndAttachedRoutes) {
    addWorld();
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"namespace": "default", "name": "odd", "generation": 3},
            "spec": {"gatewayClassName": "lastmile",
                     "listeners": [{"name": "tls", "port": 443, "protocol": "HTTPS"}]}})");
    run();
    const Json* gw = status("Gateway", "default", "gw");
    ASSERT_NE(gw, nullptr);
    expectCond(*gw, "Accepted", "True", "Accepted");
    // Nothing binds listeners yet, so nothing may claim they are programmed.
    expectCond(*gw, "Programmed", "False", "Pending");
    expectCond(*gw, "ResolvedRefs", "True", "ResolvedRefs");
    EXPECT_EQ(cond(*gw, "Accepted")["observedGeneration"], 1);
    const Json& listeners = (*gw)["listeners"];
    ASSERT_EQ(listeners.size(), 2u);
    EXPECT_EQ(listeners[0]["name"], "http");
    EXPECT_EQ(listeners[0]["attachedRoutes"], 1);
    EXPECT_EQ(listeners[0]["supportedKinds"][0]["kind"], "HTTPRoute");
    EXPECT_EQ(listeners[1]["attachedRoutes"], 0);
    EXPECT_EQ(listeners[1]["supportedKinds"][0]["kind"], "TCPRoute");
    expectCond(listeners[0], "Accepted", "True", "Accepted");

    const Json* odd = status("Gateway", "default", "odd");
    ASSERT_NE(odd, nullptr);
    expectCond((*odd)["listeners"][0], "Accepted", "False", "UnsupportedProtocol");
    EXPECT_EQ(cond(*odd, "Accepted")["observedGeneration"], 3);
}

TEST_F(ReconcilerTest, BadClientCertificateRefKeepsTheGatewayAccepted) {
    const char* refs[] = {
        R"({"backend": {"clientCertificateRef": {"name": "missing"}}})",
        R"({"backend": {"clientCertificateRef": {"name": "client", "namespace": "other"}}})",
        R"({"backend": {"clientCertificateRef": {"name": "client", "kind": "ConfigMap"}}})",
        R"({"backend": {"clientCertificateRef": {"name": "mismatched"}}})",
        R"({"backend": {"clientCertificateRef": {"name": "nokey"}}})",
    };
    auto client = pki_.issueClient("lastmile-client");
    test::TestPki other;
    auto stranger = other.issueClient("someone-else");
    for (const char* ref : refs) {
        objects_.clear();
        addGateway("default", "gw", "lastmile", ref);
        addSecret("default", "mismatched",
                  Json{{"tls.crt", client.certPem}, {"tls.key", stranger.keyPem}});
        addSecret("default", "nokey", Json{{"tls.crt", client.certPem}});
        addSecret("other", "client", Json{{"tls.crt", client.certPem}, {"tls.key", client.keyPem}});
        run();
        const Json* gw = status("Gateway", "default", "gw");
        ASSERT_NE(gw, nullptr);
        expectCond(*gw, "Accepted", "True", "Accepted");
        expectCond(*gw, "ResolvedRefs", "False", "InvalidClientCertificateRef");
    }
    EXPECT_TRUE(contains(message(*status("Gateway", "default", "gw"), "ResolvedRefs"), "tls.key"));
}

TEST_F(ReconcilerTest, ValidClientCertificateRefReachesTheProfile) {
    addGateway("default", "gw", "lastmile",
               R"({"backend": {"clientCertificateRef": {"name": "client"}}})");
    addService("default", "echo");
    addHttpRoute("default", "r", "gw", "echo", 443);
    addCaConfigMap("ca", pki_.caPem());
    auto client = pki_.issueClient("lastmile-client");
    addSecret("default", "client", Json{{"tls.crt", client.certPem}, {"tls.key", client.keyPem}});
    addPolicy("p");
    run();
    expectCond(*status("Gateway", "default", "gw"), "ResolvedRefs", "True", "ResolvedRefs");
    const auto* prof = profile("echo", 443);
    ASSERT_NE(prof, nullptr);
    EXPECT_FALSE(prof->isFailClosed()) << prof->failClosedReason();
    ASSERT_TRUE(prof->spec().clientCertificate.has_value());
    EXPECT_EQ(prof->spec().clientCertificate->certChainPem, client.certPem);
}

TEST_F(ReconcilerTest, RouteReportsUnresolvableBackendRefs) {
    addGateway("default", "gw");
    addService("default", "echo");
    addHttpRoute("default", "no-port", "gw", "echo", 9999);
    addHttpRoute("default", "no-svc", "gw", "nothing", 443);
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "default", "name": "kind", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]}]}})");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "default", "name": "cross", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "echo", "namespace": "prod", "port": 443}]}]}})");
    run();
    auto parent = [&](const char* route) {
        return (*status("HTTPRoute", "default", route))["parents"][0];
    };
    expectCond(parent("no-port"), "ResolvedRefs", "False", "BackendNotFound");
    expectCond(parent("no-port"), "Accepted", "True", "Accepted");
    expectCond(parent("no-svc"), "ResolvedRefs", "False", "BackendNotFound");
    expectCond(parent("kind"), "ResolvedRefs", "False", "InvalidKind");
    expectCond(parent("cross"), "ResolvedRefs", "False", "RefNotPermitted");
    EXPECT_EQ(parent("no-port")["controllerName"], kController);
    EXPECT_EQ(parent("no-port")["parentRef"], Json::parse(R"({"name": "gw"})"));
}

TEST_F(ReconcilerTest, RouteAcceptanceFollowsListeners) {
    addGateway("default", "gw");
    addService("default", "echo");
    addService("apps", "echo");
    addHttpRoute("default", "bad-section", "gw", "echo", 443, R"({"sectionName": "nope"})");
    addHttpRoute("default", "wrong-protocol", "gw", "echo", 443, R"({"sectionName": "tcp"})");
    addHttpRoute("apps", "other-ns", "gw", "echo", 443, R"({"namespace": "default"})");
    run();
    auto parent = [&](const char* ns, const char* route) {
        return (*status("HTTPRoute", ns, route))["parents"][0];
    };
    expectCond(parent("default", "bad-section"), "Accepted", "False", "NoMatchingParent");
    // A listener whose protocol does not take the Route's kind is one whose allowedRoutes
    // exclude it: Gateway API conformance (HTTPRouteDisallowedKind) wants NotAllowedByListeners.
    expectCond(parent("default", "wrong-protocol"), "Accepted", "False", "NotAllowedByListeners");
    expectCond(parent("apps", "other-ns"), "Accepted", "False", "NotAllowedByListeners");
    EXPECT_EQ((*status("Gateway", "default", "gw"))["listeners"][0]["attachedRoutes"], 0);
}

TEST_F(ReconcilerTest, TcpRouteFromAnotherNamespaceAttachesWhereListenerAllowsAll) {
    addGateway("infra", "gw");
    addService("apps", "db", R"([{"name": "pg", "port": 5432}])");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
            "metadata": {"namespace": "apps", "name": "t", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                     "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]}})");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
            "metadata": {"namespace": "apps", "name": "p", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "db", "sectionName": "pg"}],
                     "validation": {"hostname": "db.apps.svc",
                                    "wellKnownCACertificates": "example.com/x"}}})");
    run();
    expectCond((*status("TCPRoute", "apps", "t"))["parents"][0], "Accepted", "True", "Accepted");
    EXPECT_EQ((*status("Gateway", "infra", "gw"))["listeners"][1]["attachedRoutes"], 1);
    const Json& a = (*status("BackendTLSPolicy", "apps", "p"))["ancestors"][0];
    EXPECT_EQ(a["ancestorRef"]["namespace"], "infra");
    expectCond(a, "Accepted", "False", "Invalid");
    ASSERT_NE(profile("db", 5432, "apps"), nullptr);
    EXPECT_TRUE(profile("db", 5432, "apps")->isFailClosed());
}

TEST_F(ReconcilerTest, OtherControllersRouteParentsAreKept) {
    addWorld();
    Json foreign = Json::parse(R"({"parentRef": {"name": "theirs"},
        "controllerName": "example.com/other", "conditions": []})");
    object("HTTPRoute", "default", "r")["status"] = Json{{"parents", Json::array({foreign})}};
    run();
    const Json& parents = (*status("HTTPRoute", "default", "r"))["parents"];
    ASSERT_EQ(parents.size(), 2u);
    EXPECT_EQ(parents[0], foreign);
}

TEST_F(ReconcilerTest, RouteToAnotherGatewayClassGivesNoAncestorAndNoStatus) {
    addGateway("default", "gw", "someone-else");
    addService("default", "echo");
    addHttpRoute("default", "r", "gw", "echo", 443);
    addCaConfigMap("ca", pki_.caPem());
    addPolicy("p");
    run();
    EXPECT_EQ(status("Gateway", "default", "gw"), nullptr);
    EXPECT_EQ(status("HTTPRoute", "default", "r"), nullptr);
    EXPECT_EQ(policyStatus("p")["ancestors"], Json::array());
    EXPECT_TRUE(out_.profiles.empty());
}

TEST_F(ReconcilerTest, BackendsWithoutPolicyGetNoProfile) {
    addWorld();
    addService("default", "plain");
    addHttpRoute("default", "r-plain", "gw", "plain", 443);
    addPolicy("p");
    run();
    EXPECT_EQ(out_.profiles.size(), 1u);
    EXPECT_EQ(profile("plain", 443), nullptr);
}

TEST_F(ReconcilerTest, UnsupportedTargetKindsAreIgnoredAndNoted) {
    addWorld();
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo"},
                       {"group": "apps", "kind": "Deployment", "name": "web"}])");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "apps/Deployment web"));
}

TEST_F(ReconcilerTest, OddlyShapedObjectsNeitherThrowNorFail) {
    addWorld();
    addPolicy("p");
    add(R"({"apiVersion": 5, "kind": "Gateway", "metadata": {"namespace": "default", "name": "x"}})");
    add(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": "y"},
            "spec": "not an object"})");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"namespace": "default", "name": "z"},
            "spec": {"gatewayClassName": "lastmile", "listeners": {"name": "a"}}})");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "default", "name": "odd"},
            "spec": {"parentRefs": [{"name": "z"}], "rules": [{"backendRefs": "none"}]}})");
    add(R"(["not", "an", "object"])");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    ASSERT_NE(status("HTTPRoute", "default", "odd"), nullptr);
}

// Admission is not the reconciler's only source (status writes, older stored objects): a
// policy missing optional and even required fields must still give a status, not an error.
TEST_F(ReconcilerTest, PoliciesWithMissingOrMistypedFieldsNeitherThrowNorFail) {
    addWorld();
    const char* policies[] = {
        R"({"spec": {"targetRefs": [{"kind": "Service", "name": "echo"}]}})",
        R"({"spec": {"targetRefs": "echo", "validation": []}})",
        R"({"metadata": {"generation": "7", "creationTimestamp": "yesterday"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "echo",
                                     "sectionName": 443}],
                     "validation": {"hostname": 5, "caCertificateRefs": ["ca", {}],
                                    "subjectAltNames": [{"type": "URI"}, 3]},
                     "options": "lastmile.dev/offload=kernel"}})",
        R"({"spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "echo"}],
                     "validation": {"hostname": "echo.default.svc",
                                    "caCertificateRefs": [{"group": "", "kind": "Secret",
                                                           "name": "odd"}]},
                     "options": {"lastmile.dev/alpn-protocols": ["h2"], "x": null}},
            "status": {"ancestors": [5, {"ancestorRef": "gw", "controllerName": 1}]}})",
    };
    add(R"({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"namespace": "default", "name": "odd"}, "data": {"ca.crt": 42}})");
    int i = 0;
    for (const char* text : policies) {
        Json policy = Json::parse(text);
        Json meta = policy.contains("metadata") ? policy["metadata"] : Json::object();
        meta["namespace"] = "default";
        meta["name"] = "p" + std::to_string(i++);
        policy["metadata"] = meta;
        policy["apiVersion"] = "gateway.networking.k8s.io/v1";
        policy["kind"] = "BackendTLSPolicy";
        objects_.push_back(std::move(policy));
    }
    run();
    for (int j = 0; j < i; ++j) {
        EXPECT_NE(status("BackendTLSPolicy", "default", "p" + std::to_string(j)), nullptr) << j;
    }
    ASSERT_NE(profile("echo", 443), nullptr);
    EXPECT_TRUE(profile("echo", 443)->isFailClosed());
}

// ---- Determinism.

TEST_F(ReconcilerTest, ShuffledInputGivesIdenticalOutput) {
    addWorld();
    addGateway("default", "gw2");
    addHttpRoute("default", "r2", "gw2", "echo", 8443);
    addPolicy("a", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "a.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]})",
              "2026-01-01T00:00:00Z");
    addPolicy("b", R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "alt"}])",
              R"({"hostname": "b.example",
                  "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "missing"}]})",
              "2026-01-01T00:00:00Z");
    addPolicy("c", R"([{"group": "", "kind": "Service", "name": "echo"}])",
              R"({"hostname": "c.example", "wellKnownCACertificates": "System"})",
              "2026-01-01T00:00:00Z");
    auto dump = [](const ReconcileOutput& out) {
        std::string s;
        for (const auto& st : out.statuses) {
            s += st.key.kind + "/" + st.key.ns + "/" + st.key.name + "=" + st.status.dump() + "\n";
        }
        for (const auto& p : out.profiles) {
            s += p->spec().backend.service + ":" + std::to_string(p->spec().backend.port) + " " +
                 p->spec().policy + " " + p->spec().sni + " " + p->failClosedReason() + "\n";
        }
        return s;
    };
    const std::string expected = dump(run());
    std::mt19937 rng(42);
    for (int i = 0; i < 5; ++i) {
        std::shuffle(objects_.begin(), objects_.end(), rng);
        EXPECT_EQ(dump(run()), expected);
    }
}

// ---- Listener plans and bind states.

class ListenerPlanTest : public ReconcilerTest {
protected:
    void addSlice(const std::string& name, const std::string& service, const std::string& ports,
                  const std::string& endpoints, const std::string& addressType = "IPv4") {
        Json slice = Json::parse(R"({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "default"}})");
        slice["metadata"]["name"] = name;
        slice["metadata"]["labels"] = Json{{"kubernetes.io/service-name", service}};
        slice["addressType"] = addressType;
        slice["ports"] = Json::parse(ports);
        slice["endpoints"] = Json::parse(endpoints);
        objects_.push_back(std::move(slice));
    }

    const route::ListenerPlan& plan(const std::string& listener, const std::string& gw = "gw") {
        for (const auto& l : out_.listeners) {
            if (l.id.gateway == gw && l.id.listener == listener) {
                return l;
            }
        }
        throw std::runtime_error("no plan for listener " + listener);
    }

    // The backends of listener `http` as "service:port*weight=ep,ep" strings.
    std::vector<std::string> backendsOf(const std::string& listener) {
        std::vector<std::string> out;
        for (const auto& b : plan(listener).backends) {
            std::string s = b.key.service + ":" + std::to_string(b.key.port) + "*" +
                            std::to_string(b.weight) + "=";
            for (const auto& e : b.endpoints) {
                s += e.address + ":" + std::to_string(e.port) + ",";
            }
            if (!b.externalName.empty()) {
                s += b.externalName + ":" + std::to_string(b.externalPort);
            }
            out.push_back(s);
        }
        return out;
    }

    void setState(const std::string& listener, bool bound, const std::string& message = "") {
        bound_[{ObjectKey{"gateway.networking.k8s.io", "Gateway", "default", "gw"}, listener}] =
            route::ListenerState{bound, message};
    }

    const Json& listenerStatus(const std::string& name) {
        for (const auto& l : (*status("Gateway", "default", "gw"))["listeners"]) {
            if (l["name"] == name) {
                return l;
            }
        }
        throw std::runtime_error("no listener status " + name);
    }
};

TEST_F(ListenerPlanTest, EverySupportedListenerGetsAPlanSortedWithItsRoutesBackends) {
    addWorld();
    addGateway("default", "a-first");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"namespace": "default", "name": "odd", "generation": 1},
            "spec": {"gatewayClassName": "lastmile",
                     "listeners": [{"name": "tls", "port": 443, "protocol": "HTTPS"}]}})");
    addGateway("default", "foreign", "other-class");
    addPolicy("p");
    addSlice("echo-1", "echo", R"([{"name": "https", "port": 8443}])",
             R"([{"addresses": ["10.0.0.2"]},
                 {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                 {"addresses": ["10.0.0.9"], "conditions": {"ready": false}},
                 {"addresses": ["10.0.0.1"]}])");
    run();
    ASSERT_EQ(out_.listeners.size(), 4u) << "HTTPS and foreign Gateways get no plan";
    EXPECT_EQ(out_.listeners[0].id.gateway, "a-first");
    EXPECT_EQ(out_.listeners[0].id.listener, "http");
    EXPECT_EQ(out_.listeners[1].id.listener, "tcp");
    EXPECT_EQ(out_.listeners[2].id.gateway, "gw");
    for (const auto& l : out_.listeners) {
        EXPECT_EQ(l.id.project, "") << "the controller fills the project";
        EXPECT_EQ(l.id.gatewayNamespace, "default");
        EXPECT_EQ(l.address, "");
    }
    const auto& http = plan("http");
    EXPECT_EQ(http.protocol, route::ListenerProtocol::Http);
    EXPECT_EQ(http.port, 8080);
    EXPECT_EQ(plan("tcp").protocol, route::ListenerProtocol::Tcp);
    EXPECT_EQ(plan("tcp").port, 9000);
    EXPECT_TRUE(plan("tcp").backends.empty());
    EXPECT_EQ(backendsOf("http"),
              std::vector<std::string>{"echo:443*1=10.0.0.1:8443,10.0.0.2:8443,"});
    ASSERT_EQ(out_.profiles.size(), 1u);
    EXPECT_EQ(http.backends[0].profile, out_.profiles[0]) << "the very profile object";
    EXPECT_EQ(http.backends[0].key, (tls::BackendKey{"default", "echo", 443}));
}

TEST_F(ListenerPlanTest, BackendWithoutPolicyHasNoProfile) {
    addWorld();
    run();
    ASSERT_EQ(plan("http").backends.size(), 1u);
    EXPECT_EQ(plan("http").backends[0].profile, nullptr);
    EXPECT_TRUE(plan("http").backends[0].endpoints.empty()) << "no EndpointSlice";
}

TEST_F(ListenerPlanTest, BindAddressIsTheFirstIpAddressOfTheGateway) {
    struct Case {
        const char* addresses;
        const char* want;
    } cases[] = {
        {R"([])", ""},
        {R"([{"type": "Hostname", "value": "gw.example"}, {"type": "IPAddress", "value": "10.1.1.1"},
             {"value": "10.2.2.2"}])",
         "10.1.1.1"},
        {R"([{"value": "fd00::1"}])", "fd00::1"},
        {R"([{"type": "Hostname", "value": "gw.example"}])", ""},
    };
    for (const auto& c : cases) {
        objects_.clear();
        addWorld();
        object("Gateway", "default", "gw")["spec"]["addresses"] = Json::parse(c.addresses);
        run();
        EXPECT_EQ(plan("http").address, c.want) << c.addresses;
        EXPECT_EQ(plan("tcp").address, c.want) << c.addresses;
    }
}

TEST_F(ListenerPlanTest, BindAddressIsTheFirstLocalAddressAndTheOthersAreVirtual) {
    config_.isLocalAddress = [](std::string_view ip) {
        return ip == "10.2.2.2" || ip == "fd00::2";
    };
    struct Case {
        const char* addresses;
        const char* bind;
        std::vector<std::string> virtuals;
    } cases[] = {
        {R"([{"value": "10.9.0.1"}, {"value": "10.2.2.2"}, {"value": "fd00::9"},
             {"value": "10.9.0.1"}, {"value": "fd00::2"}])",
         "10.2.2.2", {"10.9.0.1", "fd00::9"}},
        {R"([{"type": "Hostname", "value": "gw.example"}, {"value": "10.9.0.1"}])", "",
         {"10.9.0.1"}},
        {R"([{"value": "fd00::2"}])", "fd00::2", {}},
    };
    for (const auto& c : cases) {
        objects_.clear();
        addWorld();
        object("Gateway", "default", "gw")["spec"]["addresses"] = Json::parse(c.addresses);
        run();
        EXPECT_EQ(plan("tcp").address, c.bind) << c.addresses;
        EXPECT_EQ(plan("tcp").virtualAddresses, c.virtuals) << c.addresses;
        EXPECT_EQ(plan("http").virtualAddresses, c.virtuals) << c.addresses;
    }
}

TEST_F(ListenerPlanTest, VirtualAddressesTakenOverAreTheGatewaysStatusAddresses) {
    config_.isLocalAddress = [](std::string_view ip) { return ip == "127.0.0.1"; };
    addWorld();
    object("Gateway", "default", "gw")["spec"]["addresses"] = Json::parse(
        R"([{"value": "127.0.0.1"}, {"value": "10.9.0.1"}, {"value": "10.9.0.2"}])");
    run();
    EXPECT_FALSE(status("Gateway", "default", "gw")->contains("addresses")) << "nothing bound yet";
    route::ListenerState http{true, "bound"};
    http.intercepted = {{"10.9.0.1", {"host", "routed"}}, {"10.9.0.2", {"host"}}};
    bound_[{ObjectKey{"gateway.networking.k8s.io", "Gateway", "default", "gw"}, "http"}] = http;
    setState("tcp", true);
    run();
    EXPECT_EQ((*status("Gateway", "default", "gw"))["addresses"],
              Json::parse(R"([{"type": "IPAddress", "value": "10.9.0.1"},
                              {"type": "IPAddress", "value": "10.9.0.2"}])"));
    EXPECT_EQ(message(listenerStatus("http"), "Programmed"),
              "Listener is bound to 127.0.0.1:8080; takes over 10.9.0.1:8080 (host, routed mode); "
              "takes over 10.9.0.2:8080 (host mode)");
    expectCond(*status("Gateway", "default", "gw"), "Programmed", "True", "Programmed");
}

TEST_F(ListenerPlanTest, AVirtualAddressNoModeCanTakeLeavesTheGatewayNotProgrammed) {
    config_.isLocalAddress = [](std::string_view) { return false; };
    addWorld();
    object("Gateway", "default", "gw")["spec"]["addresses"] =
        Json::parse(R"([{"value": "10.9.0.1"}])");
    const std::string why =
        "10.9.0.1 is not an address of this host and interception is not configured";
    setState("http", false, why);
    setState("tcp", false, why);
    run();
    const Json& gw = *status("Gateway", "default", "gw");
    expectCond(gw, "Programmed", "False", "AddressNotUsable");
    EXPECT_NE(message(gw, "Programmed").find(why), std::string::npos) << message(gw, "Programmed");
    EXPECT_FALSE(gw.contains("addresses"));
}

TEST_F(ListenerPlanTest, EndpointPortFollowsTheServicePortName) {
    struct Case {
        const char* servicePorts;
        const char* slicePorts;
        int want;
    } cases[] = {
        // Same name.
        {R"([{"name": "https", "port": 443}, {"name": "alt", "port": 8443}])",
         R"([{"name": "alt", "port": 9443}, {"name": "https", "port": 6443}])", 6443},
        // Both unnamed.
        {R"([{"port": 443, "targetPort": 1}])", R"([{"port": 7443}])", 7443},
        // A single unnamed slice port serves a named Service port.
        {R"([{"name": "https", "port": 443}])", R"([{"port": 5443}])", 5443},
        // No matching slice port: the numeric targetPort.
        {R"([{"name": "https", "port": 443, "targetPort": 4443}])",
         R"([{"name": "other", "port": 1}])", 4443},
        // A named targetPort cannot be resolved without the slice: the port itself.
        {R"([{"name": "https", "port": 443, "targetPort": "web"}])", R"([])", 443},
    };
    for (const auto& c : cases) {
        objects_.clear();
        addGateway("default", "gw");
        addService("default", "echo", c.servicePorts);
        addHttpRoute("default", "r", "gw", "echo", 443);
        addSlice("s", "echo", c.slicePorts, R"([{"addresses": ["192.0.2.1"]}])");
        run();
        ASSERT_EQ(plan("http").backends.size(), 1u) << c.slicePorts;
        ASSERT_EQ(plan("http").backends[0].endpoints.size(), 1u) << c.slicePorts;
        EXPECT_EQ(plan("http").backends[0].endpoints[0].port, c.want) << c.slicePorts;
    }
}

TEST_F(ListenerPlanTest, SlicesOfOtherServicesNamespacesAndFqdnsAreNotEndpoints) {
    addWorld();
    addSlice("mine", "echo", R"([{"name": "https", "port": 443}])",
             R"([{"addresses": ["fd00::2", "fd00::1"]}])", "IPv6");
    addSlice("fqdn", "echo", R"([{"name": "https", "port": 443}])",
             R"([{"addresses": ["echo.example.com"]}])", "FQDN");
    addSlice("other", "other", R"([{"name": "https", "port": 443}])",
             R"([{"addresses": ["10.9.9.9"]}])");
    addSlice("elsewhere", "echo", R"([{"name": "https", "port": 443}])",
             R"([{"addresses": ["10.8.8.8"]}])");
    object("EndpointSlice", "default", "elsewhere")["metadata"]["namespace"] = "apps";
    run();
    EXPECT_EQ(backendsOf("http"), std::vector<std::string>{"echo:443*1=fd00::1:443,fd00::2:443,"});
}

TEST_F(ListenerPlanTest, WeightsAddUpAndUnusableReferencesAreLeftOut) {
    addGateway("default", "gw");
    addService("default", "echo");
    addService("default", "b");
    add(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "api.example.com",
                     "ports": [{"name": "https", "port": 443}]}})");
    add(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": "dns"},
            "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}})");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "default", "name": "r", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [
              {"backendRefs": [{"name": "echo", "port": 443, "weight": 3},
                               {"name": "b", "port": 443, "weight": 0},
                               {"name": "missing", "port": 443},
                               {"name": "echo", "port": 1},
                               {"name": "echo", "namespace": "apps", "port": 443}]},
              {"backendRefs": [{"name": "echo", "port": 443},
                               {"name": "ext", "port": 443},
                               {"name": "dns", "port": 53},
                               {"group": "example.com", "kind": "Bucket", "name": "x"}]}]}})");
    run();
    EXPECT_EQ(backendsOf("http"),
              (std::vector<std::string>{"echo:443*4=", "ext:443*1=api.example.com:443"}));
}

TEST_F(ListenerPlanTest, TcpRoutesFeedTcpListenersOnly) {
    addWorld();
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
            "metadata": {"namespace": "default", "name": "t", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "echo", "port": 8443}]}]}})");
    run();
    EXPECT_EQ(backendsOf("http"), std::vector<std::string>{"echo:443*1="});
    EXPECT_EQ(backendsOf("tcp"), std::vector<std::string>{"echo:8443*1="});
}

TEST_F(ListenerPlanTest, BindStatesDecideProgrammed) {
    struct Case {
        const char* name;
        std::optional<route::ListenerState> http;  // nullopt: not reported
        std::optional<route::ListenerState> tcp;
        const char* gatewayStatus;
        const char* gatewayReason;
        const char* httpReason;
        const char* tcpReason;
    } cases[] = {
        {"no dataplane", std::nullopt, std::nullopt, "False", "Pending", "Pending", "Pending"},
        {"all bound", route::ListenerState{true, ""}, route::ListenerState{true, ""}, "True",
         "Programmed", "Programmed", "Programmed"},
        {"one failed", route::ListenerState{true, ""},
         route::ListenerState{false, "0.0.0.0:9000: Address already in use"}, "False",
         "AddressNotUsable", "Programmed", "Invalid"},
        {"one pending", route::ListenerState{true, ""}, std::nullopt, "False", "Pending",
         "Programmed", "Pending"},
        {"failed outranks pending", std::nullopt, route::ListenerState{false, "boom"}, "False",
         "AddressNotUsable", "Pending", "Invalid"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        objects_.clear();
        bound_.clear();
        addWorld();
        if (c.http) {
            setState("http", c.http->bound, c.http->message);
        }
        if (c.tcp) {
            setState("tcp", c.tcp->bound, c.tcp->message);
        }
        // A state for a listener that no longer exists changes nothing.
        setState("gone", false, "stale");
        run();
        const Json& gw = *status("Gateway", "default", "gw");
        expectCond(gw, "Programmed", c.gatewayStatus, c.gatewayReason);
        expectCond(listenerStatus("http"), "Programmed", c.httpReason == std::string("Programmed") ? "True" : "False",
                   c.httpReason);
        expectCond(listenerStatus("tcp"), "Programmed", c.tcpReason == std::string("Programmed") ? "True" : "False",
                   c.tcpReason);
        if (c.tcp && !c.tcp->bound) {
            EXPECT_EQ(message(listenerStatus("tcp"), "Programmed"), c.tcp->message);
            EXPECT_NE(message(gw, "Programmed").find("listener tcp: " + c.tcp->message),
                      std::string::npos)
                << message(gw, "Programmed");
        }
        EXPECT_EQ(message(gw, "Programmed").find("stale"), std::string::npos);
    }
}

TEST_F(ListenerPlanTest, BoundListenerNamesItsAddress) {
    addWorld();
    object("Gateway", "default", "gw")["spec"]["addresses"] =
        Json::parse(R"([{"type": "IPAddress", "value": "fd00::5"}])");
    setState("http", true);
    setState("tcp", true);
    run();
    EXPECT_EQ(message(listenerStatus("http"), "Programmed"), "Listener is bound to [fd00::5]:8080");
    object("Gateway", "default", "gw")["spec"].erase("addresses");
    run();
    EXPECT_NE(message(listenerStatus("tcp"), "Programmed").find("port 9000"), std::string::npos);
}

TEST_F(ListenerPlanTest, GatewayWithoutSupportedListenerIsNotProgrammable) {
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"namespace": "default", "name": "gw", "generation": 1},
            "spec": {"gatewayClassName": "lastmile",
                     "listeners": [{"name": "tls", "port": 443, "protocol": "HTTPS"}]}})");
    run();
    EXPECT_TRUE(out_.listeners.empty());
    expectCond(*status("Gateway", "default", "gw"), "Programmed", "False", "Invalid");
}

TEST_F(ListenerPlanTest, ProgrammedTransitionStampsTheTime) {
    addWorld();
    run();
    writeBack();
    now_ += std::chrono::hours(1);
    setState("http", true);
    setState("tcp", true);
    run();
    EXPECT_EQ(cond(listenerStatus("http"), "Programmed")["lastTransitionTime"], "2027-01-15T09:00:00Z");
}

// A Service may number an SCTP (or UDP) port like its TCP one. A Route dials the TCP port,
// so the policy on that port's name governs it: the SCTP port listed first used to be taken,
// and its backend was dialled in plaintext although the policy said Accepted.
TEST_F(ListenerPlanTest, RouteToAPortNumberDialsTheTcpPortThatThePolicyGoverns) {
    addGateway("default", "gw");
    addService("default", "echo", R"([{"name": "other", "port": 443, "protocol": "SCTP"},
                                      {"name": "https", "port": 443, "protocol": "TCP"}])");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
            "metadata": {"namespace": "default", "name": "t", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "echo", "port": 443}]}]}})");
    addCaConfigMap("ca", pki_.caPem());
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "https"}])");
    addSlice("echo-1", "echo",
             R"([{"name": "other", "port": 7000, "protocol": "SCTP"},
                 {"name": "https", "port": 8443}])",
             R"([{"addresses": ["10.0.0.1"]}])");
    run();
    expectCond(ancestor("p"), "Accepted", "True", "Accepted");
    expectCond((*status("TCPRoute", "default", "t"))["parents"][0], "ResolvedRefs", "True",
               "ResolvedRefs");
    ASSERT_NE(profile("echo", 443), nullptr);
    EXPECT_FALSE(profile("echo", 443)->isFailClosed());
    ASSERT_EQ(plan("tcp").backends.size(), 1u);
    EXPECT_EQ(plan("tcp").backends[0].profile.get(), profile("echo", 443));
    EXPECT_EQ(backendsOf("tcp"), std::vector<std::string>{"echo:443*1=10.0.0.1:8443,"});
}

TEST_F(ListenerPlanTest, RouteToAPortNumberWithoutATcpPortIsUnresolvedAndCarriesNoTraffic) {
    addGateway("default", "gw");
    addService("default", "echo", R"([{"name": "other", "port": 443, "protocol": "SCTP"},
                                      {"name": "dns", "port": 53, "protocol": "UDP"}])");
    add(R"({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
            "metadata": {"namespace": "default", "name": "t", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "echo", "port": 443},
                                                {"name": "echo", "port": 53}]}]}})");
    addCaConfigMap("ca", pki_.caPem());
    addPolicy("p", R"([{"group": "", "kind": "Service", "name": "echo", "sectionName": "other"}])");
    run();
    const Json& parent = (*status("TCPRoute", "default", "t"))["parents"][0];
    expectCond(parent, "ResolvedRefs", "False", "UnsupportedProtocol");
    EXPECT_TRUE(contains(message(parent, "ResolvedRefs"), "no TCP port 443"))
        << message(parent, "ResolvedRefs");
    EXPECT_TRUE(contains(message(parent, "ResolvedRefs"), "no TCP port 53"));
    EXPECT_TRUE(plan("tcp").backends.empty());
    EXPECT_TRUE(out_.profiles.empty());
    expectCond(ancestor("p"), "Accepted", "False", "Invalid");
    EXPECT_TRUE(contains(message(ancestor("p"), "Accepted"), "SCTP"));
}

// Connections are bridged without reading the request: a Route that would take only some
// requests (by host name, path, header, query or method) must say it is not honoured, and
// its backends must not be merged into the listener, where they would get every request.
TEST_F(ListenerPlanTest, HttpRouteHostnamesAndSelectiveMatchesAreUnsupportedAndCarryNoTraffic) {
    addWorld();
    addService("default", "b");
    struct Case {
        const char* name;
        const char* spec;     // merged into the Route's spec
        const char* field;    // named in the message; nullptr: accepted
    } cases[] = {
        {"hosts", R"({"hostnames": ["a.example"]})", "spec.hostnames"},
        {"path", R"({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                               "backendRefs": [{"name": "b", "port": 443}]}]})",
         "spec.rules[0].matches"},
        {"header", R"({"rules": [{"backendRefs": [{"name": "b", "port": 443}]},
                                 {"matches": [{"headers": [{"name": "x", "value": "1"}]}],
                                  "backendRefs": [{"name": "b", "port": 443}]}]})",
         "spec.rules[1].matches"},
        {"method", R"({"rules": [{"matches": [{"method": "GET"}],
                                  "backendRefs": [{"name": "b", "port": 443}]}]})",
         "spec.rules[0].matches"},
        {"catch-all", R"({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                     "backendRefs": [{"name": "b", "port": 443}]},
                                    {"matches": [{"path": {"value": "/x"}}, {}],
                                     "backendRefs": [{"name": "b", "port": 443}]}]})",
         nullptr},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        remove("HTTPRoute", "extra");
        addHttpRoute("default", "extra", "gw", "b", 443);
        object("HTTPRoute", "default", "extra")["spec"].update(Json::parse(c.spec));
        run();
        const Json& parent = (*status("HTTPRoute", "default", "extra"))["parents"][0];
        if (c.field == nullptr) {
            expectCond(parent, "Accepted", "True", "Accepted");
            EXPECT_EQ(backendsOf("http"), (std::vector<std::string>{"b:443*2=", "echo:443*1="}));
            continue;
        }
        expectCond(parent, "Accepted", "False", "UnsupportedValue");
        EXPECT_TRUE(contains(message(parent, "Accepted"), c.field)) << message(parent, "Accepted");
        EXPECT_EQ(backendsOf("http"), std::vector<std::string>{"echo:443*1="});
        EXPECT_EQ(listenerStatus("http")["attachedRoutes"], 1);
    }
}

TEST_F(ListenerPlanTest, ListenerHostnameIsUnsupportedUnboundAndRefusesItsRoutes) {
    addWorld();
    object("Gateway", "default", "gw")["spec"]["listeners"][0]["hostname"] = "a.example";
    setState("tcp", true);
    run();
    expectCond(listenerStatus("http"), "Accepted", "False", "UnsupportedValue");
    expectCond(listenerStatus("http"), "Programmed", "False", "Invalid");
    EXPECT_TRUE(contains(message(listenerStatus("http"), "Accepted"), "hostname"));
    EXPECT_EQ(listenerStatus("http")["attachedRoutes"], 0);
    const Json& parent = (*status("HTTPRoute", "default", "r"))["parents"][0];
    expectCond(parent, "Accepted", "False", "UnsupportedValue");
    EXPECT_TRUE(contains(message(parent, "Accepted"), "listener http"))
        << message(parent, "Accepted");
    ASSERT_EQ(out_.listeners.size(), 1u) << "the http listener is not bound";
    EXPECT_EQ(out_.listeners[0].id.listener, "tcp");
    expectCond(*status("Gateway", "default", "gw"), "Programmed", "True", "Programmed");
}

// ---- Endpoints the dataplane will not dial (allowedBackendNetworks, own listeners).

TEST_F(ListenerPlanTest, LoopbackEndpointIsNotPermittedByDefaultAndTheRouteSaysWhy) {
    addWorld();
    addSlice("echo-1", "echo", R"([{"name": "https", "port": 8443}])",
             R"([{"addresses": ["10.0.0.1", "127.0.0.1", "127.0.0.2"]}])");
    run();
    const Json& parent = (*status("HTTPRoute", "default", "r"))["parents"][0];
    expectCond(parent, "ResolvedRefs", "False", "BackendNotPermitted");
    expectCond(parent, "Accepted", "True", "Accepted");
    const std::string why = message(parent, "ResolvedRefs");
    EXPECT_TRUE(contains(why, "endpoint 127.0.0.1 is outside allowedBackendNetworks")) << why;
    EXPECT_TRUE(contains(why, "1 more")) << why;
    // The plan keeps them: the dataplane refuses them at dial time, with the reason in the 503.
    EXPECT_EQ(backendsOf("http"),
              std::vector<std::string>{"echo:443*1=10.0.0.1:8443,127.0.0.1:8443,127.0.0.2:8443,"});
}

TEST_F(ListenerPlanTest, AllowedNetworksDecideWhichEndpointsResolve) {
    addWorld();
    addSlice("echo-1", "echo", R"([{"name": "https", "port": 8443}])",
             R"([{"addresses": ["127.0.0.1"]}])");
    config_.backendFilter = std::make_shared<net::AddressFilter>(
        std::vector<net::Network>{*net::Network::parse("127.0.0.0/8")});
    run();
    expectCond((*status("HTTPRoute", "default", "r"))["parents"][0], "ResolvedRefs", "True",
               "ResolvedRefs");
    config_.backendFilter = std::make_shared<net::AddressFilter>(
        std::vector<net::Network>{*net::Network::parse("10.0.0.0/8")});
    run();
    expectCond((*status("HTTPRoute", "default", "r"))["parents"][0], "ResolvedRefs", "False",
               "BackendNotPermitted");
}

TEST_F(ListenerPlanTest, EndpointOnOwnListeningAddressIsNotPermittedEvenWhenLoopbackIs) {
    addWorld();
    addSlice("echo-1", "echo", R"([{"name": "https", "port": 9090}])",
             R"([{"addresses": ["127.0.0.1"]}])");
    auto filter = std::make_shared<net::AddressFilter>(
        std::vector<net::Network>{*net::Network::parse("127.0.0.0/8")});
    filter->listen(*net::SocketAddress::parse("127.0.0.1", 9090));  // e.g. the admin listener
    config_.backendFilter = filter;
    run();
    const Json& parent = (*status("HTTPRoute", "default", "r"))["parents"][0];
    expectCond(parent, "ResolvedRefs", "False", "BackendNotPermitted");
    EXPECT_TRUE(contains(message(parent, "ResolvedRefs"), "own listening")) << parent.dump();
}

}  // namespace
}  // namespace lastmile::ctrl
