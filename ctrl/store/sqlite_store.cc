// SPDX-License-Identifier: Apache-2.0
// SQLite backend of Store: one WAL database file, one IMMEDIATE transaction per write, and a
// revision log for watches.
#include "ctrl/store/sqlite_store.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sqlite3.h>

#include "base/handle.h"
#include "base/unique_fd.h"
#include "ctrl/store/kv.h"

namespace lastmile::ctrl {
namespace {

// Long enough to ride out another process's checkpoint or write, short enough that a wedged
// peer surfaces as an error instead of a hung API request.
constexpr int kBusyTimeoutMs = 5000;

class SqliteCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "sqlite"; }
    std::string message(int code) const override { return sqlite3_errstr(code); }
};

const std::error_category& sqliteCategory() noexcept {
    static const SqliteCategory category;
    return category;
}

// The category already renders sqlite3_errstr(rc); the connection's message is added only when
// it says more than that, so the text appears once.
Unexpected<Error> dbFail(sqlite3* db, int rc, std::string doing) {
    const char* detail = db != nullptr ? sqlite3_errmsg(db) : nullptr;
    if (detail != nullptr && std::strcmp(detail, sqlite3_errstr(rc)) != 0) {
        doing += " (";
        doing += detail;
        doing += ")";
    }
    return fail(std::error_code(rc, sqliteCategory()), std::move(doing));
}

// close_v2: the connection goes away once the last statement is finalized, whatever the order.
using DbPtr = Handle<sqlite3, sqlite3_close_v2>;
using StmtPtr = Handle<sqlite3_stmt, sqlite3_finalize>;

// Borrowed use of a kept statement: resets it (and drops bindings) on every exit path so the
// next caller starts clean and no read cursor stays open across COMMIT.
class StmtUse {
public:
    explicit StmtUse(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
    StmtUse(const StmtUse&) = delete;
    StmtUse& operator=(const StmtUse&) = delete;
    ~StmtUse() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    sqlite3_stmt* get() const noexcept { return stmt_; }

private:
    sqlite3_stmt* stmt_;
};

std::string columnText(sqlite3_stmt* stmt, int col) {
    const unsigned char* text = sqlite3_column_text(stmt, col);
    if (text == nullptr) {
        return {};
    }
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt, col)));
}

Result<StmtPtr> prepare(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size() + 1),
                                SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) {
        return dbFail(db, rc, "preparing statement `" + sql + "`");
    }
    return stmt;
}

Status exec(sqlite3* db, const char* sql, const std::string& doing) {
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
        return dbFail(db, rc, doing);
    }
    return {};
}

// Single-row query read as text (pragmas); nullopt when the statement yields no row.
Result<std::optional<std::string>> queryText(sqlite3* db, const std::string& sql,
                                             const std::string& doing) {
    auto stmt = prepare(db, sql);
    if (!stmt) {
        return fail(std::move(stmt).error());
    }
    std::optional<std::string> out;
    int rc;
    while ((rc = sqlite3_step(stmt->get())) == SQLITE_ROW) {
        if (!out) {
            out = columnText(stmt->get(), 0);
        }
    }
    if (rc != SQLITE_DONE) {
        return dbFail(db, rc, doing);
    }
    return out;
}

Result<int> queryInt(sqlite3* db, const std::string& sql, const std::string& doing) {
    auto text = queryText(db, sql, doing);
    if (!text) {
        return fail(std::move(text).error());
    }
    if (!*text) {
        return fail(Errc::Internal, doing + ": no row");
    }
    try {
        return std::stoi(**text);
    } catch (const std::exception&) {
        return fail(Errc::Internal, doing + ": not a number: " + **text);
    }
}

// SQLite syncs the directory when it creates the WAL but not when it creates the database file,
// so a power loss right after the first start could lose the file's directory entry.
Status syncParentDir(const std::string& path) {
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) {
        dir = ".";
    }
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
        return failErrno("opening " + dir.string() + " to sync the store's directory entry");
    }
    if (::fsync(fd.get()) == -1) {
        return failErrno("syncing directory " + dir.string());
    }
    return {};
}

// Version 2 (kSqliteSchemaVersion): versioned keys and the revision log that watches read.
// Version 1 held one row per object (table `objects`); migrateFromV1() carries it over.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE log (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    value TEXT NOT NULL,
    create_revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('compacted', 0);
)sql";

