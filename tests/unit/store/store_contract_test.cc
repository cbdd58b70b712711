// SPDX-License-Identifier: Apache-2.0
// The Store contract, run on every backend: metadata semantics, preconditions, isolation,
// list revisions and watches.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ctrl/store/store.h"
#include "tests/unit/store/store_backends.h"

namespace lastmile::ctrl {
namespace {

using namespace std::chrono;
using test::configMap;
using test::generationOf;
using test::kPolicyGroup;
using test::kPolicyKind;
using test::policy;
using test::policyKey;
using test::rvOf;

std::vector<std::string> keysOf(const Json& object) {
    std::vector<std::string> out;
    for (auto it = object.begin(); it != object.end(); ++it) {
        out.push_back(it.key());
    }
    return out;
}

std::vector<std::string> namesOf(const std::vector<Json>& objects) {
    std::vector<std::string> out;
    for (const auto& o : objects) {
        out.push_back(o["metadata"]["namespace"].get<std::string>() + "/" +
                      o["metadata"]["name"].get<std::string>());
    }
    return out;
}

// Each test gets an empty store of the backend named by the parameter. Revisions are counted
// from the store's revision when the test starts (a shared etcd cluster has its own history).
class StoreContract : public ::testing::TestWithParam<test::StoreBackend> {
protected:
    void SetUp() override {
        if (!test::backendAvailable(GetParam())) {
            GTEST_SKIP() << "etcd is not installed (the etcd-server package)";
        }
        backend_ = test::openBackend(GetParam(), [this] { return now_; });
        store_ = backend_->store.get();
        auto base = store_->revision();
        ASSERT_TRUE(base) << base.error().message();
        base_ = *base;
    }

    Json mustCreate(const std::string& project, const Json& object) {
        auto r = store_->create(project, object);
        if (!r) {
            throw std::runtime_error(r.error().message());
        }
        return *r;
    }

    // The n-th revision of this test, as a count and as a resourceVersion.
    std::uint64_t rev(std::uint64_t n) const { return base_ + n; }
    std::string rv(std::uint64_t n) const { return std::to_string(base_ + n); }

    // Events until `count` arrived or 5 s passed.
    std::vector<StoreEvent> collect(StoreWatch& watch, std::size_t count) {
        std::vector<StoreEvent> out;
        const auto deadline = steady_clock::now() + seconds(5);
        while (out.size() < count && steady_clock::now() < deadline) {
            auto events = watch.next(milliseconds(200));
            if (!events) {
                ADD_FAILURE() << events.error().message();
                break;
            }
            out.insert(out.end(), events->begin(), events->end());
        }
        return out;
    }

