// SPDX-License-Identifier: Apache-2.0
// SQLite implementation of Store: one WAL database file, one IMMEDIATE transaction per write.
#include "ctrl/store/sqlite_store.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <array>
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

#include <openssl/err.h>
#include <openssl/rand.h>

#include <sqlite3.h>

#include "base/handle.h"
#include "base/text.h"
#include "base/unique_fd.h"

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

std::string describe(const std::string& project, const ObjectKey& key) {
    std::string kind = key.group.empty() ? key.kind : key.kind + "." + key.group;
    return kind + " " + key.ns + "/" + key.name + " in project " + project;
}

Result<std::string> newUid() {
    std::array<unsigned char, 16> b{};
    if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
        std::array<char, 256> buf{};
        ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
        return fail(Errc::Internal, std::string("generating uid: RAND_bytes: ") + buf.data());
    }
    // RFC 4122 version 4 (random) and variant 10xx.
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out += '-';
        }
        out += kHex[b[i] >> 4];
        out += kHex[b[i] & 0x0f];
    }
    return out;
}

// JSON equality that ignores object key order: a client that re-sends the same object with its
// fields in another order has not changed it.
bool sameJson(const Json& a, const Json& b) {
    if (a.is_object() && b.is_object()) {
        if (a.size() != b.size()) {
            return false;
        }
        for (auto it = a.begin(); it != a.end(); ++it) {
            auto other = b.find(it.key());
            if (other == b.end() || !sameJson(it.value(), *other)) {
                return false;
            }
        }
        return true;
    }
    if (a.is_array() && b.is_array()) {
        if (a.size() != b.size()) {
            return false;
        }
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (!sameJson(a[i], b[i])) {
                return false;
            }
        }
        return true;
    }
    return a == b;
}

// Equal apart from metadata and status: what decides whether generation moves.
bool sameSpec(const Json& a, const Json& b) {
    auto counted = [](const Json& o) {
        std::size_t n = 0;
        for (auto it = o.begin(); it != o.end(); ++it) {
            if (it.key() != "metadata" && it.key() != "status") {
                ++n;
            }
        }
        return n;
    };
    if (counted(a) != counted(b)) {
        return false;
    }
    for (auto it = a.begin(); it != a.end(); ++it) {
        if (it.key() == "metadata" || it.key() == "status") {
            continue;
        }
        auto other = b.find(it.key());
        if (other == b.end() || !sameJson(it.value(), *other)) {
            return false;
        }
    }
    return true;
}

struct ServerFields {
    std::string uid;
    std::uint64_t resourceVersion = 0;
    std::int64_t generation = 0;
    std::string creationTimestamp;
};

bool isServerOwned(const std::string& field) {
    return field == "uid" || field == "resourceVersion" || field == "generation" ||
           field == "creationTimestamp";
}

// Server-owned fields come from `server`, whatever the client sent; the order is fixed so that
// every stored object reads the same.
Json buildMetadata(const Json& input, const ServerFields& server) {
    Json meta = Json::object();
    meta["name"] = input.at("name");
    meta["namespace"] = input.at("namespace");
    meta["uid"] = server.uid;
    meta["resourceVersion"] = std::to_string(server.resourceVersion);
    meta["generation"] = server.generation;
    meta["creationTimestamp"] = server.creationTimestamp;
    for (const char* field : {"labels", "annotations"}) {
        if (auto it = input.find(field); it != input.end()) {
            meta[field] = *it;
        }
    }
    for (auto it = input.begin(); it != input.end(); ++it) {
        const std::string& k = it.key();
        if (k == "name" || k == "namespace" || k == "labels" || k == "annotations" ||
            isServerOwned(k)) {
            continue;
        }
        meta[k] = it.value();
    }
    return meta;
}