// Version 1's rows become keys at their resourceVersion, which stays what clients saw; the
// log starts empty, so a watch from before the migration is Gone and relists.
constexpr const char* kMigrateV1 = R"sql(
INSERT INTO kv (key, value, create_revision, mod_revision)
    SELECT 'objects/' || project || '/' || kind || '/' || namespace || '/' || name,
           body, resource_version, resource_version FROM objects;
UPDATE meta SET value = (SELECT value FROM meta WHERE key = 'revision') WHERE key = 'compacted';
DROP TABLE objects;
)sql";

// Watches further behind than this many revisions are Gone: the log cannot grow without bound,
// and a watcher that far behind relists faster than it would replay.
constexpr std::int64_t kLogRetention = 10000;

// A feed looks at the log at least this often, for writes by other processes on the same file;
// this process's own writes wake it at once.
constexpr std::chrono::milliseconds kFeedPoll{200};

// The first key after every key starting with `prefix` (prefix itself when it cannot be
// bounded, which the empty range then reads as "to the end").
std::string prefixEnd(std::string prefix) {
    while (!prefix.empty()) {
        auto last = static_cast<unsigned char>(prefix.back());
        if (last < 0xff) {
            prefix.back() = static_cast<char>(last + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return prefix;
}

struct Statements {
    StmtPtr begin;
    StmtPtr commit;
    StmtPtr rollback;
    StmtPtr readMeta;
    StmtPtr writeMeta;
    StmtPtr selectOne;
    StmtPtr upsert;
    StmtPtr remove;
    StmtPtr range;
    StmtPtr rangeToEnd;
    StmtPtr appendLog;
    StmtPtr trimLog;
    StmtPtr readLog;
};

class SqliteKv final : public KvBackend {
public:
    static Result<std::unique_ptr<SqliteKv>> open(const std::string& path);

    SqliteKv(DbPtr db, Statements stmts) : db_(std::move(db)), stmts_(std::move(stmts)) {}

    Result<std::optional<KvRecord>> read(const std::string& key) override;
    Result<KvSnapshot> range(const std::string& prefix) override;
    Result<std::uint64_t> write(const std::string& key, const std::optional<std::string>& value,
                                std::uint64_t expected) override;
    Result<std::uint64_t> revision() override;
    std::unique_ptr<KvFeed> watch(const std::string& prefix, std::uint64_t after) override;

    Result<SqliteSettings> settings();
    // Log entries under `prefix` after revision `after`, a batch at a time; `readUpTo` is the
    // last revision looked at (other prefixes' too). Errc::Gone when some were trimmed.
    Result<std::vector<KvChange>> changesAfter(const std::string& prefix, std::uint64_t after,
                                               std::uint64_t& readUpTo);
    // Blocks until a write of this process, `woken` or `deadline`, whichever comes first,
    // unless a write happened after `seen` (a count of writes).
    void waitForWrite(std::uint64_t seen, std::chrono::steady_clock::time_point deadline,
                      const std::atomic<bool>& woken);
    std::uint64_t writes() const { return writes_.load(); }
    // Sets `woken` and wakes every waitForWrite() (the one waiting on it among them).
    void wake(std::atomic<bool>& woken);

private:
    // Rolls back an open transaction on every early return (and on unwinding), unless
    // committed. After a failed COMMIT SQLite may already have rolled back itself.
    class WriteGuard {
    public:
        explicit WriteGuard(SqliteKv& kv) noexcept : kv_(kv) {}
        WriteGuard(const WriteGuard&) = delete;
        WriteGuard& operator=(const WriteGuard&) = delete;
        ~WriteGuard() {
            if (sqlite3_get_autocommit(kv_.db_.get()) == 0) {
                StmtUse use(kv_.stmts_.rollback.get());
                sqlite3_step(use.get());
            }
        }

    private:
        SqliteKv& kv_;
    };

    Unexpected<Error> sqlFail(int rc, std::string doing) {
        return dbFail(db_.get(), rc, std::move(doing));
    }
    Status runOnce(sqlite3_stmt* stmt, const std::string& doing);
    Status bindText(sqlite3_stmt* stmt, int index, const std::string& value,
                    const std::string& doing);
    Status bindInt(sqlite3_stmt* stmt, int index, std::int64_t value, const std::string& doing);
    Result<std::optional<KvRecord>> selectLocked(const std::string& key, const std::string& doing);
    Result<std::int64_t> readMeta(const char* name, const std::string& doing);
    Status writeMeta(const char* name, std::int64_t value, const std::string& doing);
    Result<std::uint64_t> writeLocked(const std::string& key,
                                      const std::optional<std::string>& value,
                                      std::uint64_t expected, const std::string& doing);

    std::mutex mu_;
    DbPtr db_;  // declared before stmts_: statements are finalized first
    Statements stmts_;
    std::atomic<std::uint64_t> writes_{0};
    std::mutex changedMu_;
    std::condition_variable changed_;
};

Status createSchema(sqlite3* db, const std::string& path) {
    // IMMEDIATE: two processes opening a fresh file must not both create the schema.
    LM_TRY(exec(db, "BEGIN IMMEDIATE", "locking " + path + " to check its schema"));
    auto version = queryInt(db, "PRAGMA user_version", "reading schema version of " + path);
    Status result;
    if (!version) {
        result = fail(std::move(version).error());
    } else if (*version == 0 || *version == 1) {
        result = exec(db, kSchemaV2, "creating schema in " + path);
        if (result && *version == 1) {
            result = exec(db, kMigrateV1, "migrating " + path + " from schema version 1");
        }
        if (result) {
            result = exec(db, "PRAGMA user_version = 2", "setting schema version of " + path);
        }
    } else if (*version != kSqliteSchemaVersion) {
        result = fail(Errc::Invalid, path + " has schema version " + std::to_string(*version) +
                                         ", this build knows only versions 1 and " +
                                         std::to_string(kSqliteSchemaVersion));
    }
    if (!result) {
        if (sqlite3_get_autocommit(db) == 0) {
            sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        }
        return result;
    }
    return exec(db, "COMMIT", "committing schema of " + path);
}

Result<std::unique_ptr<SqliteKv>> SqliteKv::open(const std::string& path) {
    const std::string what = "opening store " + path;
    // Secrets are stored here: create the file owner-only (SQLite would use 0644 less the
    // umask). SQLite gives the -wal and -shm files the mode of the database file.
    {
        UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!fd.valid()) {
            return failErrno(what);
        }
    }
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    DbPtr db(raw);  // set even on most failures, and must be closed then too
    if (rc != SQLITE_OK) {
        std::string doing = what;
        if (db && sqlite3_system_errno(db.get()) != 0) {
            doing += " [" + std::string(std::strerror(sqlite3_system_errno(db.get()))) + "]";
        }
        return dbFail(db.get(), rc, doing);
    }
    if ((rc = sqlite3_extended_result_codes(db.get(), 1)) != SQLITE_OK) {
        return dbFail(db.get(), rc, what + ": enabling extended result codes");
    }
    if ((rc = sqlite3_busy_timeout(db.get(), kBusyTimeoutMs)) != SQLITE_OK) {
        return dbFail(db.get(), rc, what + ": setting busy timeout");
    }
    // journal_mode answers with the mode now in force; a file system that cannot do WAL
    // answers something else, and then the durability contract does not hold.
    auto mode = queryText(db.get(), "PRAGMA journal_mode=WAL", what + ": enabling WAL");
    if (!mode) {
        return fail(std::move(mode).error());
    }
    if (!*mode || **mode != "wal") {
        return fail(Errc::Unavailable, what + ": cannot use WAL journal (journal_mode is " +
                                           mode->value_or("unknown") + ")");
    }
    LM_TRY(exec(db.get(), "PRAGMA synchronous=FULL", what + ": setting synchronous=FULL"));
    LM_TRY(createSchema(db.get(), path));
    LM_TRY(syncParentDir(path));

    Statements s;
    const std::pair<StmtPtr*, std::string> sqls[] = {
        {&s.begin, "BEGIN IMMEDIATE"},
        {&s.commit, "COMMIT"},
        {&s.rollback, "ROLLBACK"},
        {&s.readMeta, "SELECT value FROM meta WHERE key = ?1"},
        {&s.writeMeta, "UPDATE meta SET value = ?2 WHERE key = ?1"},
        {&s.selectOne, "SELECT value, create_revision, mod_revision FROM kv WHERE key = ?1"},
        {&s.upsert,
         "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?4) "
         "ON CONFLICT (key) DO UPDATE SET value = ?2, mod_revision = ?4"},
        {&s.remove, "DELETE FROM kv WHERE key = ?1"},
        {&s.range,
         "SELECT key, value, create_revision, mod_revision FROM kv "
         "WHERE key >= ?1 AND key < ?2 ORDER BY key"},
        {&s.rangeToEnd,
         "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ?1 ORDER BY key"},
        {&s.appendLog,
         "INSERT INTO log (revision, key, deleted, value, create_revision) "
         "VALUES (?1, ?2, ?3, ?4, ?5)"},
        {&s.trimLog, "DELETE FROM log WHERE revision <= ?1"},
        {&s.readLog,
         "SELECT revision, key, deleted, value, create_revision FROM log "
         "WHERE revision > ?1 ORDER BY revision LIMIT 1000"},
    };
    for (const auto& [slot, sql] : sqls) {
        auto stmt = prepare(db.get(), sql);
        if (!stmt) {
            return fail(std::move(stmt).error());
        }
        *slot = std::move(*stmt);
    }
    return std::make_unique<SqliteKv>(std::move(db), std::move(s));
}

Status SqliteKv::runOnce(sqlite3_stmt* stmt, const std::string& doing) {
    StmtUse use(stmt);
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return sqlFail(rc, doing);
    }
    return {};
}

Status SqliteKv::bindText(sqlite3_stmt* stmt, int index, const std::string& value,
                          const std::string& doing) {
    int rc = sqlite3_bind_text64(stmt, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    if (rc != SQLITE_OK) {
        return sqlFail(rc, doing);
    }
    return {};
}

Status SqliteKv::bindInt(sqlite3_stmt* stmt, int index, std::int64_t value,
                         const std::string& doing) {
    int rc = sqlite3_bind_int64(stmt, index, value);
    if (rc != SQLITE_OK) {
        return sqlFail(rc, doing);
    }
    return {};
}

Result<std::optional<KvRecord>> SqliteKv::selectLocked(const std::string& key,
                                                       const std::string& doing) {
    StmtUse use(stmts_.selectOne.get());
    LM_TRY(bindText(use.get(), 1, key, doing));
    int rc = sqlite3_step(use.get());
    if (rc == SQLITE_DONE) {
        return std::optional<KvRecord>();
    }
    if (rc != SQLITE_ROW) {
        return sqlFail(rc, doing);
    }
    KvRecord record;
    record.key = key;
    record.value = columnText(use.get(), 0);
    record.createRevision = static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 1));
    record.modRevision = static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 2));
    return std::optional<KvRecord>(std::move(record));
}