    // 2026-11-26T16:10:00.750Z: the fraction must not reach creationTimestamp.
    system_clock::time_point now_ =
        sys_days{year{2026} / November / 26} + hours{16} + minutes{10} + milliseconds{750};
    std::unique_ptr<test::OpenedBackend> backend_;
    Store* store_ = nullptr;
    std::uint64_t base_ = 0;
};

TEST_P(StoreContract, CreateSetsServerOwnedMetadataInAFixedOrder) {
    Store& store = *store_;
    Json in = policy("default", "web", "web.example.com");
    in["metadata"]["labels"] = {{"app", "web"}};
    in["metadata"]["uid"] = "client-chosen";
    in["metadata"]["resourceVersion"] = "99";
    in["metadata"]["generation"] = 7;
    in["status"] = {{"ancestors", Json::array()}};

    auto created = store.create("a", in);
    ASSERT_TRUE(created) << created.error().message();
    const Json& meta = (*created)["metadata"];
    EXPECT_EQ(keysOf(meta), (std::vector<std::string>{"name", "namespace", "uid",
                                                     "resourceVersion", "generation",
                                                     "creationTimestamp", "labels"}));
    EXPECT_EQ(keysOf(*created), (std::vector<std::string>{"apiVersion", "kind", "metadata", "spec"}))
        << "status is dropped on create and the client's field order is kept";
    EXPECT_EQ(meta["resourceVersion"], rv(1));
    EXPECT_EQ(meta["generation"], 1);
    EXPECT_EQ(meta["creationTimestamp"], "2026-11-26T16:10:00Z");
    EXPECT_EQ(meta["labels"]["app"], "web");

    const std::string uid = meta["uid"].get<std::string>();
    ASSERT_EQ(uid.size(), 36u);
    EXPECT_EQ(uid[8], '-');
    EXPECT_EQ(uid[13], '-');
    EXPECT_EQ(uid[14], '4') << "UUID version 4";
    EXPECT_NE(std::string("89ab").find(uid[19]), std::string::npos) << "RFC 4122 variant";

    auto got = store.get("a", policyKey("default", "web"));
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(got->dump(), created->dump());
    EXPECT_EQ(*store.revision(), rev(1));
}

TEST_P(StoreContract, EveryObjectGetsItsOwnUid) {
    auto a = mustCreate("a", policy("default", "one", "h"));
    auto b = mustCreate("a", policy("default", "two", "h"));
    EXPECT_NE(a["metadata"]["uid"], b["metadata"]["uid"]);
    EXPECT_EQ(rvOf(b), rv(2));
    
}

TEST_P(StoreContract, ListsSortByNamespaceThenNameAndFilterByNamespace) {
    Store& store = *store_;
    mustCreate("a", policy("zeta", "b", "h"));
    mustCreate("a", policy("alpha", "z", "h"));
    mustCreate("a", policy("alpha", "a", "h"));
    mustCreate("a", configMap("alpha", "ca"));

    auto all = store.list("a", kPolicyGroup, kPolicyKind, std::nullopt);
    ASSERT_TRUE(all) << all.error().message();
    EXPECT_EQ(namesOf(all->items), (std::vector<std::string>{"alpha/a", "alpha/z", "zeta/b"}));

    auto alpha = store.list("a", kPolicyGroup, kPolicyKind, std::string("alpha"));
    ASSERT_TRUE(alpha) << alpha.error().message();
    EXPECT_EQ(namesOf(alpha->items), (std::vector<std::string>{"alpha/a", "alpha/z"}));

    auto maps = store.list("a", "", "ConfigMap", std::nullopt);
    ASSERT_TRUE(maps) << maps.error().message();
    EXPECT_EQ(namesOf(maps->items), (std::vector<std::string>{"alpha/ca"}));

    auto none = store.list("a", kPolicyGroup, kPolicyKind, std::string("beta"));
    ASSERT_TRUE(none) << none.error().message();
    EXPECT_TRUE(none->items.empty());
}

TEST_P(StoreContract, ListProjectSortsByGroupKindNamespaceName) {
    Store& store = *store_;
    mustCreate("a", policy("ns", "p2", "h"));
    mustCreate("a", configMap("ns", "cm"));
    mustCreate("a", policy("ns", "p1", "h"));
    mustCreate("b", configMap("ns", "other"));

    auto objects = store.listProject("a");
    ASSERT_TRUE(objects) << objects.error().message();
    ASSERT_EQ(objects->items.size(), 3u);
    EXPECT_EQ(objects->items[0]["kind"], "ConfigMap") << "core group \"\" sorts first";
    EXPECT_EQ(namesOf(objects->items), (std::vector<std::string>{"ns/cm", "ns/p1", "ns/p2"}));

    auto projects = store.projects();
    ASSERT_TRUE(projects) << projects.error().message();
    EXPECT_EQ(*projects, (std::vector<std::string>{"a", "b"}));
}

TEST_P(StoreContract, SpecChangeBumpsGenerationAndResourceVersion) {
    Store& store = *store_;
    Json created = mustCreate("a", policy("default", "web", "old.example.com"));
    Json changed = policy("default", "web", "new.example.com");

    auto updated = store.update("a", changed);
    ASSERT_TRUE(updated) << updated.error().message();
    EXPECT_EQ(generationOf(*updated), 2);
    EXPECT_EQ(rvOf(*updated), rv(2));
    EXPECT_EQ((*updated)["spec"]["validation"]["hostname"], "new.example.com");
    EXPECT_EQ((*updated)["metadata"]["uid"], created["metadata"]["uid"]);
    EXPECT_EQ((*updated)["metadata"]["creationTimestamp"], created["metadata"]["creationTimestamp"]);
    EXPECT_EQ(store.get("a", policyKey("default", "web"))->dump(), updated->dump());
}

TEST_P(StoreContract, LabelChangeBumpsResourceVersionButNotGeneration) {
    Store& store = *store_;
    mustCreate("a", policy("default", "web", "h"));
    Json labelled = policy("default", "web", "h");
    labelled["metadata"]["labels"] = {{"team", "edge"}};
    labelled["metadata"]["annotations"] = {{"note", "x"}};

    auto updated = store.update("a", labelled);
    ASSERT_TRUE(updated) << updated.error().message();
    EXPECT_EQ(generationOf(*updated), 1);
    EXPECT_EQ(rvOf(*updated), rv(2));
    EXPECT_EQ((*updated)["metadata"]["labels"]["team"], "edge");
    EXPECT_EQ(keysOf((*updated)["metadata"]).back(), "annotations");
}

TEST_P(StoreContract, UpdateThatChangesNothingKeepsResourceVersion) {
    Store& store = *store_;
    Json created = mustCreate("a", policy("default", "web", "h"));

    // Same content, fields in another order, and the client's copy of server-owned metadata.
    Json same = Json::object();
    same["spec"] = created["spec"];
    same["kind"] = created["kind"];
    same["apiVersion"] = created["apiVersion"];
    same["metadata"] = {{"namespace", "default"}, {"name", "web"}, {"generation", 42}};

    auto updated = store.update("a", same);
    ASSERT_TRUE(updated) << updated.error().message();
    EXPECT_EQ(updated->dump(), created.dump());
    EXPECT_EQ(*store.revision(), rev(1));
}

TEST_P(StoreContract, UpdateKeepsStoredStatusAndIgnoresClientStatus) {
    Store& store = *store_;
    mustCreate("a", policy("default", "web", "h"));
    Json status = {{"ancestors", Json::array({{{"controllerName", "lastmile"}}})}};
    ASSERT_TRUE(store.updateStatus("a", policyKey("default", "web"), status));

    Json in = policy("default", "web", "other");
    in["status"] = {{"forged", true}};
    auto updated = store.update("a", in);
    ASSERT_TRUE(updated) << updated.error().message();
    EXPECT_EQ((*updated)["status"], status);
    EXPECT_EQ(generationOf(*updated), 2);
}

TEST_P(StoreContract, StaleResourceVersionIsAConflict) {
    Store& store = *store_;
    Json created = mustCreate("a", policy("default", "web", "h"));
    Json first = created;
    first["spec"]["validation"]["hostname"] = "first";
    ASSERT_TRUE(store.update("a", first));

    Json second = created;  // still carries resourceVersion "1"
    second["spec"]["validation"]["hostname"] = "second";
    auto r = store.update("a", second);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::Conflict);
    EXPECT_NE(r.error().context().find("default/web"), std::string::npos);
    EXPECT_NE(r.error().context().find("resourceVersion " + rv(1) + " "), std::string::npos);
    EXPECT_NE(r.error().context().find(" " + rv(2)), std::string::npos);
    EXPECT_EQ(store.get("a", policyKey("default", "web"))->at("spec")["validation"]["hostname"],
              "first");

