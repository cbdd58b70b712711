// SPDX-License-Identifier: Apache-2.0
// Tests for lastmilectl's commands, driven through runCli with a fake transport and fixed clock.
#include "ctrl/lastmilectl/commands.h"

#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "ctrl/api/explain.h"
#include "ctrl/api/json.h"
#include "ctrl/api/kinds.h"

namespace lastmile::ctl {
namespace {

using ctrl::Json;

constexpr std::int64_t kNow = 1795694400;  // 2026-11-26T12:00:00Z

const std::string kPolicyPath =
    "/projects/default/apis/gateway.networking.k8s.io/v1/namespaces/default/backendtlspolicies/"
    "secure-backend";

const std::string kPolicyYaml = R"(apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: secure-backend
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: echo
  validation:
    hostname: echo.example.com
    wellKnownCACertificates: System
)";

struct Request {
    std::string method;
    std::string path;
    std::string body;
};

// Answers from a script keyed by "METHOD path"; unscripted requests get a 404 Status.
class FakeTransport final : public Transport {
public:
    FakeTransport(std::map<std::string, std::deque<HttpResponse>>& script,
                  std::vector<Request>& log)
        : script_(script), log_(log) {}

    Result<HttpResponse> send(std::string_view method, const std::string& path,
                              const std::string& body) override {
        log_.push_back({std::string(method), path, body});
        auto& queue = script_[std::string(method) + " " + path];
        if (queue.empty()) {
            return HttpResponse{404, R"({"kind": "Status", "reason": "NotFound", "code": 404})"};
        }
        HttpResponse r = queue.front();
        queue.pop_front();
        return r;
    }

private:
    std::map<std::string, std::deque<HttpResponse>>& script_;
    std::vector<Request>& log_;
};

class UnreachableTransport final : public Transport {
public:
    Result<HttpResponse> send(std::string_view, const std::string&, const std::string&) override {
        return fail(Errc::Unavailable,
                    "cannot reach lastmiled at unix:///nonexistent: Couldn't connect to server "
                    "(is lastmiled running? set --server or LASTMILE_SERVER)");
    }
};

class CommandsTest : public ::testing::Test {
protected:
    CommandsTest() {
        env_.now = kNow;
        env_.connect = [this](const std::string& server) -> Result<std::unique_ptr<Transport>> {
            connectedTo_ = server;
            if (unreachable_) {
                return std::unique_ptr<Transport>(new UnreachableTransport());
            }
            return std::unique_ptr<Transport>(new FakeTransport(script_, log_));
        };
    }

    int run(std::vector<std::string> args) { return runCli(args, env_); }

    void answer(const std::string& key, long status, const std::string& body) {
        script_[key].push_back({status, body});
    }

    static std::string object(const std::string& rv) {
        return R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
                   "metadata": {"name": "secure-backend", "namespace": "default",
                   "resourceVersion": ")" +
               rv + R"(", "creationTimestamp": "2026-11-26T11:58:00Z"},
                   "spec": {"validation": {"hostname": "echo.example.com"}}})";
    }

    std::istringstream in_;
    std::ostringstream out_;
    std::ostringstream err_;
    CliEnv env_{in_, out_, err_};
    std::map<std::string, std::deque<HttpResponse>> script_;
    std::vector<Request> log_;
    std::string connectedTo_;
    bool unreachable_ = false;
};