Result<std::int64_t> SqliteKv::readMeta(const char* name, const std::string& doing) {
    StmtUse use(stmts_.readMeta.get());
    LM_TRY(bindText(use.get(), 1, name, doing));
    int rc = sqlite3_step(use.get());
    if (rc == SQLITE_DONE) {
        return fail(Errc::Internal, doing + ": store " + name + " row is missing");
    }
    if (rc != SQLITE_ROW) {
        return sqlFail(rc, doing);
    }
    return sqlite3_column_int64(use.get(), 0);
}

Status SqliteKv::writeMeta(const char* name, std::int64_t value, const std::string& doing) {
    StmtUse use(stmts_.writeMeta.get());
    LM_TRY(bindText(use.get(), 1, name, doing));
    LM_TRY(bindInt(use.get(), 2, value, doing));
    int rc = sqlite3_step(use.get());
    if (rc != SQLITE_DONE) {
        return sqlFail(rc, doing);
    }
    if (sqlite3_changes(db_.get()) != 1) {
        return fail(Errc::Internal, doing + ": store " + name + " row is missing");
    }
    return {};
}

Result<std::optional<KvRecord>> SqliteKv::read(const std::string& key) {
    std::lock_guard lock(mu_);
    return selectLocked(key, "reading " + key);
}