    second["metadata"]["resourceVersion"] = rv(2);
    auto retried = store.update("a", second);
    ASSERT_TRUE(retried) << retried.error().message();
    EXPECT_EQ(rvOf(*retried), rv(3));
}

TEST_P(StoreContract, CreateOfAnExistingObjectIsAlreadyExists) {
    Store& store = *store_;
    mustCreate("a", policy("default", "web", "h"));
    auto r = store.create("a", policy("default", "web", "other"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::AlreadyExists);
    EXPECT_NE(r.error().context().find("default/web"), std::string::npos);
    EXPECT_EQ(*store.revision(), rev(1)) << "a failed write takes no revision";
}

TEST_P(StoreContract, MissingObjectIsNotFoundForEveryOperation) {
    Store& store = *store_;
    const ObjectKey key = policyKey("default", "ghost");
    auto got = store.get("a", key);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code(), Errc::NotFound);
    auto updated = store.update("a", policy("default", "ghost", "h"));
    ASSERT_FALSE(updated);
    EXPECT_EQ(updated.error().code(), Errc::NotFound);
    auto status = store.updateStatus("a", key, Json{{"x", 1}});
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code(), Errc::NotFound);
    auto removed = store.remove("a", key);
    ASSERT_FALSE(removed);
    EXPECT_EQ(removed.error().code(), Errc::NotFound);
    EXPECT_EQ(*store.revision(), rev(0));
}

