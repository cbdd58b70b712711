// SPDX-License-Identifier: Apache-2.0
// Introspection of the SQLite store's connection settings, for tests and `lastmiled` startup logs.
#pragma once

#include <cstdint>
#include <string>

#include "ctrl/store/store.h"
#include "base/result.h"

namespace lastmile::ctrl {

// What the store's own connection reports (per-connection pragmas cannot be seen from a second
// connection, so they are read through the store itself).
struct SqliteSettings {
    std::string journalMode;  // "wal" when the durability contract holds
    int synchronous = 0;      // 2 = FULL
    int busyTimeoutMs = 0;
    int schemaVersion = 0;  // PRAGMA user_version
};

// Errc::Invalid when `store` was not made by openSqliteStore().
Result<SqliteSettings> sqliteSettings(Store& store);

// The schema version this build writes and reads.
inline constexpr int kSqliteSchemaVersion = 2;

}  // namespace lastmile::ctrl
