// SPDX-License-Identifier: Apache-2.0
// lastmiled: the appliance process: store, reconciler and API, and the dataplane workers.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <memory>
#include <optional>
#include <stop_token>
#include <thread>

#include "ctrl/api/decode.h"
#include "ctrl/api/kinds.h"
#include "ctrl/api/manifest_files.h"
#include "ctrl/lastmiled/config.h"
#include "ctrl/lastmiled/dashboard.h"
#include "ctrl/lastmiled/metrics.h"
#include "ctrl/server/api_routes.h"
#include "ctrl/server/controller.h"
#include "ctrl/server/http_server.h"
#include "ctrl/fleet/follower.h"
#include "ctrl/fleet/last_known_store.h"
#include "ctrl/fleet/node_registry.h"
#include "ctrl/store/etcd_store.h"
#include "ctrl/store/store.h"
#include "base/log.h"
#include "base/text.h"
#include "dataplane/net/local_addresses.h"
#include "dataplane/worker/dataplane.h"
#include "lastmile_config.h"

namespace lastmile::ctrl {
namespace {

constexpr const char* kLog = "lastmiled";

struct Flags {
    std::string config;
    std::optional<std::string> stateDir, apiSocket, adminHttp, manifests;
};

Result<DaemonConfig> resolveConfig(const Flags& flags) {
    DaemonConfig config;
    if (!flags.config.empty()) {
        auto loaded = loadConfig(flags.config, config);
        LM_TRY(loaded);
        config = std::move(*loaded);
    }
    if (flags.stateDir) config.stateDir = *flags.stateDir;
    if (flags.apiSocket) config.apiSocket = *flags.apiSocket;
    if (flags.adminHttp) config.adminHttp = *flags.adminHttp;
    if (flags.manifests) config.manifests = *flags.manifests;
    return config;
}

// Applies every manifest under `dir` to the default project, like k3s's auto-deploy
// directory, policies before what they protect (applyRank). Bad files are logged with every
// finding; the others still apply.
void applyManifests(Controller& controller, const std::string& dir) {
    if (dir.empty()) {
        return;
    }
    auto files = manifestFiles(dir);
    if (!files) {
        LM_LOG(Warning, kLog, "manifests: " << files.error().message());
        return;
    }
    struct Located {
        std::string file;
        Document doc;
    };
    std::vector<Located> all;
    for (const auto& file : *files) {
        auto text = readFile(file);
        if (!text) {
            LM_LOG(Error, kLog, "manifests: " << text.error().message());
            continue;
        }
        auto documents = decodeManifests(*text, file);
        if (!documents) {
            LM_LOG(Error, kLog, "manifests: " << documents.error().context());
            continue;
        }
        for (auto& doc : *documents) {
            all.push_back({file, std::move(doc)});
        }
    }
    const auto rank = [](const Json& object) {
        const auto kind = object.is_object() ? object.find("kind") : object.end();
        return applyRank(kind != object.end() && kind->is_string() ? kind->get<std::string>() : "");
    };
    std::stable_sort(all.begin(), all.end(), [&rank](const Located& a, const Located& b) {
        return rank(a.doc.object) < rank(b.doc.object);
    });
    for (const auto& [file, doc] : all) {
        Diagnostics findings;
        auto applied = controller.apply("default", doc.object, findings);
        if (!applied) {
            LM_LOG(Error, kLog, "manifests: " << file << ":" << doc.line << ": "
                                              << applied.error().context());
            for (const auto& d : findings) {
                LM_LOG(Error, kLog, "manifests:   " << format(d));
            }
        }
    }
}

Status ensureDirectory(const std::string& path, mode_t mode) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) {
        return fail(ec, "creating directory " + path);
    }
    if (::chmod(path.c_str(), mode) == -1) {
        return failErrno("setting mode of " + path);
    }
    return {};
}

// Holds an exclusive flock on DIR/lock for the life of the process: one lastmiled per state.
Result<UniqueFd> lockStateDir(const std::string& dir) {
    LM_TRY(ensureDirectory(dir, 0750));
    const std::string path = dir + "/lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        return failErrno("opening " + path);
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == -1) {
        if (errno == EWOULDBLOCK) {
            return fail(Errc::AlreadyExists, "state directory " + dir + " is in use by another lastmiled");
        }
        return failErrno("locking " + path);
    }
    return fd;
}