TEST_P(StoreContract, UpdateStatusNeverBumpsGenerationAndIsANoOpWhenEqual) {
    Store& store = *store_;
    mustCreate("a", policy("default", "web", "h"));
    const ObjectKey key = policyKey("default", "web");
    Json status = {{"ancestors", Json::array({{{"conditions", Json::array()}}})}};

    auto first = store.updateStatus("a", key, status);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(generationOf(*first), 1);
    EXPECT_EQ(rvOf(*first), rv(2));
    EXPECT_EQ((*first)["status"], status);
    EXPECT_EQ(keysOf(*first).back(), "status");

    auto again = store.updateStatus("a", key, status);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(rvOf(*again), rv(2));
    EXPECT_EQ(*store.revision(), rev(2));

    auto cleared = store.updateStatus("a", key, nullptr);
    ASSERT_TRUE(cleared) << cleared.error().message();
    EXPECT_FALSE(cleared->contains("status"));
    EXPECT_EQ(rvOf(*cleared), rv(3));
    EXPECT_EQ(generationOf(*cleared), 1);
}

TEST_P(StoreContract, RemoveReturnsTheObjectAndTakesARevision) {
    Store& store = *store_;
    Json created = mustCreate("a", policy("default", "web", "h"));
    auto removed = store.remove("a", policyKey("default", "web"));
    ASSERT_TRUE(removed) << removed.error().message();
    EXPECT_EQ(removed->dump(), created.dump());
    EXPECT_EQ(*store.revision(), rev(2));
    EXPECT_EQ(store.get("a", policyKey("default", "web")).error().code(), Errc::NotFound);
    EXPECT_TRUE(store.projects()->empty());

    auto recreated = store.create("a", policy("default", "web", "h"));
    ASSERT_TRUE(recreated) << recreated.error().message();
    EXPECT_EQ(rvOf(*recreated), rv(3));
    EXPECT_NE((*recreated)["metadata"]["uid"], created["metadata"]["uid"]);
}

TEST_P(StoreContract, ProjectsAreIsolated) {
    Store& store = *store_;
    mustCreate("a", policy("default", "web", "h"));
    const ObjectKey key = policyKey("default", "web");

    EXPECT_EQ(store.get("b", key).error().code(), Errc::NotFound);
    EXPECT_TRUE(store.list("b", kPolicyGroup, kPolicyKind, std::nullopt)->items.empty());
    EXPECT_TRUE(store.listProject("b")->items.empty());
    EXPECT_EQ(store.remove("b", key).error().code(), Errc::NotFound);
    EXPECT_EQ(store.update("b", policy("default", "web", "x")).error().code(), Errc::NotFound);
    EXPECT_EQ(store.updateStatus("b", key, Json{{"x", 1}}).error().code(), Errc::NotFound);

    // The same key in another project is a different object.
    auto other = store.create("b", policy("default", "web", "b-host"));
    ASSERT_TRUE(other) << other.error().message();
    EXPECT_EQ(store.get("a", key)->at("spec")["validation"]["hostname"], "h");
    EXPECT_TRUE(store.get("a", key));
}

