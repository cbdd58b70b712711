// SPDX-License-Identifier: Apache-2.0
// Tests of the SQLite backend: durability, file modes, schema versions and the revision log on
// real files (the object rules are in store_contract_test.cc).
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

// 2026-11-26T16:10:00.750Z: the fraction must not reach creationTimestamp.
system_clock::time_point fakeNow() {
    return sys_days{year{2026} / November / 26} + hours{16} + minutes{10} + milliseconds{750};
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

// A version 1 file, as lastmile wrote it before the revision log: one row per object.
void writeVersion1(const std::string& path) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* sql = R"sql(
CREATE TABLE objects (project TEXT NOT NULL, grp TEXT NOT NULL, kind TEXT NOT NULL,
    namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL,
    resource_version INTEGER NOT NULL, generation INTEGER NOT NULL, created TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (project, grp, kind, namespace, name));
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('revision', 7);
INSERT INTO objects VALUES ('a', '', 'ConfigMap', 'default', 'ca', 'u-1', 5, 2,
    '2026-11-26T16:10:00Z', '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ca",'
    || '"namespace":"default","uid":"u-1","resourceVersion":"5","generation":2,'
    || '"creationTimestamp":"2026-11-26T16:10:00Z"},"data":{"ca.crt":"pem"}}');
PRAGMA user_version = 1;
)sql";
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
}

TEST_F(SqliteStoreTest, AVersion1FileIsMigratedWithItsObjectsAndRevisions) {
    writeVersion1(path_);
    Store& store = open();
    auto got = store.get("a", ObjectKey{"", "ConfigMap", "default", "ca"});
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(rvOf(*got), "5") << "clients keep the resourceVersion they saw";
    EXPECT_EQ((*got)["metadata"]["uid"], "u-1");
    EXPECT_EQ(generationOf(*got), 2);
    EXPECT_EQ(*store.revision(), 7u);
    EXPECT_EQ(sqliteSettings(store)->schemaVersion, kSqliteSchemaVersion);

    // Revisions go on from where version 1 stopped, and a watch from before the migration,
    // whose changes the new log does not have, is told to relist.
    auto next = store.create("a", configMap("default", "next"));
    ASSERT_TRUE(next) << next.error().message();
    EXPECT_EQ(rvOf(*next), "8");
    auto stale = store.watch(6)->next(milliseconds(10));
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code(), Errc::Gone);
    auto current = store.watch(7)->next(milliseconds(10));
    ASSERT_TRUE(current) << current.error().message();
    ASSERT_EQ(current->size(), 1u);
    EXPECT_EQ((*current)[0].object["metadata"]["name"], "next");
}

TEST_F(SqliteStoreTest, AWatchSeesWritesOfAnotherProcessOnTheSameFile) {
    Store& store = open();
    auto watch = store.watch(0);
    auto other = openSqliteStore(path_, [] { return fakeNow(); });
    ASSERT_TRUE(other) << other.error().message();
    ASSERT_TRUE((*other)->create("b", configMap("ns", "from-elsewhere")));
    std::vector<StoreEvent> events;
    const auto deadline = steady_clock::now() + seconds(5);
    while (events.empty() && steady_clock::now() < deadline) {
        auto got = watch->next(milliseconds(500));
        ASSERT_TRUE(got) << got.error().message();
        events = *got;
    }
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].project, "b");
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
