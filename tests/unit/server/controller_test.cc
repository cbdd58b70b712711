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

// The real reconciler with a fake dataplane.
class BinderTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)); };
        auto opened = openSqliteStore(dir_.path() + "/db", clock);
        ASSERT_TRUE(opened) << opened.error().message();
        store_ = std::move(*opened);
        controller_ = std::make_unique<Controller>(
            *store_, ReconcilerConfig{}, registry_, clock, reconcile,
            [this](const std::string& project, const std::vector<route::ListenerPlan>& plans) {
                calls_.push_back({project, plans});
                std::map<route::ListenerId, route::ListenerState> states;
                for (const auto& p : plans) {
                    auto failure = failing_.find(p.id.listener);
                    states[p.id] = failure == failing_.end()
                                       ? route::ListenerState{true, ""}
                                       : route::ListenerState{false, failure->second};
                }
                return states;
            });
    }

    Json apply(const std::string& json) {
        Diagnostics findings;
        auto r = controller_->apply("default", Json::parse(json), findings);
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

    Json gateway() {
        auto g = controller_->get("default", ObjectKey{"gateway.networking.k8s.io", "Gateway", "default", "gw"});
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

    test::TempDir dir_;
    std::unique_ptr<Store> store_;
    tls::ProfileRegistry registry_;
    std::map<std::string, std::string> failing_;  // listener name -> bind error
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
    controller_ = std::make_unique<Controller>(
        *store_, ReconcilerConfig{}, registry_,
        [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)); });
    addTopology();
    EXPECT_EQ(cond(gateway_["status"], "Programmed")["reason"], "Pending");
    EXPECT_EQ(registry_.snapshot()->listeners.at("default").size(), 2u);
    EXPECT_TRUE(calls_.empty());
}

}  // namespace
}  // namespace lastmile::ctrl