TEST_P(StoreContract, CreationTimestampComesFromTheClockInWholeSeconds) {
    now_ = sys_days{year{1999} / December / 31} + hours{23} + minutes{59} + seconds{59} +
           microseconds{999999};
    auto created = store_->create("a", policy("default", "web", "h"));
    ASSERT_TRUE(created) << created.error().message();
    EXPECT_EQ((*created)["metadata"]["creationTimestamp"], "1999-12-31T23:59:59Z");
}

TEST_P(StoreContract, ConcurrentWritersGetDistinctResourceVersions) {
    Store& store = *store_;
    constexpr int kThreads = 4;
    constexpr int kPerThread = 100;
    std::vector<std::vector<std::string>> versions(kThreads);
    std::vector<int> failures(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                auto r = store.create(
                    "a", configMap("ns", "t" + std::to_string(t) + "-" + std::to_string(i)));
                if (r) {
                    versions[t].push_back(rvOf(*r));
                } else {
                    ++failures[t];
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    std::set<std::string> distinct;
    for (int t = 0; t < kThreads; ++t) {
        EXPECT_EQ(failures[t], 0) << "thread " << t;
        distinct.insert(versions[t].begin(), versions[t].end());
    }
    EXPECT_EQ(distinct.size(), 400u);
    EXPECT_EQ(store.listProject("a")->items.size(), 400u);
    EXPECT_EQ(*store.revision(), rev(400));
}

TEST_P(StoreContract, MalformedInputIsAnErrorNotAnException) {
    Store& store = *store_;
    auto noMetadata = store.create("a", Json{{"apiVersion", "v1"}, {"kind", "ConfigMap"}});
    ASSERT_FALSE(noMetadata);
    EXPECT_EQ(noMetadata.error().code(), Errc::Invalid);

    Json badUtf8 = configMap("default", "ca");
    badUtf8["data"]["ca.crt"] = std::string("\xff\xfe");
    auto r = store.create("a", badUtf8);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::Invalid);
    EXPECT_EQ(*store.revision(), rev(0)) << "the failed write was rolled back";
    EXPECT_TRUE(store.listProject("a")->items.empty());
}



TEST_P(StoreContract, ListsCarryTheRevisionTheyWereReadAt) {
    Store& store = *store_;
    mustCreate("a", policy("default", "web", "h"));
    mustCreate("b", configMap("default", "other"));
    auto listed = store.list("a", kPolicyGroup, kPolicyKind, std::nullopt);
    ASSERT_TRUE(listed) << listed.error().message();
    EXPECT_EQ(listed->revision, rev(2)) << "the store's revision, not the newest item's";
    auto project = store.listProject("a");
    ASSERT_TRUE(project) << project.error().message();
    EXPECT_EQ(project->revision, rev(2));
}

TEST_P(StoreContract, WatchDeliversEveryChangeAfterTheListInOrder) {
    Store& store = *store_;
    mustCreate("a", policy("default", "before", "h"));
    auto listed = store.listProject("a");
    ASSERT_TRUE(listed) << listed.error().message();
    auto watch = store.watch(listed->revision);

    Json created = mustCreate("a", policy("default", "web", "h"));
    ASSERT_TRUE(store.update("a", policy("default", "web", "changed")));
    ASSERT_TRUE(store.updateStatus("a", policyKey("default", "web"), Json{{"seen", true}}));
    ASSERT_TRUE(store.remove("a", policyKey("default", "web")));
    mustCreate("b", configMap("ns", "cm"));

    auto events = collect(*watch, 5);
    ASSERT_EQ(events.size(), 5u);
    using T = StoreEvent::Type;
    const std::vector<T> types{T::Added, T::Modified, T::Modified, T::Deleted, T::Added};
    for (std::size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].type, types[i]) << i;
        EXPECT_EQ(events[i].revision, rev(2 + i)) << i;
        EXPECT_EQ(rvOf(events[i].object), rv(2 + i)) << i;
    }
    EXPECT_EQ(events[0].object.dump(), created.dump());
    EXPECT_EQ(events[1].object["spec"]["validation"]["hostname"], "changed");
    EXPECT_EQ(events[2].object["status"]["seen"], true);
    EXPECT_EQ(events[3].object["metadata"]["name"], "web") << "a delete reports what it removed";
    EXPECT_EQ(events[3].project, "a");
    EXPECT_EQ(events[4].project, "b");
    EXPECT_EQ(events[4].object["kind"], "ConfigMap");

    auto quiet = watch->next(milliseconds(50));
    ASSERT_TRUE(quiet) << quiet.error().message();
    EXPECT_TRUE(quiet->empty()) << "nothing is delivered twice";
}

