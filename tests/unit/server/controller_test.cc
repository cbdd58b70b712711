// SPDX-License-Identifier: Apache-2.0
// Tests for what the controller publishes (profiles, listener plans) and what it binds.
#include "ctrl/server/controller.h"

#include <gtest/gtest.h>

#include <deque>
#include <future>
#include <map>
#include <optional>

#include "tests/support/process.h"

namespace lastmile::ctrl {
namespace {

std::shared_ptr<const tls::HandshakeProfile> failClosedFor(const std::string& service) {
    tls::ProfileSpec spec;
    spec.backend = {"default", service, 443};
    spec.policy = "default/p";
    spec.sni = service + ".example";
    return tls::HandshakeProfile::failClosed(spec, "test");
}

class ControllerTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)); };
        auto opened = openSqliteStore(dir_.path() + "/db", clock);
        ASSERT_TRUE(opened) << opened.error().message();
        store_ = std::move(*opened);
        // Each write triggers one pass; the passes return what the test queued.
        controller_ = std::make_unique<Controller>(
            *store_, ReconcilerConfig{}, registry_, clock,
            [this](const std::vector<Json>&, const ReconcilerConfig&, auto, const ListenerStates&) {
                ReconcileOutput out = std::move(passes_.front());
                passes_.pop_front();
                return out;
            });
    }

    // Any write makes the controller run the next queued pass.
    void write(const std::string& value) {
        Diagnostics findings;
        auto r = controller_->apply("default",
                                    Json{{"apiVersion", "v1"},
                                         {"kind", "ConfigMap"},
                                         {"metadata", {{"name", "trigger"}}},
                                         {"data", {{"k", value}}}},
                                    findings);
        ASSERT_TRUE(r) << r.error().message();
    }

    test::TempDir dir_;
    std::unique_ptr<Store> store_;
    tls::ProfileRegistry registry_;
    std::deque<ReconcileOutput> passes_;
    std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, InternalCompileFailureKeepsLiveProfilesButNeverLeavesANewBackendUncovered) {
    auto liveA = failClosedFor("a");
    passes_.push_back(ReconcileOutput{{}, {liveA}, {}});
    write("1");
    ASSERT_EQ(registry_.snapshot()->find("default", {"default", "a", 443}), liveA);

    // A pass whose compile of A failed internally, and that brings a new backend B.
    auto newB = failClosedFor("b");
    passes_.push_back(ReconcileOutput{{}, {failClosedFor("a"), newB}, {"compiling a: boom"}});
    write("2");
    auto set = registry_.snapshot();
    EXPECT_EQ(set->find("default", {"default", "a", 443}), liveA) << "the live profile stays";
    EXPECT_EQ(set->find("default", {"default", "b", 443}), newB) << "B must not go uncovered";
    EXPECT_EQ(controller_->compileFailures(), 1U);
}

TEST_F(ControllerTest, PassThatProducedNothingKeepsEveryLiveProfile) {
    auto liveA = failClosedFor("a");
    passes_.push_back(ReconcileOutput{{}, {liveA}, {}});
    write("1");
    passes_.push_back(ReconcileOutput{{}, {}, {"reconcile failed: boom"}});
    write("2");
    EXPECT_EQ(registry_.snapshot()->find("default", {"default", "a", 443}), liveA);
}

TEST_F(ControllerTest, UnchangedSpecKeepsItsCompiledProfile) {
    auto liveA = failClosedFor("a");
    passes_.push_back(ReconcileOutput{{}, {liveA}, {}});
    write("1");
    const auto generation = registry_.snapshot()->generation;
    passes_.push_back(ReconcileOutput{{}, {failClosedFor("a")}, {}});
    write("2");
    EXPECT_EQ(registry_.snapshot()->find("default", {"default", "a", 443}), liveA);
    EXPECT_EQ(registry_.snapshot()->generation, generation) << "nothing changed, nothing published";
}

// SIGHUP: the system store's files may have changed, which an equal spec cannot show.
TEST_F(ControllerTest, ReloadingSystemTrustRecompilesOnlySystemStoreProfiles) {
    auto system = [] {
        tls::ProfileSpec spec;
        spec.backend = {"default", "sys", 443};
        spec.sni = "sys.example";
        spec.systemTrust = true;
        return tls::HandshakeProfile::failClosed(spec, "test");
    };
    auto liveSystem = system();
    auto liveOther = failClosedFor("a");
    passes_.push_back(ReconcileOutput{{}, {liveOther, liveSystem}, {}});
    write("1");
    passes_.push_back(ReconcileOutput{{}, {failClosedFor("a"), system()}, {}});
    ASSERT_TRUE(controller_->reloadSystemTrust());
    auto set = registry_.snapshot();
    EXPECT_EQ(set->find("default", {"default", "a", 443}), liveOther);
    EXPECT_NE(set->find("default", {"default", "sys", 443}), liveSystem);
}

