// SPDX-License-Identifier: Apache-2.0
// Tests for what the controller publishes when a reconcile pass cannot compile everything.
#include "ctrl/server/controller.h"

#include <gtest/gtest.h>

#include <deque>

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
            [this](const std::vector<Json>&, const ReconcilerConfig&, auto) {
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

}  // namespace
}  // namespace lastmile::ctrl