TEST_P(StoreContract, AWokenWatchReturnsAtOnce) {
    auto watch = store_->watch(rev(0));
    std::thread waker([&] {
        std::this_thread::sleep_for(milliseconds(100));
        watch->wake();
    });
    const auto start = steady_clock::now();
    auto events = watch->next(seconds(10));
    waker.join();
    ASSERT_TRUE(events) << events.error().message();
    EXPECT_LT(steady_clock::now() - start, seconds(5));
}

TEST_P(StoreContract, DeletePreconditionsProtectANewerOrRecreatedObject) {
    Store& store = *store_;
    Json created = mustCreate("a", policy("default", "web", "h"));
    const ObjectKey key = policyKey("default", "web");
    ASSERT_TRUE(store.update("a", policy("default", "web", "changed")));

    auto stale = store.remove("a", key, {.resourceVersion = rvOf(created)});
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code(), Errc::Conflict);

    auto otherUid = store.remove("a", key, {.uid = std::string("not-this-object")});
    ASSERT_FALSE(otherUid);
    EXPECT_EQ(otherUid.error().code(), Errc::Conflict);
    EXPECT_TRUE(store.get("a", key)) << "a failed precondition deletes nothing";

    auto removed = store.remove("a", key,
                                {.uid = created["metadata"]["uid"].get<std::string>(),
                                 .resourceVersion = rv(2)});
    ASSERT_TRUE(removed) << removed.error().message();
    EXPECT_EQ(store.get("a", key).error().code(), Errc::NotFound);
}

TEST_P(StoreContract, AStatusFromAnOlderObjectNeverReplacesANewerOne) {
    Store& store = *store_;
    Json created = mustCreate("a", policy("default", "web", "h"));
    const ObjectKey key = policyKey("default", "web");
    ASSERT_TRUE(store.update("a", policy("default", "web", "changed")));

    auto late = store.updateStatus("a", key, Json{{"from", "old"}}, rvOf(created));
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().code(), Errc::Conflict);
    EXPECT_FALSE(store.get("a", key)->contains("status"));

    auto current = store.updateStatus("a", key, Json{{"from", "new"}}, rv(2));
    ASSERT_TRUE(current) << current.error().message();
    EXPECT_EQ((*current)["status"]["from"], "new");
}

TEST_P(StoreContract, KeysThatCouldCollideAreRefused) {
    Json slashed = configMap("default", "a/b");
    auto r = store_->create("a", slashed);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::Invalid);
    auto project = store_->create("a/b", configMap("default", "x"));
    ASSERT_FALSE(project);
    EXPECT_EQ(project.error().code(), Errc::Invalid);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::ValuesIn(test::storeBackends()),
                         [](const auto& param) { return test::backendName(param.param); });

}  // namespace
}  // namespace lastmile::ctrl
