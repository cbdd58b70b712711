// SPDX-License-Identifier: Apache-2.0
// The Store backends the contract suite runs on, each opened empty for one test.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ctrl/store/store.h"

namespace lastmile::test {

enum class StoreBackend { Sqlite, Etcd };

std::vector<StoreBackend> storeBackends();
// False when the backend cannot run here (etcd not installed): the test skips.
bool backendAvailable(StoreBackend backend);
std::string backendName(StoreBackend backend);

// A fresh, empty store and what it needs (a temporary file, a prefix in a shared cluster).
struct OpenedBackend {
    std::unique_ptr<ctrl::Store> store;
    std::filesystem::path dir;  // removed with the backend
    ~OpenedBackend();
};

// Throws std::runtime_error when the backend cannot be opened.
std::unique_ptr<OpenedBackend> openBackend(StoreBackend backend, ctrl::Clock clock);

}  // namespace lastmile::test
