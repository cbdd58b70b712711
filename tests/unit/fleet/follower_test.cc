// SPDX-License-Identifier: Apache-2.0
// Tests of the follower on a real SQLite store: what it reconciles, and that it never takes
// the last watched state for the store's own.
#include "ctrl/fleet/follower.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "ctrl/fleet/last_known_store.h"
#include "tests/support/process.h"

namespace lastmile::ctrl {
namespace {

using namespace std::chrono;

Json configMap(const std::string& name) {
    return Json{{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"data", {{"k", "v"}}}};
}

// A SQLite store whose lists fail as a store without quorum does, while `down` is set.
class FlakyStore final : public Store {
public:
    explicit FlakyStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}
    std::atomic<bool> down{false};

    Result<Json> get(const std::string& p, const ObjectKey& k) override { return real_->get(p, k); }
    Result<Listed> list(const std::string& p, const std::string& g, const std::string& k,
                        const std::optional<std::string>& ns) override {
        return real_->list(p, g, k, ns);
    }
    Result<Listed> listProject(const std::string& p) override { return real_->listProject(p); }
    Result<std::vector<std::pair<std::string, Listed>>> listAll() override {
        if (down) {
            return fail(Errc::Unavailable, "the store: no leader");
        }
        return real_->listAll();
    }
    Result<std::vector<std::string>> projects() override { return real_->projects(); }
    Result<Json> create(const std::string& p, Json o) override { return real_->create(p, std::move(o)); }
    Result<Json> update(const std::string& p, Json o) override { return real_->update(p, std::move(o)); }
    Result<Json> updateStatus(const std::string& p, const ObjectKey& k, Json s,
                              std::optional<std::string> rv) override {
        return real_->updateStatus(p, k, std::move(s), std::move(rv));
    }
    Result<Json> remove(const std::string& p, const ObjectKey& k,
                        const Preconditions& pre) override {
        return real_->remove(p, k, pre);
    }
    Result<std::uint64_t> revision() override { return real_->revision(); }
    std::unique_ptr<StoreWatch> watch(std::uint64_t from) override { return real_->watch(from); }

private:
    std::unique_ptr<Store> real_;
};

class FollowerTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = openSqliteStore(dir_.path() + "/db", {});
        ASSERT_TRUE(opened) << opened.error().message();
        store_ = std::make_unique<FlakyStore>(std::move(*opened));
    }

    test::TempDir dir_;
    std::unique_ptr<FlakyStore> store_;
    std::mutex mu_;
    std::set<std::string> reconciled_;
};

TEST_F(FollowerTest, ReconcilesEveryProjectAChangeTouched) {
    ASSERT_TRUE(store_->create("a", configMap("before")));
    LastKnownStore lastKnown(*store_);
    Follower follower(lastKnown, [&](const std::string& project) -> Status {
        std::lock_guard lock(mu_);
        reconciled_.insert(project);
        return {};
    });
    ASSERT_TRUE(follower.prime());
    EXPECT_EQ(lastKnown.knownProjects(), std::set<std::string>{"a"});
    follower.start();
    ASSERT_TRUE(store_->create("b", configMap("x")));
    ASSERT_TRUE(store_->remove("a", ObjectKey{"", "ConfigMap", "default", "before"}, {}));
    EXPECT_TRUE(test::eventually([&] {
        std::lock_guard lock(mu_);
        return reconciled_ == std::set<std::string>{"a", "b"};
    }));
    EXPECT_TRUE(test::eventually(
        [&] { return lastKnown.knownProjects() == std::set<std::string>{"b"}; }))
        << "a project whose last object went is no longer known";
}

TEST_F(FollowerTest, AListTheStoreCannotAnswerIsAnErrorNotTheLastWatchedState) {
    ASSERT_TRUE(store_->create("a", configMap("exists")));
    LastKnownStore lastKnown(*store_);
    Follower follower(lastKnown, [](const std::string&) -> Status { return {}; });
    store_->down = true;
    auto primed = follower.prime();
    ASSERT_FALSE(primed) << "primed from an empty last watched state: the node would serve "
                            "nothing and watch on from now";
    EXPECT_EQ(primed.error().code(), Errc::Unavailable);
    store_->down = false;
    ASSERT_TRUE(follower.prime());
    EXPECT_EQ(lastKnown.knownProjects(), std::set<std::string>{"a"});
}

}  // namespace
}  // namespace lastmile::ctrl