Result<KvSnapshot> SqliteKv::range(const std::string& prefix) {
    const std::string doing = "reading " + prefix + "*";
    std::lock_guard lock(mu_);
    // One read transaction, so the rows and the revision are from the same moment.
    LM_TRY(exec(db_.get(), "BEGIN", doing));
    WriteGuard guard(*this);
    KvSnapshot out;
    auto revision = readMeta("revision", doing);
    LM_TRY(revision);
    out.revision = static_cast<std::uint64_t>(*revision);
    const std::string end = prefixEnd(prefix);
    StmtUse use(end.empty() ? stmts_.rangeToEnd.get() : stmts_.range.get());
    LM_TRY(bindText(use.get(), 1, prefix, doing));
    if (!end.empty()) {
        LM_TRY(bindText(use.get(), 2, end, doing));
    }
    int rc;
    while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
        KvRecord record;
        record.key = columnText(use.get(), 0);
        record.value = columnText(use.get(), 1);
        record.createRevision = static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 2));
        record.modRevision = static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 3));
        out.records.push_back(std::move(record));
    }
    if (rc != SQLITE_DONE) {
        return sqlFail(rc, doing);
    }
    return out;
}

Result<std::uint64_t> SqliteKv::writeLocked(const std::string& key,
                                            const std::optional<std::string>& value,
                                            std::uint64_t expected, const std::string& doing) {
    LM_TRY(runOnce(stmts_.begin.get(), doing + ": beginning transaction"));
    WriteGuard guard(*this);
    auto current = selectLocked(key, doing);
    LM_TRY(current);
    const std::uint64_t found = *current ? (*current)->modRevision : 0;
    if (found != expected) {
        return fail(Errc::Conflict, doing + ": expected revision " + std::to_string(expected) +
                                        ", found " + std::to_string(found));
    }
    if (!value && !*current) {
        return fail(Errc::NotFound, doing);
    }
    auto last = readMeta("revision", doing);
    LM_TRY(last);
    const std::int64_t revision = *last + 1;
    const std::int64_t created = *current ? static_cast<std::int64_t>((*current)->createRevision)
                                          : revision;
    if (value) {
        StmtUse use(stmts_.upsert.get());
        LM_TRY(bindText(use.get(), 1, key, doing));
        LM_TRY(bindText(use.get(), 2, *value, doing));
        LM_TRY(bindInt(use.get(), 3, created, doing));
        LM_TRY(bindInt(use.get(), 4, revision, doing));
        if (int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
            return sqlFail(rc, doing);
        }
    } else {
        StmtUse use(stmts_.remove.get());
        LM_TRY(bindText(use.get(), 1, key, doing));
        if (int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
            return sqlFail(rc, doing);
        }
    }
    {
        // A delete logs the value it removed, which its watchers report.
        StmtUse use(stmts_.appendLog.get());
        LM_TRY(bindInt(use.get(), 1, revision, doing));
        LM_TRY(bindText(use.get(), 2, key, doing));
        LM_TRY(bindInt(use.get(), 3, value ? 0 : 1, doing));
        LM_TRY(bindText(use.get(), 4, value ? *value : (*current)->value, doing));
        LM_TRY(bindInt(use.get(), 5, created, doing));
        if (int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
            return sqlFail(rc, doing);
        }
    }
    LM_TRY(writeMeta("revision", revision, doing));
    if (revision > kLogRetention) {
        const std::int64_t horizon = revision - kLogRetention;
        StmtUse use(stmts_.trimLog.get());
        LM_TRY(bindInt(use.get(), 1, horizon, doing));
        if (int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
            return sqlFail(rc, doing);
        }
        LM_TRY(writeMeta("compacted", horizon, doing));
    }
    LM_TRY(runOnce(stmts_.commit.get(), doing + ": committing"));
    return static_cast<std::uint64_t>(revision);
}