// The client's object in the client's field order, with metadata rebuilt and the client's
// status (if any) replaced by `status`.
Json buildObject(const Json& input, const ServerFields& server, const Json* status) {
    Json out = Json::object();
    for (auto it = input.begin(); it != input.end(); ++it) {
        if (it.key() == "status") {
            continue;
        }
        out[it.key()] = it.key() == "metadata" ? buildMetadata(it.value(), server) : it.value();
    }
    if (status != nullptr) {
        out["status"] = *status;
    }
    return out;
}

// metadata.resourceVersion of an update request; "" and absent both mean "unconditional".
Result<std::optional<std::string>> requestedVersion(const Json& object, const std::string& what) {
    const auto& meta = object.at("metadata");
    auto it = meta.find("resourceVersion");
    if (it == meta.end() || it->is_null()) {
        return std::optional<std::string>();
    }
    if (it->is_string()) {
        auto v = it->get<std::string>();
        return v.empty() ? std::optional<std::string>() : std::optional<std::string>(v);
    }
    if (it->is_number_unsigned() || it->is_number_integer()) {
        return std::optional<std::string>(it->dump());
    }
    return fail(Errc::Invalid, what + ": metadata.resourceVersion must be a string");
}

struct StoredRow {
    ServerFields server;
    std::string body;
};

struct Statements {
    StmtPtr begin;
    StmtPtr commit;
    StmtPtr rollback;
    StmtPtr readRevision;
    StmtPtr writeRevision;
    StmtPtr selectOne;
    StmtPtr insert;
    StmtPtr update;
    StmtPtr remove;
    StmtPtr listNamespace;
    StmtPtr listAll;
    StmtPtr listProject;
    StmtPtr projects;
};

// Version 1 (kSqliteSchemaVersion). A later version adds a migration step in createSchema().
constexpr const char* kSchema = R"sql(
CREATE TABLE objects (
    project TEXT NOT NULL,
    grp TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    created TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (project, grp, kind, namespace, name)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('revision', 0);
PRAGMA user_version = 1;
)sql";

// Parameters ?1..?5 are the key and ?6..?10 the row, shared by insert and update.
constexpr const char* kKeyWhere =
    " WHERE project = ?1 AND grp = ?2 AND kind = ?3 AND namespace = ?4 AND name = ?5";

class SqliteStore final : public Store {
public:
    static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, Clock clock);

    SqliteStore(DbPtr db, Statements stmts, Clock clock)
        : db_(std::move(db)), stmts_(std::move(stmts)), clock_(std::move(clock)) {}

    Result<Json> get(const std::string& project, const ObjectKey& key) override;
    Result<std::vector<Json>> list(const std::string& project, const std::string& group,
                                   const std::string& kind,
                                   const std::optional<std::string>& ns) override;
    Result<std::vector<Json>> listProject(const std::string& project) override;
    Result<std::vector<std::string>> projects() override;
    Result<Json> create(const std::string& project, Json object) override;
    Result<Json> update(const std::string& project, Json object) override;
    Result<Json> updateStatus(const std::string& project, const ObjectKey& key,
                              Json status) override;
    Result<Json> remove(const std::string& project, const ObjectKey& key) override;
    Result<std::uint64_t> revision() override;

    Result<SqliteSettings> settings();