// The host's record engines as describe shows them, in the order sessions try them.
Json describeEngines(const drivers::EngineSet& engineSet) {
    Json engines = Json::array();
    for (std::size_t i = 0; i < engineSet.size(); ++i) {
        Json serves = Json::array();
        for (drivers::Offload o : drivers::kOffloads) {
            if (engineSet.at(i).serves(o)) {
                serves.push_back(drivers::offloadName(o));
            }
        }
        engines.push_back({{"name", engineSet.at(i).name()},
                           {"usable", engineSet.usable(i)},
                           {"detail", engineSet.probe(i).detail},
                           {"serves", std::move(serves)}});
    }
    return engines;
}

Json nodeJson(const NodeView& node) {
    return Json{{"name", node.name},
                {"address", node.address},
                {"engines", node.engines},
                {"profileGeneration", node.profileGeneration},
                {"heartbeat", node.heartbeat},
                {"listeners", node.listeners}};
}

std::string hostName() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) {
        return {};
    }
    std::string out(name);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

EtcdStoreConfig etcdConfig(const StoreConfig& store) {
    EtcdStoreConfig out;
    out.client.endpoints = store.endpoints;
    out.client.tls = {store.caFile, store.certFile, store.keyFile};
    out.prefix = store.prefix;
    return out;
}

// systemd's WatchdogSec when the watchdog is on (WATCHDOG_USEC for this pid).
std::optional<std::chrono::microseconds> watchdogTimeout() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
        return std::nullopt;
    }
    return std::chrono::microseconds(usec);
}

// Feeds the watchdog at half its timeout from a thread of its own that never waits on the
// controller: a long apply (SIGHUP, a big manifest) does not starve it, while a write or
// reconcile that has held the controller for a whole timeout counts as wedged, and then
// the feeding stops and systemd restarts us.
std::jthread feedWatchdog(const Controller& controller, std::chrono::microseconds timeout) {
    return std::jthread([&controller, timeout](std::stop_token stop) {
        std::mutex mu;
        std::condition_variable_any wake;
        std::unique_lock lock(mu);
        while (!stop.stop_requested()) {
            if (controller.busyFor() < timeout) {
                sd_notify(0, "WATCHDOG=1");
            }
            wake.wait_for(lock, stop, timeout / 2, [] { return false; });
        }
    });
}

// Two descriptors per connection: the usual soft limit of 1024 would cap lastmiled near 500
// connections. The hard limit is what the administrator (or LimitNOFILE=) allows.
void raiseFileLimit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            LM_LOG(Warning, kLog, "could not raise the open file limit to " << limit.rlim_max);
        }
    }
}

