// SPDX-License-Identifier: Apache-2.0
// Tests for the object API's routing, status codes and Kubernetes Status bodies.
#include "ctrl/server/api_routes.h"

#include <gtest/gtest.h>

#include "ctrl/store/store.h"
#include "tests/support/process.h"

namespace lastmile::ctrl {
namespace {

const char* kCmPath = "/projects/default/api/v1/namespaces/default/configmaps/c";
constexpr PeerCredentials kRoot{0, 0};

class ApiRoutesTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = openSqliteStore(dir_.path() + "/db", [] {
            return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
        });
        ASSERT_TRUE(opened) << opened.error().message();
        store_ = std::move(*opened);
        controller_ = std::make_unique<Controller>(*store_, ReconcilerConfig{}, registry_, [] {
            return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
        });
        ASSERT_TRUE(controller_->start());
    }

    HttpResponse call(const std::string& method, const std::string& path, const Json& body = {}) {
        return handleApiRequest(*controller_, access_,
                                {method, path, body.is_null() ? "" : body.dump(), kRoot});
    }

    static Json configMap(const std::string& value) {
        return Json{{"apiVersion", "v1"},
                    {"kind", "ConfigMap"},
                    {"metadata", {{"name", "c"}}},
                    {"data", {{"k", value}}}};
    }

    test::TempDir dir_;
    std::unique_ptr<Store> store_;
    tls::ProfileRegistry registry_;
    std::unique_ptr<Controller> controller_;
    ApiAccess access_ = *ApiAccess::resolve({}, 0);
};

TEST_F(ApiRoutesTest, PutCreatesThenReplaces) {
    auto created = call("PUT", kCmPath, configMap("a"));
    EXPECT_EQ(created.status, 201) << created.body;
    auto replaced = call("PUT", kCmPath, configMap("b"));
    EXPECT_EQ(replaced.status, 200) << replaced.body;
    auto got = Json::parse(call("GET", kCmPath).body);
    EXPECT_EQ(got["data"]["k"], "b");
    EXPECT_EQ(got["metadata"]["namespace"], "default");
}

TEST_F(ApiRoutesTest, InvalidObjectGets422WithEveryCause) {
    Json policy = Json::parse(R"({"apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "BackendTLSPolicy", "metadata": {"name": "p"},
        "spec": {"targetRefs": [], "validation": {"hostname": "UPPER.example"}}})");
    auto r = call("PUT",
                  "/projects/default/apis/gateway.networking.k8s.io/v1/namespaces/default/"
                  "backendtlspolicies/p",
                  policy);
    ASSERT_EQ(r.status, 422) << r.body;
    auto status = Json::parse(r.body);
    EXPECT_EQ(status["reason"], "Invalid");
    std::vector<std::string> fields;
    for (const auto& c : status["details"]["causes"]) {
        fields.push_back(c["field"]);
    }
    EXPECT_NE(std::find(fields.begin(), fields.end(), "spec.targetRefs"), fields.end()) << r.body;
    EXPECT_NE(std::find(fields.begin(), fields.end(), "spec.validation.hostname"), fields.end()) << r.body;
    EXPECT_EQ(call("GET", "/projects/default/apis/gateway.networking.k8s.io/v1/namespaces/default/"
                          "backendtlspolicies/p")
                  .status,
              404);
}

TEST_F(ApiRoutesTest, V1alpha3PathAndBodyAreServedAsTheSamePolicy) {
    Json policy = Json::parse(R"({"apiVersion": "gateway.networking.k8s.io/v1alpha3",
        "kind": "BackendTLSPolicy", "metadata": {"name": "p"},
        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "s"}],
                 "validation": {"hostname": "a.example", "wellKnownCACertificates": "System"}}})");
    auto r = call("PUT",
                  "/projects/default/apis/gateway.networking.k8s.io/v1alpha3/namespaces/default/"
                  "backendtlspolicies/p",
                  policy);
    ASSERT_EQ(r.status, 201) << r.body;
    auto got = call("GET", "/projects/default/apis/gateway.networking.k8s.io/v1/namespaces/default/"
                           "backendtlspolicies/p");
    ASSERT_EQ(got.status, 200);
    EXPECT_EQ(Json::parse(got.body)["apiVersion"], "gateway.networking.k8s.io/v1");
}