private:
    // Rolls back an open transaction on every early return (and on unwinding), unless
    // committed. After a failed COMMIT SQLite may already have rolled back itself.
    class WriteGuard {
    public:
        explicit WriteGuard(SqliteStore& store) noexcept : store_(store) {}
        WriteGuard(const WriteGuard&) = delete;
        WriteGuard& operator=(const WriteGuard&) = delete;
        ~WriteGuard() {
            if (sqlite3_get_autocommit(store_.db_.get()) == 0) {
                StmtUse use(store_.stmts_.rollback.get());
                sqlite3_step(use.get());
            }
        }

    private:
        SqliteStore& store_;
    };

    Unexpected<Error> sqlFail(int rc, std::string doing) {
        return dbFail(db_.get(), rc, std::move(doing));
    }
    Status runOnce(sqlite3_stmt* stmt, const std::string& doing);
    Status bindText(sqlite3_stmt* stmt, int index, const std::string& value,
                    const std::string& doing);
    Status bindInt(sqlite3_stmt* stmt, int index, std::int64_t value, const std::string& doing);
    Status bindKey(sqlite3_stmt* stmt, const std::string& project, const ObjectKey& key,
                   const std::string& doing);
    Result<Json> parseBody(const std::string& body, const std::string& doing);

    Result<std::optional<StoredRow>> selectRow(const std::string& project, const ObjectKey& key,
                                               const std::string& doing);
    // selectRow for an object that must exist: Errc::NotFound otherwise.
    Result<StoredRow> selectExisting(const std::string& project, const ObjectKey& key,
                                     const std::string& doing);
    Result<std::uint64_t> readRevision(const std::string& doing);
    Result<std::uint64_t> bumpRevision(const std::string& doing);
    Status writeRow(sqlite3_stmt* stmt, const std::string& project, const ObjectKey& key,
                    const ServerFields& server, const Json& body, const std::string& doing);
    Result<std::vector<Json>> collectBodies(sqlite3_stmt* stmt, const std::string& doing);

    Result<Json> getLocked(const std::string& project, const ObjectKey& key);
    Result<Json> createLocked(const std::string& project, const Json& object);
    Result<Json> updateLocked(const std::string& project, const Json& object);
    Result<Json> updateStatusLocked(const std::string& project, const ObjectKey& key,
                                    const Json& status);
    Result<Json> removeLocked(const std::string& project, const ObjectKey& key);

    std::mutex mu_;
    DbPtr db_;  // declared before stmts_: statements are finalized first
    Statements stmts_;
    Clock clock_;
};

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