// The watchdog thread asks while a reconcile runs; the answer must not wait for it.
TEST_F(ControllerTest, BusyForAnswersWhileAReconcileHoldsTheController) {
    EXPECT_EQ(controller_->busyFor(), std::chrono::steady_clock::duration::zero());
    std::promise<void> entered;
    std::promise<void> release;
    auto released = release.get_future().share();
    controller_ = std::make_unique<Controller>(
        *store_, ReconcilerConfig{}, registry_, [] { return std::chrono::system_clock::now(); },
        [&](const std::vector<Json>&, const ReconcilerConfig&, auto, const ListenerStates&) {
            entered.set_value();
            released.wait();
            return ReconcileOutput{};
        });
    auto writer = std::async(std::launch::async, [this] { write("1"); });
    entered.get_future().wait();
    auto asked = std::async(std::launch::async, [this] { return controller_->busyFor(); });
    ASSERT_EQ(asked.wait_for(std::chrono::seconds(5)), std::future_status::ready)
        << "busyFor() waited for the reconcile";
    EXPECT_GT(asked.get(), std::chrono::steady_clock::duration::zero());
    release.set_value();
    writer.get();
    EXPECT_EQ(controller_->busyFor(), std::chrono::steady_clock::duration::zero());
}

// A pass with internal errors produced no trustworthy listeners: the live ones stay.
TEST_F(ControllerTest, InternalErrorKeepsThePreviousListeners) {
    ReconcileOutput first;
    route::ListenerPlan plan;
    plan.id = {"", "default", "gw", "http"};
    plan.port = 8080;
    first.listeners.push_back(plan);
    passes_.push_back(first);
    write("1");
    ASSERT_EQ(registry_.snapshot()->listeners.at("default").size(), 1u);
    EXPECT_EQ(registry_.snapshot()->listeners.at("default")[0].id.project, "default");
    passes_.push_back(ReconcileOutput{{}, {}, {"reconcile failed: boom"}});
    write("2");
    ASSERT_EQ(registry_.snapshot()->listeners.count("default"), 1u);
    EXPECT_EQ(registry_.snapshot()->listeners.at("default")[0].port, 8080);
}