TEST_F(CommandsTest, ApplyOfANewObjectPrintsCreated) {
    in_.str(kPolicyYaml);
    answer("PUT " + kPolicyPath, 201, object("5"));
    EXPECT_EQ(run({"apply", "-f", "-"}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "backendtlspolicy.gateway.networking.k8s.io/secure-backend created\n");
    ASSERT_EQ(log_.size(), 2u);
    EXPECT_EQ(log_[0].method, "GET");
    EXPECT_EQ(log_[1].method, "PUT");
    Json sent = Json::parse(log_[1].body);
    EXPECT_EQ(sent["metadata"]["namespace"], "default");
    EXPECT_EQ(sent["spec"]["validation"]["hostname"], "echo.example.com");
}

TEST_F(CommandsTest, ApplyOfAChangedObjectPrintsConfigured) {
    in_.str(kPolicyYaml);
    answer("GET " + kPolicyPath, 200, object("5"));
    answer("PUT " + kPolicyPath, 200, object("6"));
    EXPECT_EQ(run({"apply", "-f", "-"}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "backendtlspolicy.gateway.networking.k8s.io/secure-backend configured\n");
}

TEST_F(CommandsTest, ApplyOfAnIdenticalObjectPrintsUnchanged) {
    in_.str(kPolicyYaml);
    answer("GET " + kPolicyPath, 200, object("5"));
    answer("PUT " + kPolicyPath, 200, object("5"));
    EXPECT_EQ(run({"apply", "-f", "-"}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "backendtlspolicy.gateway.networking.k8s.io/secure-backend unchanged\n");
}

TEST_F(CommandsTest, ApplyOfAnInvalidObjectPrintsEveryCauseAndContinues) {
    in_.str(kPolicyYaml + "---\n" +
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ca\n  namespace: infra\n"
            "data:\n  ca.crt: x\n");
    answer("PUT " + kPolicyPath, 422,
           R"({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 422,
               "reason": "Invalid", "message": "BackendTLSPolicy \"secure-backend\" is invalid",
               "details": {"group": "gateway.networking.k8s.io", "kind": "BackendTLSPolicy",
                 "name": "secure-backend", "causes": [
                   {"field": "spec.validation.hostname", "reason": "FieldValueInvalid",
                    "message": "bad hostname"},
                   {"field": "spec.targetRefs[0].kind", "reason": "FieldValueInvalid",
                    "message": "bad kind"}]}})");
    answer("PUT /projects/default/api/v1/namespaces/infra/configmaps/ca", 201, "{}");
    EXPECT_EQ(run({"apply", "-f", "-"}), 1);
    EXPECT_EQ(err_.str(),
              "Error from server (Invalid): error when applying \"STDIN\": BackendTLSPolicy "
              "\"secure-backend\" is invalid:\n"
              "  spec.validation.hostname: bad hostname\n"
              "  spec.targetRefs[0].kind: bad kind\n");
    EXPECT_EQ(out_.str(), "configmap/ca created\n");
}

TEST_F(CommandsTest, ApplyOfMalformedYamlAppliesNothingFromThatFile) {
    in_.str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n");
    EXPECT_EQ(run({"apply", "-f", "-"}), 1);
    EXPECT_EQ(err_.str().rfind("error: STDIN:", 0), 0u) << err_.str();
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, ApplyOfADocumentWithoutKindSaysWhatIsMissing) {
    in_.str("metadata:\n  name: x\n");
    EXPECT_EQ(run({"apply", "-f", "-"}), 1);
    EXPECT_EQ(err_.str(), "error: error validating \"STDIN\": apiVersion not set, kind not set\n");
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, ApplyOfAMissingPathSaysSo) {
    EXPECT_EQ(run({"apply", "-f", "no-such-file.yaml"}), 1);
    EXPECT_EQ(err_.str(), "error: the path \"no-such-file.yaml\" does not exist\n");
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, ApplyOfADirectoryTakesManifestsInNameOrder) {
    auto dir = std::filesystem::path(::testing::TempDir()) / "lastmilectl-apply-dir";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "nested");
    auto write = [&](const std::string& name, const std::string& cmName) {
        std::ofstream(dir / name) << "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "
                                  << cmName << "\n";
    };
    write("b.yml", "second");
    write("a.yaml", "first");
    write("c.json.txt", "ignored");
    write("nested/d.yaml", "ignored-too");
    std::ofstream(dir / "c.json") << R"({"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "third"}})";
    for (const auto* name : {"first", "second", "third"}) {
        answer(std::string("PUT /projects/default/api/v1/namespaces/default/configmaps/") + name,
               201, "{}");
    }
    EXPECT_EQ(run({"apply", "-f", dir.string()}), 0) << err_.str();
    EXPECT_EQ(out_.str(),
              "configmap/first created\nconfigmap/second created\n"
              "configmap/third created\n");
    std::filesystem::remove_all(dir);
}