Result<std::uint64_t> SqliteKv::write(const std::string& key,
                                      const std::optional<std::string>& value,
                                      std::uint64_t expected) {
    Result<std::uint64_t> result = [&] {
        std::lock_guard lock(mu_);
        return writeLocked(key, value, expected, (value ? "writing " : "deleting ") + key);
    }();
    if (result) {
        {
            std::lock_guard lock(changedMu_);
            ++writes_;
        }
        changed_.notify_all();
    }
    return result;
}

Result<std::uint64_t> SqliteKv::revision() {
    std::lock_guard lock(mu_);
    auto revision = readMeta("revision", "reading store revision");
    LM_TRY(revision);
    return static_cast<std::uint64_t>(*revision);
}

Result<std::vector<KvChange>> SqliteKv::changesAfter(const std::string& prefix,
                                                     std::uint64_t after,
                                                     std::uint64_t& readUpTo) {
    const std::string doing = "reading changes after revision " + std::to_string(after);
    std::lock_guard lock(mu_);
    LM_TRY(exec(db_.get(), "BEGIN", doing));
    WriteGuard guard(*this);
    auto compacted = readMeta("compacted", doing);
    LM_TRY(compacted);
    if (after < static_cast<std::uint64_t>(*compacted)) {
        return fail(Errc::Gone, doing + ": the log starts after revision " +
                                    std::to_string(*compacted));
    }
    StmtUse use(stmts_.readLog.get());
    LM_TRY(bindInt(use.get(), 1, static_cast<std::int64_t>(after), doing));
    std::vector<KvChange> out;
    int rc;
    while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
        KvChange change;
        change.record.modRevision = static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 0));
        change.record.key = columnText(use.get(), 1);
        change.deleted = sqlite3_column_int64(use.get(), 2) != 0;
        change.record.value = columnText(use.get(), 3);
        change.record.createRevision =
            static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 4));
        readUpTo = change.record.modRevision;
        if (change.record.key.compare(0, prefix.size(), prefix) == 0) {
            out.push_back(std::move(change));
        }
    }
    if (rc != SQLITE_DONE) {
        return sqlFail(rc, doing);
    }
    return out;
}

