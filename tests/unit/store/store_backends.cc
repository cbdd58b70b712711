// SPDX-License-Identifier: Apache-2.0
// The Store backends the contract suite runs on.
#include "tests/unit/store/store_backends.h"

#include <stdlib.h>

#include <atomic>
#include <stdexcept>
#include <system_error>

#include "ctrl/store/etcd_store.h"
#include "tests/support/etcd_cluster.h"

namespace lastmile::test {

namespace {

// One single-member cluster for the whole binary; each test gets a prefix of its own in it.
EtcdCluster& sharedCluster() {
    static EtcdCluster cluster(1);
    return cluster;
}

}  // namespace

std::vector<StoreBackend> storeBackends() { return {StoreBackend::Sqlite, StoreBackend::Etcd}; }

bool backendAvailable(StoreBackend backend) {
    return backend == StoreBackend::Sqlite || EtcdCluster::available();
}

std::string backendName(StoreBackend backend) {
    return backend == StoreBackend::Sqlite ? "Sqlite" : "Etcd";
}

OpenedBackend::~OpenedBackend() {
    store.reset();
    if (!dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
}

std::unique_ptr<OpenedBackend> openBackend(StoreBackend backend, ctrl::Clock clock) {
    auto out = std::make_unique<OpenedBackend>();
    std::string tmpl = (std::filesystem::temp_directory_path() / "lm-store-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    out->dir = tmpl;
    if (backend == StoreBackend::Sqlite) {
        auto store = ctrl::openSqliteStore((out->dir / "store.db").string(), std::move(clock));
        if (!store) {
            throw std::runtime_error(store.error().message());
        }
        out->store = std::move(*store);
        return out;
    }
    static std::atomic<int> tests{0};
    ctrl::EtcdStoreConfig config;
    config.client.endpoints = sharedCluster().endpoints();
    config.prefix = "/contract-" + std::to_string(++tests) + "/";
    auto store = ctrl::openEtcdStore(config, std::move(clock));
    if (!store) {
        throw std::runtime_error(store.error().message());
    }
    out->store = std::move(store->store);
    return out;
}

ctrl::Json policy(const std::string& ns, const std::string& name, const std::string& hostname) {
    return ctrl::Json{
        {"apiVersion", "gateway.networking.k8s.io/v1alpha3"},
        {"kind", kPolicyKind},
        {"metadata", {{"name", name}, {"namespace", ns}}},
        {"spec",
         {{"targetRefs", ctrl::Json::array({{{"group", ""}, {"kind", "Service"}, {"name", "web"}}})},
          {"validation", {{"hostname", hostname}, {"wellKnownCACertificates", "System"}}}}},
    };
}

ctrl::Json configMap(const std::string& ns, const std::string& name) {
    return ctrl::Json{{"apiVersion", "v1"},
                      {"kind", "ConfigMap"},
                      {"metadata", {{"name", name}, {"namespace", ns}}},
                      {"data", {{"ca.crt", "pem"}}}};
}

ctrl::ObjectKey policyKey(const std::string& ns, const std::string& name) {
    return ctrl::ObjectKey{kPolicyGroup, kPolicyKind, ns, name};
}

std::string rvOf(const ctrl::Json& object) {
    return object["metadata"]["resourceVersion"].get<std::string>();
}

std::int64_t generationOf(const ctrl::Json& object) {
    return object["metadata"]["generation"].get<std::int64_t>();
}

}  // namespace lastmile::test