TEST_F(ApiRoutesTest, BodyThatContradictsThePathIsABadRequest) {
    auto other = configMap("a");
    other["metadata"]["name"] = "d";
    EXPECT_EQ(call("PUT", kCmPath, other).status, 400);
    EXPECT_EQ(call("PUT", "/projects/default/api/v1/namespaces/default/secrets/c", configMap("a")).status,
              400);
    auto notJson = handleApiRequest(*controller_, access_, {"PUT", kCmPath, "{nope", kRoot});
    EXPECT_EQ(notJson.status, 400);
    // Found by api_fuzz: a kind (or apiVersion) of the wrong type threw out of the server.
    for (const char* body : {R"({"apiVersion": "v1", "kind": {"k": "v"}})",
                             R"({"apiVersion": ["v1"], "kind": "ConfigMap"})"}) {
        EXPECT_EQ(handleApiRequest(*controller_, access_, {"PUT", kCmPath, body, kRoot}).status, 400)
            << body;
    }
    // A name of the wrong type is refused by admission, whose error names the object.
    auto numbered = call("POST", "/projects/default/api/v1/namespaces/default/configmaps",
                         Json{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", 5}}}});
    EXPECT_EQ(numbered.status, 422) << numbered.body;
}

TEST_F(ApiRoutesTest, DeeplyNestedBodyIsABadRequestStatus) {
    const std::string deep = R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": )" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
    auto r = handleApiRequest(*controller_, access_, {"PUT", kCmPath, deep, kRoot});
    EXPECT_EQ(r.status, 400);
    auto status = Json::parse(r.body);
    EXPECT_EQ(status["kind"], "Status");
    EXPECT_EQ(status["reason"], "BadRequest");
    EXPECT_EQ(status["code"], 400);
    EXPECT_EQ(call("GET", kCmPath).status, 404);
}

class ApiRoutesAccessTest : public ApiRoutesTest {
protected:
    static constexpr PeerCredentials kNobody{65534, 65534};

    HttpResponse callAs(const ApiAccess& access, const std::string& method, const std::string& path,
                        const Json& body = {}) {
        return handleApiRequest(*controller_, access,
                                {method, path, body.is_null() ? "" : body.dump(), kNobody});
    }

    static void expectForbidden(const HttpResponse& r) {
        EXPECT_EQ(r.status, 403) << r.body;
        auto status = Json::parse(r.body);
        EXPECT_EQ(status["kind"], "Status");
        EXPECT_EQ(status["reason"], "Forbidden");
        EXPECT_EQ(status["code"], 403);
        // Nothing stored leaks: not the object's name, nor its content.
        EXPECT_EQ(r.body.find("secret-value"), std::string::npos) << r.body;
        EXPECT_EQ(r.body.find("/c\""), std::string::npos) << r.body;
    }
};

TEST_F(ApiRoutesAccessTest, CallerWithoutGrantIsForbiddenEverything) {
    ASSERT_EQ(call("PUT", kCmPath, configMap("secret-value")).status, 201);
    const std::string list = "/projects/default/api/v1/namespaces/default/configmaps";
    expectForbidden(callAs(access_, "GET", kCmPath));
    expectForbidden(callAs(access_, "GET", list));
    expectForbidden(callAs(access_, "GET", "/projects/default/api/v1/configmaps"));
    expectForbidden(callAs(access_, "GET", "/projects/default/apis/lastmile.dev/v1/profiles"));
    expectForbidden(callAs(access_, "PUT", kCmPath, configMap("x")));
    expectForbidden(callAs(access_, "POST", list, configMap("x")));
    expectForbidden(callAs(access_, "DELETE", kCmPath));
    EXPECT_EQ(Json::parse(call("GET", kCmPath).body)["data"]["k"], "secret-value");
    // No peer at all (a TCP caller) is no better.
    auto anonymous = handleApiRequest(*controller_, access_, {"GET", kCmPath, "", std::nullopt});
    EXPECT_EQ(anonymous.status, 403);
}

TEST_F(ApiRoutesAccessTest, ForbiddenNeverRevealsWhetherTheObjectOrProjectExists) {
    ASSERT_EQ(call("PUT", kCmPath, configMap("a")).status, 201);
    auto present = callAs(access_, "GET", kCmPath);
    auto absent = callAs(access_, "GET", "/projects/default/api/v1/namespaces/default/configmaps/zz");
    EXPECT_EQ(present.status, absent.status);
    EXPECT_EQ(present.body, absent.body);
    auto otherProject = callAs(access_, "GET", "/projects/nowhere/api/v1/namespaces/default/configmaps/c");
    EXPECT_EQ(otherProject.status, 403);
}

TEST_F(ApiRoutesAccessTest, GrantedCallerSeesOnlyItsProjects) {
    ASSERT_EQ(call("PUT", kCmPath, configMap("default-only")).status, 201);
    auto access = ApiAccess::resolve({{"nobody", "", {"team-a"}, "c.yaml:1:1"}}, 0);
    ASSERT_TRUE(access) << access.error().message();
    const std::string teamA = "/projects/team-a/api/v1/namespaces/default/configmaps/c";
    EXPECT_EQ(callAs(*access, "PUT", teamA, configMap("a")).status, 201);
    auto list = callAs(*access, "GET", "/projects/team-a/api/v1/configmaps");
    ASSERT_EQ(list.status, 200) << list.body;
    EXPECT_EQ(Json::parse(list.body)["items"].size(), 1U);
    EXPECT_EQ(list.body.find("default-only"), std::string::npos);
    EXPECT_EQ(callAs(*access, "GET", kCmPath).status, 403);
    EXPECT_EQ(callAs(*access, "DELETE", teamA).status, 200);
}

TEST_F(ApiRoutesTest, NonUtf8PathAndMethodGetAStatusNotAnException) {
    for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
             {"GET", "/projects/default/api/v1/co\xff\xfe"},
             {"GET", "/projects/d\xc3\x28/api/v1/configmaps"},
             {"G\xffT", "/projects/default/api/v1/namespaces/default/configmaps"}}) {
        auto r = handleApiRequest(*controller_, access_, {method, path, "", kRoot});
        EXPECT_GE(r.status, 400);
        auto status = Json::parse(r.body);
        EXPECT_EQ(status["kind"], "Status");
    }
}