Status createSchema(sqlite3* db, const std::string& path) {
    // IMMEDIATE: two processes opening a fresh file must not both create the schema.
    LM_TRY(exec(db, "BEGIN IMMEDIATE", "locking " + path + " to check its schema"));
    auto version = queryInt(db, "PRAGMA user_version", "reading schema version of " + path);
    Status result;
    if (!version) {
        result = fail(std::move(version).error());
    } else if (*version == 0) {
        result = exec(db, kSchema, "creating schema in " + path);
    } else if (*version != kSqliteSchemaVersion) {
        result = fail(Errc::Invalid, path + " has schema version " + std::to_string(*version) +
                                         ", this build knows only version " +
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

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, Clock clock) {
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
        {&s.readRevision, "SELECT value FROM meta WHERE key = 'revision'"},
        {&s.writeRevision, "UPDATE meta SET value = ?1 WHERE key = 'revision'"},
        {&s.selectOne,
         std::string("SELECT uid, resource_version, generation, created, body FROM objects") +
             kKeyWhere},
        {&s.insert,
         "INSERT INTO objects (project, grp, kind, namespace, name, uid, resource_version, "
         "generation, created, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
        {&s.update,
         std::string("UPDATE objects SET uid = ?6, resource_version = ?7, generation = ?8, "
                     "created = ?9, body = ?10") +
             kKeyWhere},
        {&s.remove, std::string("DELETE FROM objects") + kKeyWhere},
        {&s.listNamespace,
         "SELECT body FROM objects WHERE project = ?1 AND grp = ?2 AND kind = ?3 AND "
         "namespace = ?4 ORDER BY namespace, name"},
        {&s.listAll,
         "SELECT body FROM objects WHERE project = ?1 AND grp = ?2 AND kind = ?3 "
         "ORDER BY namespace, name"},
        {&s.listProject,
         "SELECT body FROM objects WHERE project = ?1 ORDER BY grp, kind, namespace, name"},
        {&s.projects, "SELECT DISTINCT project FROM objects ORDER BY project"},
    };
    for (const auto& [slot, sql] : sqls) {
        auto stmt = prepare(db.get(), sql);
        if (!stmt) {
            return fail(std::move(stmt).error());
        }
        *slot = std::move(*stmt);
    }
    if (!clock) {
        clock = [] { return std::chrono::system_clock::now(); };
    }
    return std::make_unique<SqliteStore>(std::move(db), std::move(s), std::move(clock));
}

Status SqliteStore::runOnce(sqlite3_stmt* stmt, const std::string& doing) {
    StmtUse use(stmt);
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return sqlFail(rc, doing);
    }
    return {};
}

Status SqliteStore::bindText(sqlite3_stmt* stmt, int index, const std::string& value,
                             const std::string& doing) {
    int rc = sqlite3_bind_text64(stmt, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    if (rc != SQLITE_OK) {
        return sqlFail(rc, doing);
    }
    return {};
}

Status SqliteStore::bindInt(sqlite3_stmt* stmt, int index, std::int64_t value,
                            const std::string& doing) {
    int rc = sqlite3_bind_int64(stmt, index, value);
    if (rc != SQLITE_OK) {
        return sqlFail(rc, doing);
    }
    return {};
}

Status SqliteStore::bindKey(sqlite3_stmt* stmt, const std::string& project, const ObjectKey& key,
                            const std::string& doing) {
    LM_TRY(bindText(stmt, 1, project, doing));
    LM_TRY(bindText(stmt, 2, key.group, doing));
    LM_TRY(bindText(stmt, 3, key.kind, doing));
    LM_TRY(bindText(stmt, 4, key.ns, doing));
    LM_TRY(bindText(stmt, 5, key.name, doing));
    return {};
}

Result<Json> SqliteStore::parseBody(const std::string& body, const std::string& doing) {
    Json parsed = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
        return fail(Errc::Internal, doing + ": stored body is not a JSON object");
    }
    return parsed;
}

Result<std::optional<StoredRow>> SqliteStore::selectRow(const std::string& project,
                                                        const ObjectKey& key,
                                                        const std::string& doing) {
    StmtUse use(stmts_.selectOne.get());
    LM_TRY(bindKey(use.get(), project, key, doing));
    int rc = sqlite3_step(use.get());
    if (rc == SQLITE_DONE) {
        return std::optional<StoredRow>();
    }
    if (rc != SQLITE_ROW) {
        return sqlFail(rc, doing);
    }
    StoredRow row;
    row.server.uid = columnText(use.get(), 0);
    row.server.resourceVersion = static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 1));
    row.server.generation = sqlite3_column_int64(use.get(), 2);
    row.server.creationTimestamp = columnText(use.get(), 3);
    row.body = columnText(use.get(), 4);
    return std::optional<StoredRow>(std::move(row));
}

Result<StoredRow> SqliteStore::selectExisting(const std::string& project, const ObjectKey& key,
                                              const std::string& doing) {
    auto row = selectRow(project, key, doing);
    LM_TRY(row);
    if (!*row) {
        return fail(Errc::NotFound, doing);
    }
    return std::move(**row);
}

Result<std::uint64_t> SqliteStore::readRevision(const std::string& doing) {
    StmtUse use(stmts_.readRevision.get());
    int rc = sqlite3_step(use.get());
    if (rc == SQLITE_DONE) {
        return fail(Errc::Internal, doing + ": store revision row is missing");
    }
    if (rc != SQLITE_ROW) {
        return sqlFail(rc, doing);
    }
    return static_cast<std::uint64_t>(sqlite3_column_int64(use.get(), 0));
}

// Caller holds the write transaction.
Result<std::uint64_t> SqliteStore::bumpRevision(const std::string& doing) {
    auto current = readRevision(doing);
    if (!current) {
        return fail(std::move(current).error());
    }
    const std::uint64_t next = *current + 1;
    StmtUse use(stmts_.writeRevision.get());
    LM_TRY(bindInt(use.get(), 1, static_cast<std::int64_t>(next), doing));
    int rc = sqlite3_step(use.get());
    if (rc != SQLITE_DONE) {
        return sqlFail(rc, doing);
    }
    if (sqlite3_changes(db_.get()) != 1) {
        return fail(Errc::Internal, doing + ": store revision row is missing");
    }
    return next;
}

