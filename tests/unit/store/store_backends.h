// SPDX-License-Identifier: Apache-2.0
// What the store tests share: the backends the contract suite runs on, each opened empty for
// one test, and the objects they store.
#pragma once

#include <cstdint>
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

inline constexpr const char* kPolicyGroup = "gateway.networking.k8s.io";
inline constexpr const char* kPolicyKind = "BackendTLSPolicy";

// An admitted BackendTLSPolicy (v1alpha3, as clients may send it) verifying `hostname`.
ctrl::Json policy(const std::string& ns, const std::string& name, const std::string& hostname);
ctrl::Json configMap(const std::string& ns, const std::string& name);
ctrl::ObjectKey policyKey(const std::string& ns, const std::string& name);
std::string rvOf(const ctrl::Json& object);
std::int64_t generationOf(const ctrl::Json& object);

}  // namespace lastmile::test