TEST_F(ApiRoutesTest, StaleResourceVersionIsAConflict) {
    ASSERT_EQ(call("PUT", kCmPath, configMap("a")).status, 201);
    auto stored = Json::parse(call("PUT", kCmPath, configMap("b")).body);
    auto stale = configMap("c");
    stale["metadata"]["resourceVersion"] =
        std::to_string(std::stoll(stored["metadata"]["resourceVersion"].get<std::string>()) - 1);
    auto r = call("PUT", kCmPath, stale);
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_EQ(Json::parse(r.body)["reason"], "Conflict");
}

TEST_F(ApiRoutesTest, PostRefusesAnExistingName) {
    const char* collection = "/projects/default/api/v1/namespaces/default/configmaps";
    EXPECT_EQ(call("POST", collection, configMap("a")).status, 201);
    auto again = call("POST", collection, configMap("a"));
    EXPECT_EQ(again.status, 409);
    EXPECT_EQ(Json::parse(again.body)["reason"], "AlreadyExists");
}

TEST_F(ApiRoutesTest, NotFoundSpeaksLikeKubectl) {
    auto r = call("GET", kCmPath);
    ASSERT_EQ(r.status, 404);
    EXPECT_EQ(Json::parse(r.body)["message"], "configmaps \"c\" not found");
    EXPECT_EQ(call("DELETE", kCmPath).status, 404);
    EXPECT_EQ(call("GET", "/projects/default/api/v1/namespaces/default/widgets").status, 404);
}