// A Gateway and Route live before their policy would forward in plaintext for a moment.
TEST_F(CommandsTest, ApplySendsPoliciesAndTheirCaBeforeWhatTheyProtect) {
    in_.str(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: lastmile
  listeners: [{name: tcp, port: 8443, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  ports: [{port: 443}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: secure-backend}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  validation: {hostname: echo.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca}
)");
    answer("PUT /projects/default/api/v1/namespaces/default/configmaps/ca", 201, "{}");
    answer("PUT " + kPolicyPath, 201, "{}");
    answer("PUT /projects/default/api/v1/namespaces/default/services/echo", 201, "{}");
    answer("PUT /projects/default/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/edge",
           201, "{}");
    EXPECT_EQ(run({"apply", "-f", "-"}), 0) << err_.str();
    EXPECT_EQ(out_.str(),
              "configmap/ca created\n"
              "backendtlspolicy.gateway.networking.k8s.io/secure-backend created\n"
              "service/echo created\n"
              "gateway.gateway.networking.k8s.io/edge created\n");
}

TEST_F(CommandsTest, GetListsTheNamespaceAsATable) {
    answer(
        "GET /projects/default/apis/gateway.networking.k8s.io/v1/namespaces/default/"
        "backendtlspolicies",
        200, R"({"kind": "BackendTLSPolicyList", "items": [)" + object("5") + "]}");
    EXPECT_EQ(run({"get", "btlspolicy"}), 0) << err_.str();
    EXPECT_EQ(out_.str(),
              "NAME             HOSTNAME           ACCEPTED   AGE\n"
              "secure-backend   echo.example.com   Unknown    2m\n");
}

TEST_F(CommandsTest, GetAcrossNamespacesUsesTheClusterWidePath) {
    answer("GET /projects/team-a/api/v1/services", 200, R"({"items": []})");
    EXPECT_EQ(run({"get", "svc", "-A", "--project", "team-a"}), 0);
    EXPECT_EQ(err_.str(), "No resources found\n");
}

TEST_F(CommandsTest, GetOfAnEmptyNamespaceSaysNoResources) {
    answer("GET /projects/default/api/v1/namespaces/prod/configmaps", 200, R"({"items": []})");
    EXPECT_EQ(run({"get", "configmaps", "-n", "prod"}), 0);
    EXPECT_EQ(err_.str(), "No resources found in prod namespace.\n");
    EXPECT_EQ(out_.str(), "");
}

TEST_F(CommandsTest, GetOfAMissingNameReportsNotFound) {
    EXPECT_EQ(run({"get", "backendtlspolicies", "x"}), 1);
    EXPECT_EQ(err_.str(),
              "Error from server (NotFound): "
              "backendtlspolicies.gateway.networking.k8s.io \"x\" not found\n");
}

TEST_F(CommandsTest, GetOneObjectAsJsonPrintsTheObject) {
    answer("GET " + kPolicyPath, 200, object("5"));
    EXPECT_EQ(run({"get", "BackendTLSPolicy", "secure-backend", "-o", "json"}), 0);
    Json printed = Json::parse(out_.str());
    EXPECT_EQ(printed["kind"], "BackendTLSPolicy");
}

TEST_F(CommandsTest, GetOfAnUnknownKindSendsNothing) {
    EXPECT_EQ(run({"get", "foo"}), 1);
    EXPECT_EQ(err_.str(), "error: the server doesn't have a resource type \"foo\"\n");
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, ResourceNamesResolveByPluralSingularShortNameAndKind) {
    for (const char* name :
         {"backendtlspolicies", "backendtlspolicy", "btlspolicy", "BackendTLSPolicy"}) {
        log_.clear();
        EXPECT_EQ(run({"get", name, "secure-backend"}), 1) << name;
        ASSERT_EQ(log_.size(), 1u) << name;
        EXPECT_EQ(log_[0].path, kPolicyPath) << name;
    }
}

TEST_F(CommandsTest, TypeSlashNameNamesOneObject) {
    answer("DELETE " + kPolicyPath, 200, object("5"));
    EXPECT_EQ(run({"delete", "btlspolicy/secure-backend"}), 0) << err_.str();
    EXPECT_EQ(run({"get", "btlspolicy/secure-backend"}), 1);
    ASSERT_EQ(log_.size(), 2u);
    EXPECT_EQ(log_[1].path, kPolicyPath);
}

TEST_F(CommandsTest, ServerWithoutUnixSchemeIsAClearError) {
    EXPECT_EQ(run({"get", "svc", "--server", "http://localhost:8080"}), 1);
    EXPECT_NE(err_.str().find("invalid --server \"http://localhost:8080\""), std::string::npos)
        << err_.str();
    EXPECT_NE(err_.str().find("unix:///"), std::string::npos);
    EXPECT_EQ(connectedTo_, "");
}

TEST_F(CommandsTest, ServerComesFromTheFlagOrTheEnvironmentDefault) {
    answer("GET /projects/default/api/v1/namespaces/default/services", 200, R"({"items": []})");
    answer("GET /projects/default/api/v1/namespaces/default/services", 200, R"({"items": []})");
    env_.defaultServer = "unix:///from/env.sock";
    EXPECT_EQ(run({"get", "svc"}), 0);
    EXPECT_EQ(connectedTo_, "unix:///from/env.sock");
    EXPECT_EQ(run({"--server", "unix:///flag.sock", "get", "svc"}), 0);
    EXPECT_EQ(connectedTo_, "unix:///flag.sock");
}

TEST_F(CommandsTest, UnreachableServerIsOneLine) {
    unreachable_ = true;
    EXPECT_EQ(run({"get", "svc"}), 1);
    EXPECT_EQ(err_.str(),
              "error: cannot reach lastmiled at unix:///nonexistent: Couldn't connect to server "
              "(is lastmiled running? set --server or LASTMILE_SERVER)\n");
}

TEST_F(CommandsTest, DeleteByNamePrintsDeletedAndNotFound) {
    answer("DELETE " + kPolicyPath, 200, object("5"));
    EXPECT_EQ(run({"delete", "btlspolicy", "secure-backend", "gone"}), 1);
    EXPECT_EQ(out_.str(),
              "backendtlspolicy.gateway.networking.k8s.io \"secure-backend\" deleted\n");
    EXPECT_EQ(err_.str(),
              "Error from server (NotFound): "
              "backendtlspolicies.gateway.networking.k8s.io \"gone\" not found\n");
}

TEST_F(CommandsTest, DeleteByManifestDeletesEachDocument) {
    in_.str(kPolicyYaml);
    answer("DELETE " + kPolicyPath, 200, object("5"));
    EXPECT_EQ(run({"delete", "-f", "-"}), 0) << err_.str();
    EXPECT_EQ(out_.str(),
              "backendtlspolicy.gateway.networking.k8s.io \"secure-backend\" deleted\n");
}

TEST_F(CommandsTest, DescribePolicyAppendsItsCompiledProfiles) {
    answer("GET " + kPolicyPath, 200, object("5"));
    answer("GET /projects/default/apis/lastmile.dev/v1/profiles", 200,
           R"({"generation": 1, "items": [{"backend": {"namespace": "default",
               "service": "echo", "port": 443}, "policy": "default/secure-backend",
               "sni": "echo.example.com", "verify": {"hostname": "echo.example.com"},
               "trust": "system"}]})");
    EXPECT_EQ(run({"describe", "btlspolicy", "secure-backend"}), 0) << err_.str();
    EXPECT_NE(out_.str().find("Name:         secure-backend\n"), std::string::npos) << out_.str();
    EXPECT_NE(out_.str().find("Compiled Profiles:\n  Backend:"), std::string::npos) << out_.str();
    EXPECT_NE(out_.str().find("default/echo:443"), std::string::npos) << out_.str();
}

