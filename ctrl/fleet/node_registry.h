// SPDX-License-Identifier: Apache-2.0
// NodeRegistry: this node's own truth in the shared store, under its own key on an etcd lease
// (address, record engines, profile generation, heartbeat, which listeners it bound), and the
// other live nodes' as they watch them. A node that dies disappears when its lease expires.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "ctrl/api/json.h"
#include "ctrl/reconcile/reconciler.h"
#include "ctrl/store/etcd_client.h"
#include "ctrl/store/store.h"

namespace lastmile::ctrl {

struct NodeOptions {
    std::string prefix;   // the store's key prefix, ending in '/'
    std::string name;     // unique in the fleet: the key is <prefix>nodes/<name>
    std::string address;  // how operators reach it (its admin or bind address)
    Json engines = Json::array();  // usable record engines, in the order sessions try them
    std::chrono::seconds ttl{10};  // lease TTL: how long a dead node stays listed
};

// A node as `lastmilectl get nodes` shows it.
struct NodeView {
    std::string name;
    std::string address;
    Json engines = Json::array();
    std::uint64_t profileGeneration = 0;
    std::string heartbeat;  // RFC 3339, when the node last wrote its key
    // One project's listeners as this node bound them: {"ns/gateway/listener": {"bound",
    // "message", "intercepted"}}.
    Json listeners = Json::object();
};

class NodeRegistry {
public:
    // `generation` reads the node's published profile generation at each heartbeat.
    NodeRegistry(std::shared_ptr<etcd::Client> client, NodeOptions options,
                 std::function<std::uint64_t()> generation, Clock clock);
    ~NodeRegistry();  // stop()s and revokes the lease: the node leaves at once
    NodeRegistry(const NodeRegistry&) = delete;
    NodeRegistry& operator=(const NodeRegistry&) = delete;

    // Takes a lease, writes this node's key and starts the heartbeat and the watch of the
    // other nodes. Errc::AlreadyExists when a live node already has this name.
    Status join();

    // Stops the heartbeat and the watch of the other nodes: no onPeersChanged() call runs or
    // follows once it returns, while merge() and nodes() still answer (from the last state).
    void stop();

    // Called when another node joins, leaves or binds differently: merged status may change.
    void onPeersChanged(std::function<void()> callback) { peersChanged_ = std::move(callback); }

    // Controller::MergeFn: records this node's binds of a project (written by the heartbeat
    // thread, never waited on here) and merges them with every other live node's: a listener
    // counts as bound only when every live node bound it, and otherwise says which did not.
    ListenerStates merge(const std::string& project, const ListenerStates& local);

    // Live nodes, this one included, by name, with their listeners of `project`.
    std::vector<NodeView> nodes(const std::string& project) const;

    // Runs `work` while holding the fleet-wide lock `name` (a key on this node's lease, so a
    // node that dies holding it releases it when its lease expires). Waits up to `wait` for
    // another node to release it: Errc::Unavailable after that, or when the store cannot
    // take the lock.
    Status withLock(const std::string& name, std::chrono::milliseconds wait,
                    const std::function<void()>& work);

private:
    Json reportLocked() const;
    Status writeReport();
    void heartbeat(std::stop_token stop);
    void watchPeers(std::stop_token stop);
    // Reads every node's key anew and watches them from there; true when peers may differ.
    Result<bool> loadPeers();
    // Applies one node key's new value (empty: deleted); true when merged status may change.
    bool applyPeer(const std::string& key, const std::string& value);

    std::shared_ptr<etcd::Client> client_;
    const NodeOptions options_;
    std::function<std::uint64_t()> generation_;
    Clock clock_;
    std::function<void()> peersChanged_;
    std::atomic<std::int64_t> lease_{0};

    mutable std::mutex mu_;
    std::condition_variable_any dirty_;
    bool changed_ = false;                   // listeners_ not written yet
    Json listeners_ = Json::object();        // project -> "ns/gateway/listener" -> state
    std::map<std::string, Json> peers_;      // other nodes' reports, by name
    std::unique_ptr<etcd::Watch> peerWatch_;
    std::jthread heartbeatThread_;
    std::jthread watchThread_;
};

}  // namespace lastmile::ctrl