void SqliteKv::waitForWrite(std::uint64_t seen, std::chrono::steady_clock::time_point deadline,
                            const std::atomic<bool>& woken) {
    std::unique_lock lock(changedMu_);
    changed_.wait_until(lock, deadline, [&] { return writes_.load() != seen || woken.load(); });
}

void SqliteKv::wake(std::atomic<bool>& woken) {
    {
        std::lock_guard lock(changedMu_);
        woken = true;
    }
    changed_.notify_all();
}

// Polls the log: this process's writes wake it, other processes' are seen within kFeedPoll.
class SqliteFeed final : public KvFeed {
public:
    SqliteFeed(SqliteKv& kv, std::string prefix, std::uint64_t after)
        : kv_(kv), prefix_(std::move(prefix)), after_(after) {}

    Result<std::vector<KvChange>> next(std::chrono::milliseconds wait) override {
        const auto deadline = std::chrono::steady_clock::now() + wait;
        woken_ = false;
        for (;;) {
            const std::uint64_t seen = kv_.writes();
            const std::uint64_t before = after_;
            auto changes = kv_.changesAfter(prefix_, after_, after_);
            LM_TRY(changes);
            const auto now = std::chrono::steady_clock::now();
            if (!changes->empty() || now >= deadline || woken_) {
                return changes;
            }
            if (after_ != before) {
                continue;  // only other prefixes' entries: read on at once
            }
            kv_.waitForWrite(seen, std::min(deadline, now + kFeedPoll), woken_);
        }
    }
    void wake() override { kv_.wake(woken_); }

private:
    SqliteKv& kv_;
    const std::string prefix_;
    std::uint64_t after_;
    std::atomic<bool> woken_{false};
};

std::unique_ptr<KvFeed> SqliteKv::watch(const std::string& prefix, std::uint64_t after) {
    return std::make_unique<SqliteFeed>(*this, prefix, after);
}

Result<SqliteSettings> SqliteKv::settings() {
    std::lock_guard lock(mu_);
    SqliteSettings out;
    auto mode = queryText(db_.get(), "PRAGMA journal_mode", "reading journal_mode");
    if (!mode) {
        return fail(std::move(mode).error());
    }
    out.journalMode = mode->value_or("");
    const std::pair<int*, const char*> ints[] = {
        {&out.synchronous, "PRAGMA synchronous"},
        {&out.busyTimeoutMs, "PRAGMA busy_timeout"},
        {&out.schemaVersion, "PRAGMA user_version"},
    };
    for (const auto& [slot, sql] : ints) {
        auto v = queryInt(db_.get(), sql, std::string("reading ") + sql);
        if (!v) {
            return fail(std::move(v).error());
        }
        *slot = *v;
    }
    return out;
}

}  // namespace

Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, Clock clock) {
    try {
        auto kv = SqliteKv::open(path);
        if (!kv) {
            return fail(std::move(kv).error());
        }
        return makeObjectStore(std::move(*kv), "", std::move(clock));
    } catch (const std::exception& e) {
        return fail(Errc::Internal, "opening store " + path + ": " + e.what());
    }
}

Result<SqliteSettings> sqliteSettings(Store& store) {
    auto* sqlite = dynamic_cast<SqliteKv*>(backendOf(store));
    if (sqlite == nullptr) {
        return fail(Errc::Invalid, "reading SQLite settings: not an SQLite store");
    }
    return sqlite->settings();
}

}  // namespace lastmile::ctrl