TEST_F(CommandsTest, ExplainPassesTheLibraryOutputThrough) {
    const ctrl::KindInfo* kind = ctrl::findResource("backendtlspolicies");
    ASSERT_NE(kind, nullptr);
    auto expected = ctrl::explain(*kind, "spec", true);
    int rc = run({"explain", "btlspolicy.spec", "--recursive"});
    EXPECT_TRUE(connectedTo_.empty());
    if (expected) {
        EXPECT_EQ(rc, 0);
        std::string text = *expected;
        if (!text.empty() && text.back() != '\n') {
            text += '\n';
        }
        EXPECT_EQ(out_.str(), text);
    } else {
        EXPECT_EQ(rc, 1);
        EXPECT_EQ(err_.str(), "error: " + expected.error().context() + "\n");
    }
}

TEST_F(CommandsTest, ExplainOfAnUnknownKindIsAnError) {
    EXPECT_EQ(run({"explain", "widgets.spec"}), 1);
    EXPECT_EQ(err_.str(), "error: the server doesn't have a resource type \"widgets\"\n");
}

TEST_F(CommandsTest, ApiResourcesListsEveryKind) {
    EXPECT_EQ(run({"api-resources"}), 0);
    std::string text = out_.str();
    EXPECT_EQ(text.rfind("NAME", 0), 0u);
    EXPECT_NE(text.find("SHORTNAMES"), std::string::npos);
    for (const auto& kind : ctrl::allKinds()) {
        EXPECT_NE(text.find(kind.plural), std::string::npos) << kind.plural;
    }
    EXPECT_NE(text.find("btlspolicy"), std::string::npos);
}

