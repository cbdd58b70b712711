// SPDX-License-Identifier: Apache-2.0
// The etcd backend of Store, for a fleet of lastmiled nodes sharing one etcd cluster.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "ctrl/store/etcd_client.h"
#include "ctrl/store/store.h"

namespace lastmile::ctrl {

struct EtcdStoreConfig {
    etcd::ClientConfig client;
    // Every key lastmile writes starts with it; ends with '/' (config checks that).
    std::string prefix = "/lastmile/";
};

// The Store on etcd, and the client it uses, which the fleet's node registry shares.
struct EtcdStore {
    std::shared_ptr<etcd::Client> client;
    std::unique_ptr<Store> store;
};

Result<EtcdStore> openEtcdStore(const EtcdStoreConfig& config, Clock clock);

// How an etcd client error reads to the Store's callers: unreachable, no quorum and unknown
// outcomes are Errc::Unavailable (the API's 503), a compacted revision Errc::Gone.
Error storeError(const Error& etcdError);

}  // namespace lastmile::ctrl