Status SqliteStore::writeRow(sqlite3_stmt* stmt, const std::string& project, const ObjectKey& key,
                             const ServerFields& server, const Json& body,
                             const std::string& doing) {
    // dump() throws on invalid UTF-8; the public entry points turn that into Errc::Invalid.
    const std::string text = body.dump();
    StmtUse use(stmt);
    LM_TRY(bindKey(stmt, project, key, doing));
    LM_TRY(bindText(stmt, 6, server.uid, doing));
    LM_TRY(bindInt(stmt, 7, static_cast<std::int64_t>(server.resourceVersion), doing));
    LM_TRY(bindInt(stmt, 8, server.generation, doing));
    LM_TRY(bindText(stmt, 9, server.creationTimestamp, doing));
    LM_TRY(bindText(stmt, 10, text, doing));
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) {
        return sqlFail(rc, doing);
    }
    if (sqlite3_changes(db_.get()) != 1) {
        return fail(Errc::Internal, doing + ": row was not written");
    }
    return {};
}

Result<std::vector<Json>> SqliteStore::collectBodies(sqlite3_stmt* stmt,
                                                     const std::string& doing) {
    std::vector<Json> out;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        auto body = parseBody(columnText(stmt, 0), doing);
        if (!body) {
            return fail(std::move(body).error());
        }
        out.push_back(std::move(*body));
    }
    if (rc != SQLITE_DONE) {
        return sqlFail(rc, doing);
    }
    return out;
}

Result<Json> SqliteStore::getLocked(const std::string& project, const ObjectKey& key) {
    const std::string what = "getting " + describe(project, key);
    auto row = selectExisting(project, key, what);
    LM_TRY(row);
    return parseBody(row->body, what);
}

Result<Json> SqliteStore::createLocked(const std::string& project, const Json& object) {
    const ObjectKey key = keyOf(object);
    const std::string what = "creating " + describe(project, key);
    ServerFields server;
    server.generation = 1;
    auto uid = newUid();
    if (!uid) {
        return fail(std::move(uid).error());
    }
    server.uid = std::move(*uid);
    server.creationTimestamp = rfc3339(clock_());

    LM_TRY(runOnce(stmts_.begin.get(), what + ": beginning transaction"));
    WriteGuard guard(*this);
    auto existing = selectRow(project, key, what);
    if (!existing) {
        return fail(std::move(existing).error());
    }
    if (*existing) {
        return fail(Errc::AlreadyExists, what);
    }
    auto rev = bumpRevision(what);
    if (!rev) {
        return fail(std::move(rev).error());
    }
    server.resourceVersion = *rev;
    Json stored = buildObject(object, server, nullptr);
    LM_TRY(writeRow(stmts_.insert.get(), project, key, server, stored, what));
    LM_TRY(runOnce(stmts_.commit.get(), what + ": committing"));
    return stored;
}

Result<Json> SqliteStore::updateLocked(const std::string& project, const Json& object) {
    const ObjectKey key = keyOf(object);
    const std::string what = "updating " + describe(project, key);
    auto requested = requestedVersion(object, what);
    if (!requested) {
        return fail(std::move(requested).error());
    }

    LM_TRY(runOnce(stmts_.begin.get(), what + ": beginning transaction"));
    WriteGuard guard(*this);
    auto existing = selectExisting(project, key, what);
    LM_TRY(existing);
    StoredRow& row = *existing;
    const std::string storedVersion = std::to_string(row.server.resourceVersion);
    if (*requested && **requested != storedVersion) {
        return fail(Errc::Conflict, what + ": resourceVersion " + **requested +
                                        " is stale, the stored object is at " + storedVersion);
    }
    auto stored = parseBody(row.body, what);
    if (!stored) {
        return fail(std::move(stored).error());
    }
    auto status = stored->find("status");
    const Json* keptStatus = status != stored->end() ? &*status : nullptr;

    Json next = buildObject(object, row.server, keptStatus);
    if (sameJson(next, *stored)) {
        return std::move(*stored);  // the guard ends the read-only transaction
    }
    ServerFields server = row.server;
    if (!sameSpec(next, *stored)) {
        ++server.generation;
    }
    auto rev = bumpRevision(what);
    if (!rev) {
        return fail(std::move(rev).error());
    }
    server.resourceVersion = *rev;
    next = buildObject(object, server, keptStatus);
    LM_TRY(writeRow(stmts_.update.get(), project, key, server, next, what));
    LM_TRY(runOnce(stmts_.commit.get(), what + ": committing"));
    return next;
}