int run(const Flags& flags) {
    auto config = resolveConfig(flags);
    if (!config) {
        LM_LOG(Error, kLog, config.error().message());
        return 1;
    }
    log::setThreshold(config->logLevel);
    raiseFileLimit();
    auto resolvedAccess = ApiAccess::resolve(config->apiAccess, ::geteuid());
    if (!resolvedAccess) {
        LM_LOG(Error, kLog, resolvedAccess.error().message());
        return 1;
    }
    // Swapped whole on reload; a request keeps the grants it started with.
    std::atomic<std::shared_ptr<const ApiAccess>> access{
        std::make_shared<const ApiAccess>(std::move(*resolvedAccess))};

    // Signals are taken synchronously by this thread only; block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) {
        sigaddset(&signals, s);
    }
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    // Everything that can collide with another instance is claimed before the store is
    // opened, so a second lastmiled fails without touching the first one's state.
    auto lock = lockStateDir(config->stateDir);
    if (!lock) {
        LM_LOG(Error, kLog, lock.error().message());
        return 1;
    }
    auto socketDir = std::filesystem::path(config->apiSocket).parent_path().string();
    if (!socketDir.empty()) {
        if (auto s = ensureDirectory(socketDir, 0755); !s) {
            LM_LOG(Error, kLog, s.error().message());
            return 1;
        }
    }
    auto apiListener = listenUnix(config->apiSocket);
    if (!apiListener) {
        LM_LOG(Error, kLog, apiListener.error().message());
        return 1;
    }
    UniqueFd adminListener;
    std::string adminAddress;
    if (!config->adminHttp.empty()) {
        auto listener = listenTcp(config->adminHttp);
        if (!listener) {
            LM_LOG(Error, kLog, "admin listener: " << listener.error().message());
            return 1;
        }
        adminAddress = localAddress(listener->get()).value_or(config->adminHttp);
        adminListener = std::move(*listener);
    }

    Clock clock = [] { return std::chrono::system_clock::now(); };
    const bool fleet = config->store.type == StoreConfig::Type::Etcd;
    // Only a fleet needs a name that can be a key; a single appliance just shows its host's.
    const std::string nodeName = config->nodeName.empty() ? hostName() : config->nodeName;
    if (fleet && !isNodeName(nodeName)) {
        LM_LOG(Error, kLog, "the host name \"" << nodeName << "\" cannot name a fleet node: "
                                                  "set nodeName in the configuration");
        return 1;
    }
    std::unique_ptr<Store> ownStore;
    std::shared_ptr<etcd::Client> etcdClient;
    if (fleet) {
        auto opened = openEtcdStore(etcdConfig(config->store), clock);
        if (!opened) {
            LM_LOG(Error, kLog, "store: " << opened.error().message());
            return 1;
        }
        ownStore = std::move(opened->store);
        etcdClient = std::move(opened->client);
    } else {
        auto opened = openSqliteStore(config->stateDir + "/lastmile.db", clock);
        if (!opened) {
            LM_LOG(Error, kLog, opened.error().message());
            return 1;
        }
        ownStore = std::move(*opened);
    }
    // A fleet node reads from the last watched state while the store has no quorum.
    LastKnownStore lastKnown(*ownStore);
    Store& store = fleet ? static_cast<Store&>(lastKnown) : *ownStore;
    tls::ProfileRegistry profiles;
    auto dataplane = dataplane::Dataplane::start(config->dataplane, profiles);
    if (!dataplane) {
        LM_LOG(Error, kLog, "dataplane: " << dataplane.error().message());
        return 1;
    }
    dataplane::Dataplane& workers = **dataplane;
    profiles.setOnPublish([&workers] { workers.refresh(); });
    if (adminListener.valid()) {
        // Tenants' endpoints must never reach the metrics of every project.
        auto admin = net::SocketAddress::localOf(adminListener.get());
        if (!admin) {
            LM_LOG(Error, kLog, "admin listener: " << admin.error().message());
            return 1;
        }
        workers.backendFilter()->listen(*admin);
    }
    Controller controller(
        store,
        ReconcilerConfig{config->controllerName, config->gatewayClassName, workers.backendFilter(),
                         &workers.engines(), net::isLocalAddress},
        profiles, clock, reconcile,
        [&workers](const std::string& project, const std::vector<route::ListenerPlan>& plans) {
            return workers.bind(project, plans);
        },
        config->dataplane.bindAddress);
    const Json engines = describeEngines(workers.engines());
    // How `get nodes` shows this node, in a fleet or not.
    const std::string nodeAddress = adminAddress.empty() ? config->dataplane.bindAddress
                                                         : adminAddress;
    Json usableEngines = Json::array();
    for (const auto& engine : engines) {
        if (engine["usable"].get<bool>()) {
            usableEngines.push_back(engine["name"]);
        }
    }
    std::unique_ptr<NodeRegistry> registry;
    std::unique_ptr<Follower> follower;
    if (fleet) {
        registry = std::make_unique<NodeRegistry>(
            etcdClient,
            NodeOptions{config->store.prefix, nodeName, nodeAddress, usableEngines,
                        config->store.leaseTtl},
            [&profiles] { return profiles.snapshot()->generation; }, clock);
        if (auto s = registry->join(); !s) {
            LM_LOG(Error, kLog, "joining the fleet: " << s.error().message());
            return 1;
        }
        controller.setListenerMerge(
            [&registry](const std::string& project, const ListenerStates& local) {
                return registry->merge(project, local);
            });
        follower = std::make_unique<Follower>(
            lastKnown, [&controller](const std::string& p) { return controller.reconcileProject(p); });
        if (auto s = follower->prime(); !s) {
            LM_LOG(Error, kLog, "listing the store: " << s.error().message());
            return 1;
        }
    }
    // The first reconcile binds every stored Gateway's listeners and publishes their plans.
    if (auto s = controller.start(); !s) {
        LM_LOG(Error, kLog, "initial reconcile: " << s.error().message());
        return 1;
    }
    if (fleet) {
        registry->onPeersChanged([&follower] { follower->touchAll(); });
        follower->start();
    }
    // In a fleet the nodes take turns: each applies the same files, and the later ones find
    // them unchanged.
    const auto manifests = [&](const std::string& dir) {
        if (!registry || dir.empty()) {
            applyManifests(controller, dir);
            return;
        }
        if (auto s = registry->withLock("manifests", std::chrono::seconds(30),
                                        [&] { applyManifests(controller, dir); });
            !s) {
            LM_LOG(Error, kLog, "manifests: " << s.error().message());
        }
    };
    manifests(config->manifests);
    controller.setNodes([&](const std::string& project) -> Json {
        Json items = Json::array();
        if (!registry) {
            items.push_back(nodeJson(NodeView{nodeName, nodeAddress, usableEngines,
                                              profiles.snapshot()->generation,
                                              rfc3339(clock())}));
        } else {
            for (const auto& node : registry->nodes(project)) {
                items.push_back(nodeJson(node));
            }
        }
        return items;
    });
    controller.setRecordEngines(engines);
    if (const dataplane::Interceptor* interceptor = workers.interceptor()) {
        controller.setInterception([interceptor] {
            Json modes = Json::array();
            for (dataplane::InterceptMode mode : dataplane::kInterceptModes) {
                const Status usable = interceptor->usable(mode);
                modes.push_back({{"name", std::string(dataplane::modeName(mode))},
                                 {"usable", static_cast<bool>(usable)},
                                 {"detail", usable ? "" : usable.error().context()}});
            }
            Json attachments = Json::array();
            for (const auto& a : interceptor->attachments()) {
                attachments.push_back({{"mode", std::string(dataplane::modeName(a.mode))},
                                       {"program", a.program},
                                       {"target", a.target},
                                       {"attached", a.attached}});
            }
            return Json{{"modes", std::move(modes)}, {"attachments", std::move(attachments)}};
        });
    }

    auto api = HttpServer::serve(std::move(*apiListener),
                                 [&controller, &access](const HttpRequest& r) {
                                     auto grants = access.load();
                                     return handleApiRequest(controller, *grants, r);
                                 });
    if (!api) {
        LM_LOG(Error, kLog, api.error().message());
        return 1;
    }
    std::unique_ptr<HttpServer> admin;
    if (adminListener.valid()) {
        auto served = HttpServer::serve(std::move(adminListener), [&](const HttpRequest& r) {
            if (r.path == "/healthz") {
                return HttpResponse{200, "text/plain", "ok\n"};
            }
            if (r.path == "/metrics") {
                auto live = profiles.snapshot();
                const struct mallinfo2 heap = ::mallinfo2();
                MetricsInput in{workers.stats(), live, &workers.engines(), live->generation,
                                controller.compileFailures(), heap.uordblks + heap.hblkhd};
                return HttpResponse{200, "text/plain; version=0.0.4", renderMetrics(in)};
            }
            if (auto page = serveDashboard(r.path)) {
                return *page;
            }
            return HttpResponse{404, "text/plain", "not found\n"};
        });
        if (!served) {
            LM_LOG(Error, kLog, served.error().message());
            return 1;
        }
        admin = std::move(*served);
    }
    LM_LOG(Notice, kLog, "lastmiled " << LM_VERSION << " ready: api unix://" << config->apiSocket
                                      << (adminAddress.empty() ? "" : ", admin http://")
                                      << adminAddress);
    // Ready only now: listeners are bound and the first ProfileSet is published.
    sd_notify(0, "READY=1\nSTATUS=serving");

    std::jthread watchdog;
    if (auto timeout = watchdogTimeout()) {
        watchdog = feedWatchdog(controller, *timeout);
    }
    // Between signals, once a second: listeners that could not bind for a reason that passes
    // (the port of a crashed predecessor not released yet) are bound as soon as they can be.
    const timespec retryEvery{1, 0};
    for (;;) {
        const int sig = sigtimedwait(&signals, nullptr, &retryEvery);
        if (sig == -1) {
            if (errno == EAGAIN) {
                if (auto s = controller.retryUnboundListeners(); !s) {
                    LM_LOG(Warning, kLog, "binding listeners again: " << s.error().message());
                }
            }
            continue;
        }
        if (sig == SIGHUP) {
            sd_notify(0, "RELOADING=1");
            auto reloaded = resolveConfig(flags);
            if (!reloaded) {
                LM_LOG(Error, kLog, "reload: keeping the running configuration: "
                                        << reloaded.error().message());
                sd_notify(0, "READY=1");
                continue;
            }
            auto reloadedAccess = ApiAccess::resolve(reloaded->apiAccess, ::geteuid());
            if (!reloadedAccess) {
                LM_LOG(Error, kLog, "reload: keeping the running configuration: "
                                        << reloadedAccess.error().message());
                sd_notify(0, "READY=1");
                continue;
            }
            access.store(std::make_shared<const ApiAccess>(std::move(*reloadedAccess)));
            log::setThreshold(reloaded->logLevel);
            if (!(reloaded->dataplane == config->dataplane)) {
                // Workers read these without locks on every connection; a restart applies them.
                LM_LOG(Warning, kLog, "reload: workers, bindAddress, allowedBackendNetworks, "
                                      "timeouts, errorDetail, interception and the max* limits "
                                      "take effect at the next restart");
            }
            if (!(reloaded->store == config->store) || reloaded->nodeName != config->nodeName) {
                LM_LOG(Warning, kLog, "reload: store and nodeName take effect at the next restart");
            }
            manifests(reloaded->manifests);
            if (auto s = controller.reloadSystemTrust(); !s) {
                LM_LOG(Error, kLog, "reload: system trust store: " << s.error().message());
            }
            LM_LOG(Notice, kLog, "reloaded configuration");
            sd_notify(0, "READY=1");
            continue;
        }
        LM_LOG(Notice, kLog, "stopping on signal " << sig);
        sd_notify(0, "STOPPING=1");
        break;
    }
    // No more writes, then no more new connections; open ones get drainTimeout to finish.
    api->reset();
    // The follower and the registry call into each other: neither calls once both stopped.
    if (registry) {
        registry->stop();
        follower.reset();
    }
    const auto open = workers.drain();
    if (open > 0) {
        LM_LOG(Warning, kLog, "closing " << open << " connection(s) still open after the drain timeout");
    }
    admin.reset();
    profiles.setOnPublish(nullptr);
    dataplane->reset();
    ::unlink(config->apiSocket.c_str());
    return 0;
}

}  // namespace
}  // namespace lastmile::ctrl

int main(int argc, char** argv) {
    CLI::App app{"lastmiled: TLS origination appliance implementing Gateway API BackendTLSPolicy.\n"
                 "Flags override the configuration file."};
    lastmile::ctrl::Flags flags;
    app.add_option("--config", flags.config, "YAML configuration file (see packaging/lastmiled.yaml)")
        ->check(CLI::ExistingFile);
    app.add_option("--state-dir", flags.stateDir, "directory of the object store (default /var/lib/lastmile)");
    app.add_option("--api-socket", flags.apiSocket,
                   "unix socket of the API lastmilectl talks to (default /run/lastmile/api.sock)");
    app.add_option("--admin-http", flags.adminHttp,
                   "host:port of the admin HTTP listener (/healthz, /metrics; default 127.0.0.1:9090; \"\" disables)");
    app.add_option("--manifests", flags.manifests,
                   "directory whose *.yaml files are applied to project \"default\" at start and on SIGHUP");
    app.set_version_flag("--version", std::string(LM_VERSION));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; a usage error exits 2, as getopt tools do.
        return app.exit(e) == 0 ? 0 : 2;
    }
    return lastmile::ctrl::run(flags);
}