// The real reconciler with a fake dataplane, which remembers what every project has bound and
// counts binds that overlap a listener still bound (the kernel would split connections).
class BinderTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = openSqliteStore(dir_.path() + "/db", clock());
        ASSERT_TRUE(opened) << opened.error().message();
        store_ = std::move(*opened);
        controller_ = makeController();
    }

    Clock clock() {
        return [this] { return now_; };
    }

    std::unique_ptr<Controller> makeController() {
        return std::make_unique<Controller>(
            *store_, ReconcilerConfig{}, registry_, clock(), reconcile,
            [this](const std::string& project, const std::vector<route::ListenerPlan>& plans) {
                calls_.push_back({project, plans});
                std::erase_if(live_, [&](const auto& l) { return l.first.project == project; });
                std::map<route::ListenerId, route::ListenerState> states;
                for (const auto& p : plans) {
                    ListenerClaim mine{p.id, p.address.empty() ? "0.0.0.0" : p.address, p.port, 0};
                    for (const auto& [id, other] : live_) {
                        overlaps_ += claimsOverlap(mine, other) ? 1 : 0;
                    }
                    live_[p.id] = mine;
                    auto failure = failing_.find(p.id.listener);
                    states[p.id] = failure == failing_.end()
                                       ? route::ListenerState{true, ""}
                                       : route::ListenerState{false, failure->second};
                }
                return states;
            });
    }

    Json apply(const std::string& json, const std::string& project = "default") {
        Diagnostics findings;
        auto r = controller_->apply(project, Json::parse(json), findings);
        EXPECT_TRUE(r) << r.error().message() << " " << json;
        return r ? r->object : Json();
    }

    void addTopology() {
        apply(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
                  "spec": {"ports": [{"name": "https", "port": 443}]}})");
        apply(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                  "metadata": {"name": "r"},
                  "spec": {"parentRefs": [{"name": "gw"}],
                           "rules": [{"backendRefs": [{"name": "echo", "port": 443}]}]}})");
        gateway_ = apply(kGateway);
    }

    Json gateway(const std::string& project = "default", const std::string& name = "gw") {
        auto g = controller_->get(
            project, ObjectKey{"gateway.networking.k8s.io", "Gateway", "default", name});
        EXPECT_TRUE(g);
        return g ? *g : Json();
    }

    static Json cond(const Json& holder, const std::string& type) {
        for (const auto& c : holder["conditions"]) {
            if (c["type"] == type) {
                return c;
            }
        }
        return Json();
    }

    static constexpr const char* kGateway = R"({"apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway", "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": "lastmile", "listeners": [
            {"name": "http", "port": 8080, "protocol": "HTTP"},
            {"name": "tcp", "port": 9000, "protocol": "TCP"}]}})";

    struct Call {
        std::string project;
        std::vector<route::ListenerPlan> plans;
    };

    // A Gateway `name` of one TCP listener on `port`, bound to `address` ("" for the default),
    // created now + `age` seconds.
    Json applyGateway(const std::string& project, const std::string& name,
                      const std::string& address, int age, int port = 9000) {
        now_ = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000 + age));
        Json gw = Json::parse(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "spec": {"gatewayClassName": "lastmile",
                     "listeners": [{"name": "tcp", "protocol": "TCP"}]}})");
        gw["metadata"] = Json{{"name", name}};
        gw["spec"]["listeners"][0]["port"] = port;
        if (!address.empty()) {
            gw["spec"]["addresses"] =
                Json::array({Json{{"type", "IPAddress"}, {"value", address}}});
        }
        return apply(gw.dump(), project);
    }

    bool isLive(const std::string& project, const std::string& gw) const {
        return live_.count(route::ListenerId{project, "default", gw, "tcp"}) != 0;
    }

    test::TempDir dir_;
    std::unique_ptr<Store> store_;
    tls::ProfileRegistry registry_;
    std::chrono::system_clock::time_point now_{std::chrono::seconds(1'800'000'000)};
    std::map<std::string, std::string> failing_;  // listener name -> bind error
    std::map<route::ListenerId, ListenerClaim> live_;  // what the fake dataplane has bound
    int overlaps_ = 0;
    std::vector<Call> calls_;
    std::unique_ptr<Controller> controller_;
    Json gateway_;
};

TEST_F(BinderTest, WriteReturnsTheBindResultInStatus) {
    addTopology();
    EXPECT_EQ(cond(gateway_["status"], "Programmed")["status"], "True") << gateway_["status"].dump();
    EXPECT_EQ(cond(gateway_["status"]["listeners"][0], "Programmed")["reason"], "Programmed");
    ASSERT_FALSE(calls_.empty());
    const auto& last = calls_.back();
    EXPECT_EQ(last.project, "default");
    ASSERT_EQ(last.plans.size(), 2u);
    EXPECT_EQ(last.plans[0].id.project, "default");
    ASSERT_EQ(last.plans[0].backends.size(), 1u);
    EXPECT_EQ(last.plans[0].backends[0].key.service, "echo");
    auto set = registry_.snapshot();
    ASSERT_EQ(set->listeners.count("default"), 1u);
    EXPECT_EQ(set->listeners.at("default").size(), 2u);
    EXPECT_EQ(set->listeners.at("default")[1].id.listener, "tcp");
}

TEST_F(BinderTest, FailedBindMakesTheGatewayAddressNotUsable) {
    failing_["tcp"] = "0.0.0.0:9000: Address already in use";
    addTopology();
    const Json& status = gateway_["status"];
    EXPECT_EQ(cond(status, "Programmed")["reason"], "AddressNotUsable");
    EXPECT_EQ(cond(status["listeners"][1], "Programmed")["reason"], "Invalid");
    EXPECT_EQ(cond(status["listeners"][1], "Programmed")["message"],
              "0.0.0.0:9000: Address already in use");
    EXPECT_EQ(cond(status["listeners"][0], "Programmed")["status"], "True");
}

TEST_F(BinderTest, ChangedBindResultIsWrittenOnTheNextReconcile) {
    addTopology();
    ASSERT_EQ(cond(gateway()["status"], "Programmed")["status"], "True");
    failing_["http"] = "lost";
    apply(R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "poke"}})");
    EXPECT_EQ(cond(gateway()["status"], "Programmed")["reason"], "AddressNotUsable");
    failing_.clear();
    apply(R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "poke2"}})");
    EXPECT_EQ(cond(gateway()["status"], "Programmed")["status"], "True");
}