TEST_F(CommandsTest, HelpShowsExamplesAndSucceeds) {
    EXPECT_EQ(run({"--help"}), 0);
    EXPECT_NE(out_.str().find("Examples:"), std::string::npos) << out_.str();
    out_.str("");
    EXPECT_EQ(run({"get", "--help"}), 0);
    EXPECT_NE(out_.str().find("lastmilectl get btlspolicy -A -o wide"), std::string::npos)
        << out_.str();
}

TEST_F(CommandsTest, UnknownCommandFails) {
    EXPECT_EQ(run({"frobnicate"}), 1);
    EXPECT_FALSE(err_.str().empty());
}

TEST_F(CommandsTest, ApplyOfNoObjectsIsAnError) {
    in_.str("---\n# nothing here\n");
    EXPECT_EQ(run({"apply", "-f", "-"}), 1);
    EXPECT_EQ(err_.str(), "error: no objects passed to apply\n");
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, ApplyRefusesAnObjectOfAnotherNamespaceThanAnExplicitDashN) {
    in_.str("apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: team-a\n");
    EXPECT_EQ(run({"-n", "team-b", "apply", "-f", "-"}), 1);
    EXPECT_EQ(err_.str(),
              "error: the namespace from the provided object \"team-a\" does not match the "
              "namespace \"team-b\". You must pass '--namespace=team-a' to perform this "
              "operation.\n");
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, ApplyWithoutDashNKeepsTheObjectsNamespace) {
    in_.str("apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: team-a\n");
    answer("PUT /projects/default/api/v1/namespaces/team-a/services/echo", 201, "{}");
    EXPECT_EQ(run({"apply", "-f", "-"}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "service/echo created\n");
}

TEST_F(CommandsTest, GetOfSeveralTypeSlashNamesPrintsOneTablePerKind) {
    answer("GET /projects/default/api/v1/namespaces/default/services/echo", 200,
           R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo",
               "namespace": "default", "creationTimestamp": "2026-11-26T11:59:00Z"}})");
    answer("GET " + kPolicyPath, 200, object("5"));
    EXPECT_EQ(run({"get", "svc/echo", "btlspolicy/secure-backend"}), 0) << err_.str();
    ASSERT_EQ(log_.size(), 2u);
    EXPECT_EQ(out_.str(),
              "NAME           TYPE        PORT(S)   AGE\n"
              "service/echo   ClusterIP   <none>    60s\n"
              "\n"
              "NAME                                                        HOSTNAME           "
              "ACCEPTED   AGE\n"
              "backendtlspolicy.gateway.networking.k8s.io/secure-backend   echo.example.com   "
              "Unknown    2m\n");
}

TEST_F(CommandsTest, GetOfCommaSeparatedTypesListsEachKind) {
    answer("GET /projects/default/api/v1/namespaces/default/services", 200,
           R"({"items": [{"metadata": {"name": "echo", "namespace": "default"}}]})");
    answer("GET /projects/default/api/v1/namespaces/default/configmaps", 200,
           R"({"items": []})");
    EXPECT_EQ(run({"get", "svc,cm", "-o", "name"}), 0) << err_.str();
    ASSERT_EQ(log_.size(), 2u);
    EXPECT_EQ(out_.str(), "service/echo\n");
}

TEST_F(CommandsTest, GetAllListsTheRoutingKindsButNotSecretsOrConfigMaps) {
    for (const auto& kind : ctrl::allKinds()) {
        answer("GET " + collectionPath("default", kind, "", "default"), 200, R"({"items": []})");
    }
    EXPECT_EQ(run({"get", "all"}), 0) << err_.str();
    std::string paths;
    for (const auto& r : log_) {
        paths += r.path + "\n";
    }
    EXPECT_NE(paths.find("/services\n"), std::string::npos) << paths;
    EXPECT_NE(paths.find("/gateways\n"), std::string::npos) << paths;
    EXPECT_NE(paths.find("/backendtlspolicies\n"), std::string::npos) << paths;
    EXPECT_EQ(paths.find("/secrets"), std::string::npos) << paths;
    EXPECT_EQ(paths.find("/configmaps"), std::string::npos) << paths;
}