Result<Json> SqliteStore::updateStatusLocked(const std::string& project, const ObjectKey& key,
                                             const Json& status) {
    const std::string what = "updating status of " + describe(project, key);
    LM_TRY(runOnce(stmts_.begin.get(), what + ": beginning transaction"));
    WriteGuard guard(*this);
    auto existing = selectExisting(project, key, what);
    LM_TRY(existing);
    StoredRow& row = *existing;
    auto stored = parseBody(row.body, what);
    if (!stored) {
        return fail(std::move(stored).error());
    }
    Json& body = *stored;
    auto current = body.find("status");
    // A null status clears it, so the reconciler can withdraw status it no longer owns.
    if (status.is_null()) {
        if (current == body.end()) {
            return std::move(body);
        }
        body.erase("status");
    } else {
        if (current != body.end() && sameJson(*current, status)) {
            return std::move(body);
        }
        body["status"] = status;  // in place when present, so the field order is kept
    }
    auto rev = bumpRevision(what);
    if (!rev) {
        return fail(std::move(rev).error());
    }
    ServerFields server = row.server;
    server.resourceVersion = *rev;
    body["metadata"]["resourceVersion"] = std::to_string(*rev);
    LM_TRY(writeRow(stmts_.update.get(), project, key, server, body, what));
    LM_TRY(runOnce(stmts_.commit.get(), what + ": committing"));
    return std::move(body);
}

Result<Json> SqliteStore::removeLocked(const std::string& project, const ObjectKey& key) {
    const std::string what = "deleting " + describe(project, key);
    LM_TRY(runOnce(stmts_.begin.get(), what + ": beginning transaction"));
    WriteGuard guard(*this);
    auto existing = selectExisting(project, key, what);
    LM_TRY(existing);
    auto stored = parseBody(existing->body, what);
    if (!stored) {
        return fail(std::move(stored).error());
    }
    {
        StmtUse use(stmts_.remove.get());
        LM_TRY(bindKey(use.get(), project, key, what));
        int rc = sqlite3_step(use.get());
        if (rc != SQLITE_DONE) {
            return sqlFail(rc, what);
        }
    }
    // Deletion is a change watchers must be able to order, so it takes a revision too.
    auto rev = bumpRevision(what);
    if (!rev) {
        return fail(std::move(rev).error());
    }
    LM_TRY(runOnce(stmts_.commit.get(), what + ": committing"));
    return std::move(*stored);
}

// Exceptions can only come from nlohmann::json on malformed input (a non-admitted object,
// invalid UTF-8 in a string); they must not cross the Store interface.
template <typename T, typename Fn>
Result<T> guarded(const std::string& doing, Fn&& fn) {
    try {
        return fn();
    } catch (const nlohmann::json::exception& e) {
        return fail(Errc::Invalid, doing + ": " + e.what());
    } catch (const std::exception& e) {
        return fail(Errc::Internal, doing + ": " + e.what());
    }
}

Result<Json> SqliteStore::get(const std::string& project, const ObjectKey& key) {
    return guarded<Json>("getting object", [&]() -> Result<Json> {
        std::lock_guard lock(mu_);
        return getLocked(project, key);
    });
}

