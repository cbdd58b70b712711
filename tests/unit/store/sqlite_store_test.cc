// SPDX-License-Identifier: Apache-2.0
// Tests of the SQLite Store: metadata semantics, isolation, durability and concurrency on real files.
#include "ctrl/store/sqlite_store.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "ctrl/store/store.h"

namespace lastmile::ctrl {
namespace {

using namespace std::chrono;

constexpr const char* kPolicyGroup = "gateway.networking.k8s.io";
constexpr const char* kPolicyKind = "BackendTLSPolicy";

// 2026-11-26T16:10:00.750Z: the fraction must not reach creationTimestamp.
system_clock::time_point fakeNow() {
    return sys_days{year{2026} / November / 26} + hours{16} + minutes{10} + milliseconds{750};
}

Json policy(const std::string& ns, const std::string& name, const std::string& hostname) {
    return Json{
        {"apiVersion", "gateway.networking.k8s.io/v1alpha3"},
        {"kind", kPolicyKind},
        {"metadata", {{"name", name}, {"namespace", ns}}},
        {"spec",
         {{"targetRefs", Json::array({{{"group", ""}, {"kind", "Service"}, {"name", "web"}}})},
          {"validation", {{"hostname", hostname}, {"wellKnownCACertificates", "System"}}}}},
    };
}

Json configMap(const std::string& ns, const std::string& name) {
    return Json{{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", {{"name", name}, {"namespace", ns}}},
                {"data", {{"ca.crt", "pem"}}}};
}

ObjectKey policyKey(const std::string& ns, const std::string& name) {
    return ObjectKey{kPolicyGroup, kPolicyKind, ns, name};
}

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

std::string rvOf(const Json& object) {
    return object["metadata"]["resourceVersion"].get<std::string>();
}

std::int64_t generationOf(const Json& object) {
    return object["metadata"]["generation"].get<std::int64_t>();
}

class SqliteStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (std::filesystem::temp_directory_path() / "lm-store-XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
        path_ = (dir_ / "store.db").string();
    }

    void TearDown() override {
        store_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    Store& open() {
        store_.reset();
        auto store = openSqliteStore(path_, [] { return fakeNow(); });
        if (!store) {
            throw std::runtime_error(store.error().message());
        }
        store_ = std::move(*store);
        return *store_;
    }

    Json mustCreate(const std::string& project, const Json& object) {
        auto r = store_->create(project, object);
        if (!r) {
            throw std::runtime_error(r.error().message());
        }
        return *r;
    }

    std::filesystem::path dir_;
    std::string path_;
    std::unique_ptr<Store> store_;
};

TEST_F(SqliteStoreTest, CreateSetsServerOwnedMetadataInAFixedOrder) {
    Store& store = open();
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
    EXPECT_EQ(meta["resourceVersion"], "1");
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
    EXPECT_EQ(*store.revision(), 1u);
}

TEST_F(SqliteStoreTest, EveryObjectGetsItsOwnUid) {
    Store& store = open();
    auto a = mustCreate("a", policy("default", "one", "h"));
    auto b = mustCreate("a", policy("default", "two", "h"));
    EXPECT_NE(a["metadata"]["uid"], b["metadata"]["uid"]);
    EXPECT_EQ(rvOf(b), "2");
    (void)store;
}

TEST_F(SqliteStoreTest, ListsSortByNamespaceThenNameAndFilterByNamespace) {
    Store& store = open();
    mustCreate("a", policy("zeta", "b", "h"));
    mustCreate("a", policy("alpha", "z", "h"));
    mustCreate("a", policy("alpha", "a", "h"));
    mustCreate("a", configMap("alpha", "ca"));

    auto all = store.list("a", kPolicyGroup, kPolicyKind, std::nullopt);
    ASSERT_TRUE(all) << all.error().message();
    EXPECT_EQ(namesOf(*all), (std::vector<std::string>{"alpha/a", "alpha/z", "zeta/b"}));

    auto alpha = store.list("a", kPolicyGroup, kPolicyKind, std::string("alpha"));
    ASSERT_TRUE(alpha) << alpha.error().message();
    EXPECT_EQ(namesOf(*alpha), (std::vector<std::string>{"alpha/a", "alpha/z"}));

    auto maps = store.list("a", "", "ConfigMap", std::nullopt);
    ASSERT_TRUE(maps) << maps.error().message();
    EXPECT_EQ(namesOf(*maps), (std::vector<std::string>{"alpha/ca"}));

    auto none = store.list("a", kPolicyGroup, kPolicyKind, std::string("beta"));
    ASSERT_TRUE(none) << none.error().message();
    EXPECT_TRUE(none->empty());
}

TEST_F(SqliteStoreTest, ListProjectSortsByGroupKindNamespaceName) {
    Store& store = open();
    mustCreate("a", policy("ns", "p2", "h"));
    mustCreate("a", configMap("ns", "cm"));
    mustCreate("a", policy("ns", "p1", "h"));
    mustCreate("b", configMap("ns", "other"));

    auto objects = store.listProject("a");
    ASSERT_TRUE(objects) << objects.error().message();
    ASSERT_EQ(objects->size(), 3u);
    EXPECT_EQ((*objects)[0]["kind"], "ConfigMap") << "core group \"\" sorts first";
    EXPECT_EQ(namesOf(*objects), (std::vector<std::string>{"ns/cm", "ns/p1", "ns/p2"}));

    auto projects = store.projects();
    ASSERT_TRUE(projects) << projects.error().message();
    EXPECT_EQ(*projects, (std::vector<std::string>{"a", "b"}));
}

TEST_F(SqliteStoreTest, SpecChangeBumpsGenerationAndResourceVersion) {
    Store& store = open();
    Json created = mustCreate("a", policy("default", "web", "old.example.com"));
    Json changed = policy("default", "web", "new.example.com");

    auto updated = store.update("a", changed);
    ASSERT_TRUE(updated) << updated.error().message();
    EXPECT_EQ(generationOf(*updated), 2);
    EXPECT_EQ(rvOf(*updated), "2");
    EXPECT_EQ((*updated)["spec"]["validation"]["hostname"], "new.example.com");
    EXPECT_EQ((*updated)["metadata"]["uid"], created["metadata"]["uid"]);
    EXPECT_EQ((*updated)["metadata"]["creationTimestamp"], created["metadata"]["creationTimestamp"]);
    EXPECT_EQ(store.get("a", policyKey("default", "web"))->dump(), updated->dump());
}

TEST_F(SqliteStoreTest, LabelChangeBumpsResourceVersionButNotGeneration) {
    Store& store = open();
    mustCreate("a", policy("default", "web", "h"));
    Json labelled = policy("default", "web", "h");
    labelled["metadata"]["labels"] = {{"team", "edge"}};
    labelled["metadata"]["annotations"] = {{"note", "x"}};

    auto updated = store.update("a", labelled);
    ASSERT_TRUE(updated) << updated.error().message();
    EXPECT_EQ(generationOf(*updated), 1);
    EXPECT_EQ(rvOf(*updated), "2");
    EXPECT_EQ((*updated)["metadata"]["labels"]["team"], "edge");
    EXPECT_EQ(keysOf((*updated)["metadata"]).back(), "annotations");
}

TEST_F(SqliteStoreTest, UpdateThatChangesNothingKeepsResourceVersion) {
    Store& store = open();
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
    EXPECT_EQ(*store.revision(), 1u);
}

TEST_F(SqliteStoreTest, UpdateKeepsStoredStatusAndIgnoresClientStatus) {
    Store& store = open();
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

TEST_F(SqliteStoreTest, StaleResourceVersionIsAConflict) {
    Store& store = open();
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
    EXPECT_NE(r.error().context().find("resourceVersion 1 "), std::string::npos);
    EXPECT_NE(r.error().context().find(" 2"), std::string::npos);
    EXPECT_EQ(store.get("a", policyKey("default", "web"))->at("spec")["validation"]["hostname"],
              "first");

    second["metadata"]["resourceVersion"] = "2";
    auto retried = store.update("a", second);
    ASSERT_TRUE(retried) << retried.error().message();
    EXPECT_EQ(rvOf(*retried), "3");
}

TEST_F(SqliteStoreTest, CreateOfAnExistingObjectIsAlreadyExists) {
    Store& store = open();
    mustCreate("a", policy("default", "web", "h"));
    auto r = store.create("a", policy("default", "web", "other"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::AlreadyExists);
    EXPECT_NE(r.error().context().find("default/web"), std::string::npos);
    EXPECT_EQ(*store.revision(), 1u) << "a failed write takes no revision";
}

TEST_F(SqliteStoreTest, MissingObjectIsNotFoundForEveryOperation) {
    Store& store = open();
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
    EXPECT_EQ(*store.revision(), 0u);
}

TEST_F(SqliteStoreTest, UpdateStatusNeverBumpsGenerationAndIsANoOpWhenEqual) {
    Store& store = open();
    mustCreate("a", policy("default", "web", "h"));
    const ObjectKey key = policyKey("default", "web");
    Json status = {{"ancestors", Json::array({{{"conditions", Json::array()}}})}};

    auto first = store.updateStatus("a", key, status);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(generationOf(*first), 1);
    EXPECT_EQ(rvOf(*first), "2");
    EXPECT_EQ((*first)["status"], status);
    EXPECT_EQ(keysOf(*first).back(), "status");

    auto again = store.updateStatus("a", key, status);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(rvOf(*again), "2");
    EXPECT_EQ(*store.revision(), 2u);

    auto cleared = store.updateStatus("a", key, nullptr);
    ASSERT_TRUE(cleared) << cleared.error().message();
    EXPECT_FALSE(cleared->contains("status"));
    EXPECT_EQ(rvOf(*cleared), "3");
    EXPECT_EQ(generationOf(*cleared), 1);
}

TEST_F(SqliteStoreTest, RemoveReturnsTheObjectAndTakesARevision) {
    Store& store = open();
    Json created = mustCreate("a", policy("default", "web", "h"));
    auto removed = store.remove("a", policyKey("default", "web"));
    ASSERT_TRUE(removed) << removed.error().message();
    EXPECT_EQ(removed->dump(), created.dump());
    EXPECT_EQ(*store.revision(), 2u);
    EXPECT_EQ(store.get("a", policyKey("default", "web")).error().code(), Errc::NotFound);
    EXPECT_TRUE(store.projects()->empty());

    auto recreated = store.create("a", policy("default", "web", "h"));
    ASSERT_TRUE(recreated) << recreated.error().message();
    EXPECT_EQ(rvOf(*recreated), "3");
    EXPECT_NE((*recreated)["metadata"]["uid"], created["metadata"]["uid"]);
}

TEST_F(SqliteStoreTest, ObjectsAndRevisionSurviveReopen) {
    open();
    Json created = mustCreate("a", policy("default", "web", "h"));
    mustCreate("a", configMap("default", "ca"));
    ASSERT_TRUE(store_->remove("a", ObjectKey{"", "ConfigMap", "default", "ca"}));

    Store& reopened = open();
    EXPECT_EQ(*reopened.revision(), 3u);
    auto got = reopened.get("a", policyKey("default", "web"));
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(got->dump(), created.dump());
    auto next = reopened.create("a", configMap("default", "ca"));
    ASSERT_TRUE(next) << next.error().message();
    EXPECT_EQ(rvOf(*next), "4") << "revisions never repeat across restarts";
}

TEST_F(SqliteStoreTest, ProjectsAreIsolated) {
    Store& store = open();
    mustCreate("a", policy("default", "web", "h"));
    const ObjectKey key = policyKey("default", "web");

    EXPECT_EQ(store.get("b", key).error().code(), Errc::NotFound);
    EXPECT_TRUE(store.list("b", kPolicyGroup, kPolicyKind, std::nullopt)->empty());
    EXPECT_TRUE(store.listProject("b")->empty());
    EXPECT_EQ(store.remove("b", key).error().code(), Errc::NotFound);
    EXPECT_EQ(store.update("b", policy("default", "web", "x")).error().code(), Errc::NotFound);
    EXPECT_EQ(store.updateStatus("b", key, Json{{"x", 1}}).error().code(), Errc::NotFound);

    // The same key in another project is a different object.
    auto other = store.create("b", policy("default", "web", "b-host"));
    ASSERT_TRUE(other) << other.error().message();
    EXPECT_EQ(store.get("a", key)->at("spec")["validation"]["hostname"], "h");
    EXPECT_TRUE(store.get("a", key));
}

TEST_F(SqliteStoreTest, CreationTimestampComesFromTheClockInWholeSeconds) {
    store_.reset();
    auto store = openSqliteStore(path_, [] {
        return sys_days{year{1999} / December / 31} + hours{23} + minutes{59} + seconds{59} +
               microseconds{999999};
    });
    ASSERT_TRUE(store) << store.error().message();
    auto created = (*store)->create("a", policy("default", "web", "h"));
    ASSERT_TRUE(created) << created.error().message();
    EXPECT_EQ((*created)["metadata"]["creationTimestamp"], "1999-12-31T23:59:59Z");
}

TEST_F(SqliteStoreTest, ConcurrentWritersGetDistinctResourceVersions) {
    Store& store = open();
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
    EXPECT_EQ(store.listProject("a")->size(), 400u);
    EXPECT_EQ(*store.revision(), 400u);
}

TEST_F(SqliteStoreTest, ConnectionUsesWalWithSynchronousFull) {
    Store& store = open();
    auto settings = sqliteSettings(store);
    ASSERT_TRUE(settings) << settings.error().message();
    EXPECT_EQ(settings->journalMode, "wal");
    EXPECT_EQ(settings->synchronous, 2) << "2 is FULL";
    EXPECT_GT(settings->busyTimeoutMs, 0);
    EXPECT_EQ(settings->schemaVersion, kSqliteSchemaVersion);
}

TEST_F(SqliteStoreTest, UnwritablePathFailsWithAClearError) {
    // A regular file as the parent directory: no privilege makes this writable, not even root.
    const auto blocker = dir_ / "not-a-dir";
    std::ofstream(blocker) << "x";
    const std::string path = (blocker / "store.db").string();
    auto store = openSqliteStore(path, [] { return fakeNow(); });
    ASSERT_FALSE(store);
    EXPECT_EQ(store.error().code(), std::errc::not_a_directory);
    EXPECT_NE(store.error().context().find(path), std::string::npos);
}

TEST_F(SqliteStoreTest, StoreFilesAreOwnerOnly) {
    open();
    mustCreate("a", configMap("default", "ca"));
    for (const char* suffix : {"", "-wal", "-shm"}) {
        struct stat st {};
        ASSERT_EQ(::stat((path_ + suffix).c_str(), &st), 0) << suffix;
        EXPECT_EQ(st.st_mode & 0777, 0600u) << "secrets are stored: " << path_ << suffix;
    }
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);

    auto store = openSqliteStore(path_, [] { return fakeNow(); });
    ASSERT_FALSE(store);
    EXPECT_EQ(store.error().code(), Errc::Invalid);
    EXPECT_NE(store.error().context().find("99"), std::string::npos);
}

TEST_F(SqliteStoreTest, MalformedInputIsAnErrorNotAnException) {
    Store& store = open();
    auto noMetadata = store.create("a", Json{{"apiVersion", "v1"}, {"kind", "ConfigMap"}});
    ASSERT_FALSE(noMetadata);
    EXPECT_EQ(noMetadata.error().code(), Errc::Invalid);

    Json badUtf8 = configMap("default", "ca");
    badUtf8["data"]["ca.crt"] = std::string("\xff\xfe");
    auto r = store.create("a", badUtf8);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::Invalid);
    EXPECT_EQ(*store.revision(), 0u) << "the failed write was rolled back";
    EXPECT_TRUE(store.listProject("a")->empty());
}

bool readFull(int fd, void* buf, std::size_t len) {
    auto* p = static_cast<char*>(buf);
    while (len > 0) {
        ssize_t n = ::read(fd, p, len);
        if (n <= 0) {
            if (n == -1 && errno == EINTR) {
                continue;
            }
            return false;
        }
        p += n;
        len -= static_cast<std::size_t>(n);
    }
    return true;
}

TEST_F(SqliteStoreTest, AcknowledgedWritesSurviveSigkill) {
    constexpr std::uint32_t kMaxWrites = 5000;  // bounds the child if the kill never comes
    constexpr std::uint32_t kAcksBeforeKill = 25;
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    const pid_t pid = fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) {
        ::close(fds[0]);
        auto store = openSqliteStore(path_, [] { return fakeNow(); });
        if (!store) {
            _exit(2);
        }
        for (std::uint32_t i = 0; i < kMaxWrites; ++i) {
            if (!(*store)->create("a", configMap("ns", "cm-" + std::to_string(i)))) {
                _exit(3);
            }
            if (::write(fds[1], &i, sizeof i) != static_cast<ssize_t>(sizeof i)) {
                _exit(4);
            }
        }
        _exit(0);
    }
    ::close(fds[1]);
    std::vector<std::uint32_t> acked;
    std::uint32_t ack = 0;
    while (acked.size() < kAcksBeforeKill && readFull(fds[0], &ack, sizeof ack)) {
        acked.push_back(ack);
    }
    ::kill(pid, SIGKILL);
    // Acknowledgements already in the pipe count too: each was sent after create() returned.
    while (readFull(fds[0], &ack, sizeof ack)) {
        acked.push_back(ack);
    }
    ::close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) || (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0))
        << "child failed with status " << wstatus;
    ASSERT_GE(acked.size(), kAcksBeforeKill);

    Store& store = open();
    for (std::uint32_t i : acked) {
        auto got = store.get("a", ObjectKey{"", "ConfigMap", "ns", "cm-" + std::to_string(i)});
        EXPECT_TRUE(got) << "acknowledged object cm-" << i << " lost: " << got.error().message();
    }
    EXPECT_GE(*store.revision(), acked.size());
}

}  // namespace
}  // namespace lastmile::ctrl