TEST_F(CommandsTest, GetAllOfAnEmptyNamespaceSaysNoResources) {
    for (const auto& kind : ctrl::allKinds()) {
        answer("GET " + collectionPath("default", kind, "", "default"), 200, R"({"items": []})");
    }
    EXPECT_EQ(run({"get", "all"}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "");
    EXPECT_EQ(err_.str(), "No resources found in default namespace.\n");
}

TEST_F(CommandsTest, TypeFollowedByTypeSlashNameIsAnError) {
    EXPECT_EQ(run({"get", "svc", "svc/echo"}), 1);
    EXPECT_NE(err_.str().find("there is no need to specify a resource type as a separate "
                              "argument"),
              std::string::npos)
        << err_.str();
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, DeleteOfSeveralTypeSlashNamesDeletesEach) {
    answer("DELETE /projects/default/api/v1/namespaces/default/services/echo", 200, "{}");
    answer("DELETE " + kPolicyPath, 200, object("5"));
    EXPECT_EQ(run({"delete", "svc/echo", "btlspolicy/secure-backend"}), 0) << err_.str();
    EXPECT_EQ(out_.str(),
              "service \"echo\" deleted\n"
              "backendtlspolicy.gateway.networking.k8s.io \"secure-backend\" deleted\n");
}

TEST_F(CommandsTest, DeleteWithIgnoreNotFoundSucceedsOnMissingObjects) {
    EXPECT_EQ(run({"delete", "btlspolicy", "gone", "--ignore-not-found"}), 0);
    EXPECT_EQ(out_.str(), "");
    EXPECT_EQ(err_.str(), "");
    in_.str(kPolicyYaml);
    EXPECT_EQ(run({"delete", "-f", "-", "--ignore-not-found"}), 0);
    EXPECT_EQ(err_.str(), "");
}

TEST_F(CommandsTest, DeleteByManifestOfAMissingObjectNamesTheFile) {
    in_.str(kPolicyYaml);
    EXPECT_EQ(run({"delete", "-f", "-"}), 1);
    EXPECT_EQ(err_.str(),
              "Error from server (NotFound): error when deleting \"STDIN\": "
              "backendtlspolicies.gateway.networking.k8s.io \"secure-backend\" not found\n");
}

TEST_F(CommandsTest, InvalidProjectOrNamespaceIsRejectedBeforeSending) {
    EXPECT_EQ(run({"--project", "team/a", "get", "svc"}), 1);
    EXPECT_EQ(err_.str().rfind("error: invalid project \"team/a\": ", 0), 0u) << err_.str();
    err_.str("");
    EXPECT_EQ(run({"get", "svc", "-n", ""}), 1);
    EXPECT_EQ(err_.str().rfind("error: invalid namespace \"\": ", 0), 0u) << err_.str();
    EXPECT_TRUE(log_.empty());
}

TEST_F(CommandsTest, CommandHelpPointsToTheGlobalFlags) {
    for (const char* command : {"get", "describe", "apply", "delete"}) {
        out_.str("");
        EXPECT_EQ(run({command, "--help"}), 0);
        EXPECT_NE(out_.str().find("-n, --namespace"), std::string::npos) << out_.str();
    }
}

TEST_F(CommandsTest, GetWithoutATypeSaysWhereToFindTheTypes) {
    EXPECT_EQ(run({"get"}), 1);
    EXPECT_EQ(err_.str(),
              "error: you must specify the type of resource to get. Use \"lastmilectl "
              "api-resources\" for a complete list of supported resources.\n");
    err_.str("");
    EXPECT_EQ(run({"describe"}), 1);
    EXPECT_NE(err_.str().find("type of resource to describe"), std::string::npos) << err_.str();
    EXPECT_TRUE(log_.empty());
}

TEST(ParseServerTest, AcceptsOnlyAbsoluteUnixSocketUrls) {
    EXPECT_EQ(parseServer("unix:///run/lastmile/api.sock").value(), "/run/lastmile/api.sock");
    EXPECT_FALSE(parseServer("/run/lastmile/api.sock"));
    EXPECT_FALSE(parseServer("unix://relative.sock"));
    EXPECT_FALSE(parseServer("unix://"));
    auto r = parseServer("tcp://127.0.0.1:80");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), make_error_code(Errc::Invalid));
}

}  // namespace
}  // namespace lastmile::ctl