Result<std::vector<Json>> SqliteStore::list(const std::string& project, const std::string& group,
                                            const std::string& kind,
                                            const std::optional<std::string>& ns) {
    return guarded<std::vector<Json>>("listing objects", [&]() -> Result<std::vector<Json>> {
        std::string what = "listing " + (group.empty() ? kind : kind + "." + group);
        what += ns ? " in namespace " + *ns : std::string();
        what += " in project " + project;
        std::lock_guard lock(mu_);
        StmtUse use(ns ? stmts_.listNamespace.get() : stmts_.listAll.get());
        LM_TRY(bindText(use.get(), 1, project, what));
        LM_TRY(bindText(use.get(), 2, group, what));
        LM_TRY(bindText(use.get(), 3, kind, what));
        if (ns) {
            LM_TRY(bindText(use.get(), 4, *ns, what));
        }
        return collectBodies(use.get(), what);
    });
}

Result<std::vector<Json>> SqliteStore::listProject(const std::string& project) {
    return guarded<std::vector<Json>>("listing project", [&]() -> Result<std::vector<Json>> {
        const std::string what = "listing project " + project;
        std::lock_guard lock(mu_);
        StmtUse use(stmts_.listProject.get());
        LM_TRY(bindText(use.get(), 1, project, what));
        return collectBodies(use.get(), what);
    });
}

Result<std::vector<std::string>> SqliteStore::projects() {
    return guarded<std::vector<std::string>>(
        "listing projects", [&]() -> Result<std::vector<std::string>> {
            std::lock_guard lock(mu_);
            StmtUse use(stmts_.projects.get());
            std::vector<std::string> out;
            int rc;
            while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
                out.push_back(columnText(use.get(), 0));
            }
            if (rc != SQLITE_DONE) {
                return sqlFail(rc, "listing projects");
            }
            return out;
        });
}

Result<Json> SqliteStore::create(const std::string& project, Json object) {
    return guarded<Json>("creating object in project " + project, [&]() -> Result<Json> {
        std::lock_guard lock(mu_);
        return createLocked(project, object);
    });
}

Result<Json> SqliteStore::update(const std::string& project, Json object) {
    return guarded<Json>("updating object in project " + project, [&]() -> Result<Json> {
        std::lock_guard lock(mu_);
        return updateLocked(project, object);
    });
}

Result<Json> SqliteStore::updateStatus(const std::string& project, const ObjectKey& key,
                                       Json status) {
    return guarded<Json>("updating status in project " + project, [&]() -> Result<Json> {
        std::lock_guard lock(mu_);
        return updateStatusLocked(project, key, status);
    });
}

Result<Json> SqliteStore::remove(const std::string& project, const ObjectKey& key) {
    return guarded<Json>("deleting object in project " + project, [&]() -> Result<Json> {
        std::lock_guard lock(mu_);
        return removeLocked(project, key);
    });
}

Result<std::uint64_t> SqliteStore::revision() {
    return guarded<std::uint64_t>("reading store revision", [&]() -> Result<std::uint64_t> {
        std::lock_guard lock(mu_);
        return readRevision("reading store revision");
    });
}

Result<SqliteSettings> SqliteStore::settings() {
    return guarded<SqliteSettings>("reading store settings", [&]() -> Result<SqliteSettings> {
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
    });
}

}  // namespace

Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, Clock clock) {
    try {
        auto store = SqliteStore::open(path, std::move(clock));
        if (!store) {
            return fail(std::move(store).error());
        }
        return std::unique_ptr<Store>(std::move(*store));
    } catch (const std::exception& e) {
        return fail(Errc::Internal, "opening store " + path + ": " + e.what());
    }
}

Result<SqliteSettings> sqliteSettings(Store& store) {
    auto* sqlite = dynamic_cast<SqliteStore*>(&store);
    if (sqlite == nullptr) {
        return fail(Errc::Invalid, "reading SQLite settings: not an SQLite store");
    }
    return sqlite->settings();
}

}  // namespace lastmile::ctrl