TEST_F(ApiRoutesTest, ProjectsAreIsolated) {
    ASSERT_EQ(call("PUT", kCmPath, configMap("a")).status, 201);
    EXPECT_EQ(call("GET", "/projects/other/api/v1/namespaces/default/configmaps/c").status, 404);
    auto list = Json::parse(call("GET", "/projects/other/api/v1/configmaps").body);
    EXPECT_TRUE(list["items"].empty());
    EXPECT_EQ(call("GET", "/projects/Not_A_Label/api/v1/configmaps").status, 404);
}

TEST_F(ApiRoutesTest, ListAcrossNamespacesIsSorted) {
    for (const char* ns : {"zeta", "alpha"}) {
        auto cm = configMap("a");
        cm["metadata"]["namespace"] = ns;
        ASSERT_EQ(call("PUT", std::string("/projects/default/api/v1/namespaces/") + ns + "/configmaps/c", cm)
                      .status,
                  201);
    }
    auto list = Json::parse(call("GET", "/projects/default/api/v1/configmaps").body);
    EXPECT_EQ(list["kind"], "ConfigMapList");
    ASSERT_EQ(list["items"].size(), 2U);
    EXPECT_EQ(list["items"][0]["metadata"]["namespace"], "alpha");
}

TEST_F(ApiRoutesTest, DeleteReturnsTheObject) {
    ASSERT_EQ(call("PUT", kCmPath, configMap("a")).status, 201);
    auto r = call("DELETE", kCmPath);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(Json::parse(r.body)["data"]["k"], "a");
    EXPECT_EQ(call("GET", kCmPath).status, 404);
}

TEST_F(ApiRoutesTest, ListsCarryTheStoreRevisionTheyWereReadAt) {
    auto empty = Json::parse(call("GET", "/projects/default/api/v1/configmaps").body);
    const std::string before = empty["metadata"]["resourceVersion"];
    ASSERT_EQ(call("PUT", kCmPath, configMap("a")).status, 201);
    auto other = configMap("x");
    other["metadata"]["name"] = "other";
    ASSERT_EQ(call("PUT", "/projects/elsewhere/api/v1/namespaces/default/configmaps/other", other)
                  .status,
              201);
    auto list = Json::parse(call("GET", "/projects/default/api/v1/configmaps").body);
    ASSERT_EQ(list["items"].size(), 1U);
    // The store's revision (another project's write moved it), not the newest item's.
    EXPECT_EQ(std::stoull(list["metadata"]["resourceVersion"].get<std::string>()),
              std::stoull(before) + 2);
}

TEST_F(ApiRoutesTest, NodesAreListedAndReadOnly) {
    controller_->setNodes([](const std::string& project) {
        return Json::array({{{"name", "node-a"}, {"project", project}}});
    });
    auto r = call("GET", "/projects/default/apis/lastmile.dev/v1/nodes");
    ASSERT_EQ(r.status, 200) << r.body;
    auto list = Json::parse(r.body);
    EXPECT_EQ(list["kind"], "NodeList");
    EXPECT_EQ(list["items"][0]["name"], "node-a");
    EXPECT_EQ(list["items"][0]["project"], "default") << "only the caller's project is asked for";
    EXPECT_EQ(call("DELETE", "/projects/default/apis/lastmile.dev/v1/nodes").status, 405);
}

}  // namespace
}  // namespace lastmile::ctrl