TEST_F(BinderTest, EndpointChangeAlonePublishesAndNothingChangedPublishesNothing) {
    addTopology();
    const auto before = registry_.snapshot()->generation;
    apply(R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "poke"}})");
    EXPECT_EQ(registry_.snapshot()->generation, before) << "same plans, same profiles";
    apply(R"({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "echo-1", "labels": {"kubernetes.io/service-name": "echo"}},
              "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
              "ports": [{"name": "https", "port": 8443}]})");
    auto set = registry_.snapshot();
    EXPECT_EQ(set->generation, before + 1);
    const auto& backend = set->listeners.at("default")[0].backends.at(0);
    ASSERT_EQ(backend.endpoints.size(), 1u);
    EXPECT_EQ(backend.endpoints[0], (route::Endpoint{"10.0.0.1", 8443}));
}

TEST_F(BinderTest, PublishedPlansPointAtThePublishedProfiles) {
    addTopology();
    // No CA ConfigMap: the policy fails closed, which is still a profile.
    apply(R"({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
              "metadata": {"name": "p"},
              "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "echo"}],
                       "validation": {"hostname": "echo.example",
                                      "caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                             "name": "ca"}]}}})");
    auto first = registry_.snapshot();
    auto profile = first->find("default", {"default", "echo", 443});
    ASSERT_NE(profile, nullptr);
    EXPECT_EQ(first->listeners.at("default")[0].backends.at(0).profile, profile);
    EXPECT_EQ(calls_.back().plans[0].backends.at(0).profile, profile) << "the binder too";
    // A listener change with an unchanged profile: the plan keeps pointing at the live one.
    apply(R"({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "echo-1", "labels": {"kubernetes.io/service-name": "echo"}},
              "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]})");
    auto second = registry_.snapshot();
    EXPECT_GT(second->generation, first->generation);
    EXPECT_EQ(second->find("default", {"default", "echo", 443}), profile);
    EXPECT_EQ(second->listeners.at("default")[0].backends.at(0).profile, profile);
    EXPECT_EQ(calls_.back().plans[0].backends.at(0).profile, profile);
}

TEST_F(BinderTest, DeletingEverythingUnbinds) {
    addTopology();
    for (const auto& key : {ObjectKey{"gateway.networking.k8s.io", "Gateway", "default", "gw"},
                            ObjectKey{"gateway.networking.k8s.io", "HTTPRoute", "default", "r"},
                            ObjectKey{"", "Service", "default", "echo"}}) {
        ASSERT_TRUE(controller_->remove("default", key));
    }
    ASSERT_FALSE(calls_.empty());
    EXPECT_TRUE(calls_.back().plans.empty());
    EXPECT_EQ(registry_.snapshot()->listeners.count("default"), 0u);
}

TEST_F(BinderTest, WithoutBinderListenersStayPendingButArePublished) {
    controller_ = std::make_unique<Controller>(*store_, ReconcilerConfig{}, registry_, clock());
    addTopology();
    EXPECT_EQ(cond(gateway_["status"], "Programmed")["reason"], "Pending");
    EXPECT_EQ(registry_.snapshot()->listeners.at("default").size(), 2u);
    EXPECT_TRUE(calls_.empty());
}

// Project B's specific address next to project A's older wildcard: B is never bound (the
// kernel would hand B connections meant for A) and says why without naming A.
TEST_F(BinderTest, NewerSpecificAddressBesideAnotherProjectsWildcardIsNotBound) {
    applyGateway("tenant-a", "secret-gw", "", 0);
    Json b = applyGateway("tenant-b", "gw", "127.0.0.1", 10);
    EXPECT_TRUE(isLive("tenant-a", "secret-gw"));
    EXPECT_FALSE(isLive("tenant-b", "gw"));
    EXPECT_EQ(overlaps_, 0);
    const Json programmed = cond(b["status"], "Programmed");
    EXPECT_EQ(programmed["status"], "False");
    EXPECT_EQ(programmed["reason"], "AddressNotUsable");
    const std::string message = programmed["message"];
    EXPECT_NE(message.find("127.0.0.1:9000 is already claimed by another Gateway"),
              std::string::npos)
        << message;
    EXPECT_EQ(message.find("tenant-a"), std::string::npos) << message;
    EXPECT_EQ(message.find("secret-gw"), std::string::npos) << message;
    EXPECT_EQ(cond(b["status"]["listeners"][0], "Programmed")["status"], "False");
    EXPECT_EQ(cond(gateway("tenant-a", "secret-gw")["status"], "Programmed")["status"], "True");
}

TEST_F(BinderTest, WildcardBesideAnotherProjectsOlderSpecificAddressIsNotBound) {
    applyGateway("tenant-b", "gw", "127.0.0.1", 0);
    Json a = applyGateway("tenant-a", "gw", "0.0.0.0", 10);
    EXPECT_TRUE(isLive("tenant-b", "gw"));
    EXPECT_FALSE(isLive("tenant-a", "gw"));
    EXPECT_EQ(cond(a["status"], "Programmed")["reason"], "AddressNotUsable");
    // Another port, or another specific address, is no conflict.
    applyGateway("tenant-c", "gw", "127.0.0.2", 20);
    applyGateway("tenant-d", "gw", "", 30, 9001);
    EXPECT_TRUE(isLive("tenant-c", "gw"));
    EXPECT_TRUE(isLive("tenant-d", "gw"));
    EXPECT_EQ(overlaps_, 0);
}

// The older Gateway takes an address a newer one of another project holds: the newer one is
// unbound before the older one binds, and its status says so at once.
TEST_F(BinderTest, OlderGatewayMovingOntoABoundAddressDisplacesTheNewerOne) {
    applyGateway("tenant-a", "gw", "127.0.0.2", 0);
    applyGateway("tenant-b", "gw", "127.0.0.1", 10);
    ASSERT_TRUE(isLive("tenant-b", "gw"));
    applyGateway("tenant-a", "gw", "::", 20);  // an update keeps the creationTimestamp
    EXPECT_TRUE(isLive("tenant-a", "gw"));
    EXPECT_FALSE(isLive("tenant-b", "gw"));
    EXPECT_EQ(overlaps_, 0) << "the displaced listener was still bound when the older one bound";
    EXPECT_EQ(cond(gateway("tenant-b")["status"], "Programmed")["reason"], "AddressNotUsable");
    // And when the older one lets go, the newer one binds without a write of its own.
    applyGateway("tenant-a", "gw", "127.0.0.2", 30);
    EXPECT_TRUE(isLive("tenant-b", "gw"));
    EXPECT_EQ(cond(gateway("tenant-b")["status"], "Programmed")["status"], "True");
    EXPECT_EQ(overlaps_, 0);
}

TEST_F(BinderTest, DeletingTheWinnerBindsTheListenerItKeptOut) {
    applyGateway("tenant-a", "gw", "", 0);
    applyGateway("tenant-b", "gw", "::ffff:127.0.0.1", 10);
    ASSERT_FALSE(isLive("tenant-b", "gw"));
    ASSERT_TRUE(controller_->remove("tenant-a", ObjectKey{"gateway.networking.k8s.io", "Gateway",
                                                          "default", "gw"}));
    EXPECT_TRUE(isLive("tenant-b", "gw"));
    EXPECT_EQ(cond(gateway("tenant-b")["status"], "Programmed")["status"], "True");
    EXPECT_EQ(overlaps_, 0);
}

TEST_F(BinderTest, SameAgeTieGoesToTheFirstProjectAndWithinOneProjectNamesTheWinner) {
    applyGateway("b", "gw", "127.0.0.1", 0);
    Json a = applyGateway("a", "gw", "127.0.0.1", 0);
    EXPECT_TRUE(isLive("a", "gw"));
    EXPECT_FALSE(isLive("b", "gw"));
    EXPECT_EQ(cond(a["status"], "Programmed")["status"], "True");
    EXPECT_EQ(cond(gateway("b")["status"], "Programmed")["reason"], "AddressNotUsable");
    Json second = applyGateway("a", "second", "0.0.0.0", 0);
    EXPECT_FALSE(isLive("a", "second"));
    const std::string message = cond(second["status"], "Programmed")["message"];
    EXPECT_NE(message.find("listener tcp of Gateway default/gw"), std::string::npos) << message;
    EXPECT_EQ(overlaps_, 0);
}

// After a restart every project's claims are known before the first bind: the loser of a
// project reconciled first is never bound, not even for a moment.
TEST_F(BinderTest, RestartNeverBindsALoserEvenForAMoment) {
    applyGateway("a-newer", "gw", "", 10);
    applyGateway("z-older", "gw", "127.0.0.1", 0);
    // The older Gateway came second, displacing the newer one; now restart.
    live_.clear();
    calls_.clear();
    controller_ = makeController();
    ASSERT_TRUE(controller_->start());
    for (const auto& call : calls_) {
        for (const auto& plan : call.plans) {
            EXPECT_NE(plan.id.project, "a-newer") << "the loser was handed to the dataplane";
        }
    }
    EXPECT_TRUE(isLive("z-older", "gw"));
    EXPECT_EQ(cond(gateway("a-newer")["status"], "Programmed")["reason"], "AddressNotUsable");
    EXPECT_EQ(overlaps_, 0);
}

}  // namespace
}  // namespace lastmile::ctrl
