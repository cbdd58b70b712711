// SPDX-License-Identifier: Apache-2.0
// NodeRegistry: this node's key on a lease, kept alive and rewritten by a heartbeat thread, and
// the other nodes' keys, watched.
#include "ctrl/fleet/node_registry.h"

#include <algorithm>
#include <utility>

#include "base/log.h"
#include "base/text.h"

namespace lastmile::ctrl {
namespace {

constexpr const char* kLog = "fleet";

std::string listenerName(const std::pair<ObjectKey, std::string>& id) {
    return id.first.ns + "/" + id.first.name + "/" + id.second;
}

NodeView viewOf(const Json& report, const std::string& project) {
    NodeView view;
    view.listeners = report.value("listeners", Json::object()).value(project, Json::object());
    view.name = report.value("name", "");
    view.address = report.value("address", "");
    view.engines = report.value("engines", Json::array());
    view.profileGeneration = report.value("profileGeneration", std::uint64_t{0});
    view.heartbeat = report.value("heartbeat", "");
    return view;
}

}  // namespace

NodeRegistry::NodeRegistry(std::shared_ptr<etcd::Client> client, NodeOptions options,
                           std::function<std::uint64_t()> generation, Clock clock)
    : client_(std::move(client)),
      options_(std::move(options)),
      generation_(std::move(generation)),
      clock_(std::move(clock)) {}

NodeRegistry::~NodeRegistry() {
    stop();
    if (const auto lease = lease_.load(); lease != 0) {
        if (auto s = client_->revokeLease(lease); !s) {
            LM_LOG(Warning, kLog, "leaving the fleet: " << s.error().message()
                                      << " (the node stays listed until its lease expires)");
        }
    }
}

void NodeRegistry::stop() {
    heartbeatThread_.request_stop();
    watchThread_.request_stop();
    {
        std::lock_guard lock(mu_);
        if (peerWatch_) {
            peerWatch_->wake();
        }
    }
    if (heartbeatThread_.joinable()) {
        heartbeatThread_.join();
    }
    if (watchThread_.joinable()) {
        watchThread_.join();
    }
}

Json NodeRegistry::reportLocked() const {
    return Json{{"name", options_.name},
                {"address", options_.address},
                {"engines", options_.engines},
                {"profileGeneration", generation_ ? generation_() : 0},
                {"heartbeat", rfc3339(clock_())},
                {"listeners", listeners_}};
}

Status NodeRegistry::writeReport() {
    std::string report;
    {
        std::lock_guard lock(mu_);
        report = reportLocked().dump();
        changed_ = false;
    }
    auto put = client_->put(options_.prefix + "nodes/" + options_.name, report, lease_.load());
    if (!put) {
        std::lock_guard lock(mu_);
        changed_ = true;  // written again at the next beat
        return fail(std::move(put).error());
    }
    return {};
}

Status NodeRegistry::join() {
    const std::string key = options_.prefix + "nodes/" + options_.name;
    auto lease = client_->grantLease(options_.ttl);
    LM_TRY(lease);
    lease_ = *lease;
    std::string report;
    {
        std::lock_guard lock(mu_);
        report = reportLocked().dump();
    }
    // The name is this node's only while no other live node has it; a key of ours from before
    // a restart (same address, lease not expired yet) is taken over.
    auto created = client_->txn({{key, etcd::Compare::Target::Create, 0}},
                                {{etcd::Op::Kind::Put, key, report, *lease}},
                                {{etcd::Op::Kind::Range, key, "", 0}});
    LM_TRY(created);
    if (!created->succeeded) {
        const auto& found = created->results.front().kvs;
        Json other = found.empty() ? Json() : Json::parse(found.front().value, nullptr, false);
        if (!other.is_object() || other.value("address", "") != options_.address) {
            return fail(Errc::AlreadyExists,
                        "node name \"" + options_.name + "\" is held by a live node at " +
                            (other.is_object() ? other.value("address", "?") : "?") +
                            ": give this node another nodeName");
        }
        LM_TRY(client_->put(key, report, *lease));
    }

    LM_TRY(loadPeers());
    heartbeatThread_ = std::jthread([this](std::stop_token stop) { heartbeat(stop); });
    watchThread_ = std::jthread([this](std::stop_token stop) { watchPeers(stop); });
    LM_LOG(Notice, kLog, "joined the fleet as node " << options_.name << " (lease TTL "
                             << options_.ttl.count() << " s)");
    return {};
}

void NodeRegistry::heartbeat(std::stop_token stop) {
    const auto period = std::max<std::chrono::milliseconds>(options_.ttl / 3,
                                                            std::chrono::milliseconds(300));
    auto next = std::chrono::steady_clock::now() + period;
    while (!stop.stop_requested()) {
        {
            std::unique_lock lock(mu_);
            dirty_.wait_until(lock, stop, next, [this] { return changed_; });
        }
        if (stop.stop_requested()) {
            break;
        }
        if (std::chrono::steady_clock::now() >= next) {
            next = std::chrono::steady_clock::now() + period;
            auto kept = client_->keepAlive(lease_.load());
            if (!kept && kept.error().code() == etcd::EtcdErrc::LeaseNotFound) {
                // The store expired us (a partition longer than the TTL): join again.
                LM_LOG(Warning, kLog, "node " << options_.name << " lost its lease: taking a new one");
                if (auto lease = client_->grantLease(options_.ttl)) {
                    lease_ = *lease;
                }
            } else if (!kept) {
                LM_LOG(Warning, kLog, "heartbeat: " << kept.error().message());
                continue;
            }
        }
        if (auto s = writeReport(); !s) {
            LM_LOG(Warning, kLog, "writing node " << options_.name << ": " << s.error().message());
            std::condition_variable_any pause;
            std::unique_lock lock(mu_);
            pause.wait_for(lock, stop, period, [] { return false; });
        }
    }
}

bool NodeRegistry::applyPeer(const std::string& key, const std::string& value) {
    const std::string name = key.substr((options_.prefix + "nodes/").size());
    if (name == options_.name) {
        return false;
    }
    std::lock_guard lock(mu_);
    if (value.empty()) {
        return peers_.erase(name) > 0;
    }
    Json report = Json::parse(value, nullptr, false);
    if (!report.is_object()) {
        LM_LOG(Warning, kLog, "ignoring node key " << key << ": not a JSON object");
        return false;
    }
    auto known = peers_.find(name);
    const bool changed = known == peers_.end() ||
                         known->second.value("listeners", Json()) != report.value("listeners", Json());
    peers_[name] = std::move(report);
    return changed;
}

Result<bool> NodeRegistry::loadPeers() {
    auto peers = client_->range(options_.prefix + "nodes/", true);
    LM_TRY(peers);
    bool changed;
    {
        std::lock_guard lock(mu_);
        changed = !peers_.empty();
        peers_.clear();
    }
    for (const auto& kv : peers->kvs) {
        changed = applyPeer(kv.key, kv.value) || changed;
    }
    auto watch = client_->watch(options_.prefix + "nodes/", peers->revision);
    std::lock_guard lock(mu_);
    peerWatch_ = std::move(watch);
    return changed;
}

void NodeRegistry::watchPeers(std::stop_token stop) {
    while (!stop.stop_requested()) {
        auto events = peerWatch_->next(std::chrono::milliseconds(500));
        bool changed = false;
        if (!events) {
            // Compacted: read every node again and watch from there.
            auto loaded = loadPeers();
            if (!loaded) {
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                continue;
            }
            changed = *loaded;
        } else {
            for (const auto& event : *events) {
                const bool deleted = event.type == etcd::Event::Type::Delete;
                changed = applyPeer(event.kv.key, deleted ? std::string() : event.kv.value) ||
                          changed;
            }
        }
        if (changed && peersChanged_) {
            peersChanged_();
        }
    }
}

// A listener's state as a node reports it. Everything status shows is in it, so that every
// node computes the same merged status from the same reports.
Json stateJson(const route::ListenerState& state) {
    Json intercepted = Json::array();
    for (const auto& i : state.intercepted) {
        intercepted.push_back({{"address", i.address}, {"modes", i.modes}});
    }
    return Json{{"bound", state.bound}, {"message", state.message}, {"intercepted", intercepted}};
}

std::vector<route::Interception> interceptionsOf(const Json& state) {
    std::vector<route::Interception> out;
    for (const auto& i : state.value("intercepted", Json::array())) {
        route::Interception one;
        one.address = i.value("address", "");
        one.modes = i.value("modes", std::vector<std::string>{});
        out.push_back(std::move(one));
    }
    return out;
}

ListenerStates NodeRegistry::merge(const std::string& project, const ListenerStates& local) {
    Json mine = Json::object();
    for (const auto& [id, state] : local) {
        mine[listenerName(id)] = stateJson(state);
    }
    std::lock_guard lock(mu_);
    if (listeners_.value(project, Json::object()) != mine) {
        if (mine.empty()) {
            listeners_.erase(project);
        } else {
            listeners_[project] = mine;
        }
        changed_ = true;
        dirty_.notify_all();
    }
    // Every live node's report of the project by node name, this one's included: the merge
    // depends only on the set of reports, never on which node computes it, or nodes would
    // write different status in turn for ever.
    std::map<std::string, Json> reports{{options_.name, mine}};
    for (const auto& [peer, report] : peers_) {
        reports[peer] = report.value("listeners", Json::object()).value(project, Json::object());
    }
    ListenerStates out = local;
    for (auto& [id, state] : out) {
        const std::string name = listenerName(id);
        std::vector<std::string> problems;
        const Json* first = nullptr;  // the first node's state, whose interceptions status shows
        for (const auto& [node, listeners] : reports) {
            auto theirs = listeners.find(name);
            if (theirs == listeners.end()) {
                problems.push_back("node " + node + ": not programmed yet");
                continue;
            }
            first = first != nullptr ? first : &*theirs;
            if (!theirs->value("bound", false)) {
                problems.push_back("node " + node + ": " + theirs->value("message", ""));
            }
        }
        state.intercepted = first != nullptr ? interceptionsOf(*first) : state.intercepted;
        if (!problems.empty()) {
            state.bound = false;
            state.message = ::lastmile::join(problems, "; ");
        }
    }
    return out;
}

Status NodeRegistry::withLock(const std::string& name, std::chrono::milliseconds wait,
                              const std::function<void()>& work) {
    const std::string key = options_.prefix + "locks/" + name;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    std::string holder;
    for (;;) {
        auto taken = client_->txn({{key, etcd::Compare::Target::Create, 0}},
                                  {{etcd::Op::Kind::Put, key, options_.name, lease_.load()}},
                                  {{etcd::Op::Kind::Range, key, "", 0}});
        LM_TRY(taken);
        if (taken->succeeded) {
            break;
        }
        const auto& found = taken->results.front().kvs;
        holder = found.empty() ? std::string("?") : found.front().value;
        if (std::chrono::steady_clock::now() >= deadline) {
            return fail(Errc::Unavailable, "lock " + name + " is held by node " + holder);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    work();
    if (auto released = client_->remove(key); !released) {
        LM_LOG(Warning, kLog, "releasing lock " << name << ": " << released.error().message()
                                  << " (it ends with this node's lease)");
    }
    return {};
}

std::vector<NodeView> NodeRegistry::nodes(const std::string& project) const {
    std::lock_guard lock(mu_);
    std::vector<NodeView> out{viewOf(reportLocked(), project)};
    for (const auto& [name, report] : peers_) {
        out.push_back(viewOf(report, project));
    }
    std::sort(out.begin(), out.end(),
              [](const NodeView& a, const NodeView& b) { return a.name < b.name; });
    return out;
}

}  // namespace lastmile::ctrl
