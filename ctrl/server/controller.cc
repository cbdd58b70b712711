// SPDX-License-Identifier: Apache-2.0
// Controller: admission, storage, reconciliation and profile publication of every write.
#include "ctrl/server/controller.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <set>
#include <utility>

#include "ctrl/api/admission.h"
#include "base/log.h"
#include "base/text.h"

namespace lastmile::ctrl {
namespace {

constexpr const char* kLog = "controller";

const char* versionName(tls::TlsVersion v) { return v == tls::TlsVersion::Tls12 ? "1.2" : "1.3"; }


Json describeProfile(const tls::HandshakeProfile& profile) {
    const auto& spec = profile.spec();
    Json verify = Json::object();
    if (spec.subjectAltNames.empty()) {
        verify["hostname"] = spec.sni;
    } else {
        Json sans = Json::array();
        for (const auto& san : spec.subjectAltNames) {
            sans.push_back({{"type", san.type == tls::SanMatcher::Type::Uri ? "URI" : "Hostname"},
                            {"value", san.value}});
        }
        verify["subjectAltNames"] = std::move(sans);
    }
    Json anchors = Json::array();
    for (const auto& a : profile.trustAnchors()) {
        anchors.push_back({{"subject", a.subject}, {"notAfter", a.notAfter}, {"sha256", a.sha256}});
    }
    return Json{
        {"backend",
         {{"namespace", spec.backend.ns}, {"service", spec.backend.service}, {"port", spec.backend.port}}},
        {"policy", spec.policy},
        {"sni", spec.sni},
        {"verify", std::move(verify)},
        {"trust", spec.systemTrust ? "system" : "bundle"},
        {"trustAnchors", std::move(anchors)},
        {"minVersion", versionName(spec.minVersion)},
        {"maxVersion", versionName(spec.maxVersion)},
        {"cipherSuites", spec.cipherSuites},
        {"ecdhCurves", spec.ecdhCurves},
        {"signatureAlgorithms", spec.signatureAlgorithms},
        {"alpnProtocols", spec.alpnProtocols},
        {"sessionResumption", spec.sessionResumption},
        {"offload", drivers::offloadName(spec.offload)},
        {"warmPool", spec.warmPool},
        {"clientCertificate", spec.clientCertificate.has_value()},
        {"failClosedReason", spec.failClosedReason},
    };
}

using ProfileMap = std::map<tls::BackendKey, std::shared_ptr<const tls::HandshakeProfile>>;

// The profiles of `project` to publish after pass `out`.
ProfileMap nextProfiles(const tls::ProfileSet& current, const std::string& project,
                        const ReconcileOutput& out, bool freshSystemTrust) {
    ProfileMap next;
    if (!out.internalErrors.empty()) {
        // Keep what was live; a backend new in this pass still gets the pass's (fail-closed)
        // profile: a covered backend without a profile would be forwarded without TLS.
        if (auto live = current.projects.find(project); live != current.projects.end()) {
            next = live->second;
        }
        for (const auto& profile : out.profiles) {
            next.emplace(profile->spec().backend, profile);
        }
        return next;
    }
    for (const auto& profile : out.profiles) {
        const auto& backend = profile->spec().backend;
        // An unchanged spec keeps its compiled profile, and with it the session cache.
        auto previous = current.find(project, backend);
        const bool reuse = previous && previous->spec() == profile->spec() &&
                           !(freshSystemTrust && profile->spec().systemTrust);
        next.emplace(backend, reuse ? previous : profile);
    }
    return next;
}

// The pass's plans as the dataplane gets them: the project filled in, and every profile
// the very object published for its backend, so a listener and a handshake never disagree
// and an unchanged profile keeps its session cache.
std::vector<route::ListenerPlan> plansFor(const std::string& project,
                                          const std::vector<route::ListenerPlan>& listeners,
                                          const ProfileMap& profiles) {
    std::vector<route::ListenerPlan> plans = listeners;
    for (auto& plan : plans) {
        plan.id.project = project;
        for (auto& backend : plan.backends) {
            if (!backend.profile) {
                continue;
            }
            if (auto it = profiles.find(backend.key); it != profiles.end()) {
                backend.profile = it->second;
            }
        }
    }
    return plans;
}

bool sameBackend(const route::Backend& a, const route::Backend& b) {
    return a.key == b.key && a.weight == b.weight && a.endpoints == b.endpoints &&
           a.externalName == b.externalName && a.externalPort == b.externalPort &&
           a.profile == b.profile;
}

// Profiles compare by identity: a recompiled profile is a new generation for the dataplane.
bool samePlans(const std::vector<route::ListenerPlan>& a,
               const std::vector<route::ListenerPlan>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const route::ListenerPlan& x, const route::ListenerPlan& y) {
                          return x.id == y.id && x.protocol == y.protocol &&
                                 x.address == y.address && x.port == y.port &&
                                 std::equal(x.backends.begin(), x.backends.end(),
                                            y.backends.begin(), y.backends.end(), sameBackend);
                      });
}

// Keeps the listener states of a project, forgetting projects that have none.
void storeStates(std::map<std::string, ListenerStates>& all, const std::string& project,
                 ListenerStates states) {
    if (states.empty()) {
        all.erase(project);
    } else {
        all[project] = std::move(states);
    }
}

ListenerStates toStates(const std::map<route::ListenerId, route::ListenerState>& answer) {
    ListenerStates states;
    for (const auto& [id, state] : answer) {
        states[{ObjectKey{"gateway.networking.k8s.io", "Gateway", id.gatewayNamespace, id.gateway},
                id.listener}] = state;
    }
    return states;
}

// What the listeners of `plans` ask to bind, aged by their Gateway's creationTimestamp (a
// Gateway without one loses every tie).
std::vector<ListenerClaim> claimsOf(const std::string& project,
                                    const std::vector<route::ListenerPlan>& plans,
                                    const std::vector<Json>& objects,
                                    const std::string& defaultAddress) {
    std::map<std::pair<std::string, std::string>, std::int64_t> created;
    for (const auto& object : objects) {
        const ObjectKey key = keyOf(object);
        if (key.group == "gateway.networking.k8s.io" && key.kind == "Gateway") {
            const Json& stamp = object.at("metadata").value("creationTimestamp", Json());
            created[{key.ns, key.name}] =
                parseRfc3339(stamp.is_string() ? stamp.get<std::string>() : "").value_or(INT64_MAX);
        }
    }
    std::vector<ListenerClaim> claims;
    for (const auto& plan : plans) {
        auto age = created.find({plan.id.gatewayNamespace, plan.id.gateway});
        claims.push_back(ListenerClaim{route::ListenerId{project, plan.id.gatewayNamespace,
                                                         plan.id.gateway, plan.id.listener},
                                       plan.address.empty() ? defaultAddress : plan.address,
                                       plan.port,
                                       age == created.end() ? INT64_MAX : age->second});
    }
    return claims;
}

using ClaimsByProject = std::map<std::string, std::vector<ListenerClaim>>;

void setClaims(ClaimsByProject& all, const std::string& project,
               std::vector<ListenerClaim> claims) {
    if (claims.empty()) {
        all.erase(project);
    } else {
        all[project] = std::move(claims);
    }
}

std::map<route::ListenerId, std::string> arbitrate(const ClaimsByProject& all) {
    std::vector<ListenerClaim> claims;
    for (const auto& [project, own] : all) {
        claims.insert(claims.end(), own.begin(), own.end());
    }
    return arbitrateClaims(std::move(claims));
}

// Projects other than `project` whose listeners `before` and `after` treat differently:
// in `lost`, those with a listener that loses now; in `won`, those with one that no longer does.
void changedProjects(const std::map<route::ListenerId, std::string>& before,
                     const std::map<route::ListenerId, std::string>& after,
                     const std::string& project, std::set<std::string>& lost,
                     std::set<std::string>& won) {
    for (const auto& [id, why] : after) {
        auto was = before.find(id);
        if (id.project != project && (was == before.end() || was->second != why)) {
            lost.insert(id.project);
        }
    }
    for (const auto& [id, why] : before) {
        if (id.project != project && after.count(id) == 0) {
            won.insert(id.project);
        }
    }
}

// Of an object admission may have refused: any field can hold any type (value() would throw).
std::string displayName(const Json& object) {
    const auto text = [](const Json& in, const char* field, const char* otherwise) {
        auto it = in.find(field);
        return it != in.end() && it->is_string() ? it->get<std::string>() : std::string(otherwise);
    };
    std::string name;
    if (auto m = object.find("metadata"); m != object.end() && m->is_object()) {
        name = text(*m, "name", "");
    }
    return text(object, "kind", "object") + " \"" + name + "\"";
}

}  // namespace

class Controller::Busy {
public:
    explicit Busy(Controller& c) : c_(c), lock_(c.mu_) {
        c_.busySince_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                            std::memory_order_relaxed);
    }
    ~Busy() { c_.busySince_.store(0, std::memory_order_relaxed); }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

private:
    Controller& c_;
    std::lock_guard<std::mutex> lock_;
};

Controller::Controller(Store& store, ReconcilerConfig config, tls::ProfileRegistry& profiles,
                       Clock clock, ReconcileFn reconciler, BindFn binder,
                       std::string defaultBindAddress)
    : store_(store),
      config_(std::move(config)),
      profiles_(profiles),
      clock_(std::move(clock)),
      reconcile_(std::move(reconciler)),
      binder_(std::move(binder)),
      defaultBindAddress_(std::move(defaultBindAddress)) {}

Status Controller::start() { return reconcileAll(false); }

Status Controller::reconcileProject(const std::string& project) {
    Busy busy(*this);
    return reconcileLocked(project);
}

Status Controller::reloadSystemTrust() { return reconcileAll(true); }

Status Controller::retryUnboundListeners() {
    Busy busy(*this);
    std::set<std::string> waiting;
    for (const auto& [project, states] : bound_) {
        if (std::any_of(states.begin(), states.end(),
                        [](const auto& entry) { return entry.second.retry; })) {
            waiting.insert(project);
        }
    }
    for (const auto& project : waiting) {
        LM_TRY(reconcileLocked(project));
    }
    return {};
}

Status Controller::reconcileAll(bool freshSystemTrust) {
    Busy busy(*this);
    auto projects = store_.projects();
    LM_TRY(projects);
    // Every project's claims are known before the first bind: a listener that an older
    // Gateway of a later project displaces must never be bound, not even for a moment.
    if (binder_) {
        for (const auto& project : *projects) {
            auto listed = store_.listProject(project);
            LM_TRY(listed);
            ReconcileOutput out = reconcile_(listed->items, config_, clock_(), {});
            if (out.internalErrors.empty()) {
                setClaims(claims_, project,
                          claimsOf(project, out.listeners, listed->items, defaultBindAddress_));
            }
        }
        losers_ = arbitrate(claims_);
    }
    for (const auto& project : *projects) {
        LM_TRY(reconcileLocked(project, {.freshSystemTrust = freshSystemTrust}));
    }
    return {};
}

Result<WriteResult> Controller::apply(const std::string& project, const Json& object,
                                      Diagnostics& findings) {
    return write(project, object, true, findings);
}

Result<WriteResult> Controller::create(const std::string& project, const Json& object,
                                       Diagnostics& findings) {
    return write(project, object, false, findings);
}

Result<WriteResult> Controller::write(const std::string& project, const Json& object, bool upsert,
                                      Diagnostics& findings) {
    Admission admission = admit(object);
    if (!admission.errors.empty()) {
        findings = std::move(admission.errors);
        return fail(Errc::Invalid, displayName(object) + " is invalid");
    }
    const ObjectKey key = keyOf(admission.object);

    Busy busy(*this);
    WriteResult result;
    // Twice at most: in a fleet another node may create the object between our read and our
    // create, and a PUT then replaces what it created, as it would have a moment later.
    for (int attempt = 0;; ++attempt) {
        auto existing = store_.get(project, key);
        if (existing) {
            if (!upsert) {
                return fail(Errc::AlreadyExists, displayName(admission.object) + " already exists");
            }
            auto updated = store_.update(project, std::move(admission.object));
            LM_TRY(updated);
            result.changed = updated->at("metadata").at("resourceVersion") !=
                             existing->at("metadata").at("resourceVersion");
            break;
        }
        if (existing.error().code() != Errc::NotFound) {
            return fail(std::move(existing).error());
        }
        auto created = store_.create(project, admission.object);
        if (!created && created.error().code() == Errc::AlreadyExists && upsert && attempt == 0) {
            continue;
        }
        LM_TRY(created);
        result.created = true;
        result.changed = true;
        break;
    }

    // The write is durable already; a reconcile failure is reported by the log and status,
    // not by failing an acknowledged write.
    if (result.changed) {
        if (auto s = reconcileLocked(project); !s) {
            LM_LOG(Error, kLog, "reconciling project " << project << ": " << s.error().message());
        }
    }
    auto fresh = store_.get(project, key);
    LM_TRY(fresh);
    result.object = std::move(*fresh);
    return result;
}

Result<Json> Controller::remove(const std::string& project, const ObjectKey& key) {
    Busy busy(*this);
    auto removed = store_.remove(project, key);
    LM_TRY(removed);
    if (auto s = reconcileLocked(project); !s) {
        LM_LOG(Error, kLog, "reconciling project " << project << ": " << s.error().message());
    }
    return removed;
}

Result<Json> Controller::get(const std::string& project, const ObjectKey& key) {
    return store_.get(project, key);
}

Result<Listed> Controller::list(const std::string& project, const std::string& group,
                                const std::string& kind, const std::optional<std::string>& ns) {
    return store_.list(project, group, kind, ns);
}

// With a binder, the first pass's plans are bound and, when that changes what is known of
// the listeners, a second pass turns the bind results into status before anything is
// written: a client reading after its write sees whether its listener is bound.
Status Controller::reconcileLocked(const std::string& project) {
    return reconcileLocked(project, PassOptions{});
}

Status Controller::reconcileLocked(const std::string& project, PassOptions options) {
    auto listed = store_.listProject(project);
    LM_TRY(listed);
    const std::vector<Json>* objects = &listed->items;
    const auto now = clock_();
    auto current = profiles_.snapshot();
    // What status reports: this node's binds, or in a fleet every live node's, merged.
    const auto& reported = merge_ ? shown_ : bound_;
    ListenerStates states;
    if (auto known = reported.find(project); known != reported.end()) {
        states = known->second;
    }
    ReconcileOutput out = reconcile_(*objects, config_, now, states);

    // A pass with internal errors may have lost listeners it could not compute: binding its
    // plans could unbind live ones, so the dataplane keeps what it has.
    if (binder_ && out.internalErrors.empty()) {
        auto plans = plansFor(project, out.listeners,
                              nextProfiles(*current, project, out, options.freshSystemTrust));
        setClaims(claims_, project,
                  claimsOf(project, out.listeners, *objects, defaultBindAddress_));
        std::set<std::string> displaced;  // to reconcile before this project binds
        std::set<std::string> released;   // to reconcile after
        const auto before = std::exchange(losers_, arbitrate(claims_));
        if (options.settleOthers) {
            changedProjects(before, losers_, project, displaced, released);
        }
        settleLocked(displaced);
        std::vector<route::ListenerPlan> winners;
        std::map<route::ListenerId, route::ListenerState> lost;
        for (auto& plan : plans) {
            if (auto loser = losers_.find(plan.id); loser != losers_.end()) {
                lost[plan.id] = {false, loser->second};
            } else {
                winners.push_back(std::move(plan));
            }
        }
        std::optional<ListenerStates> answer;
        try {
            auto bound = binder_(project, winners);
            bound.insert(lost.begin(), lost.end());
            answer = toStates(bound);
        } catch (const std::exception& e) {
            LM_LOG(Error, kLog, "project " << project << ": binding listeners: " << e.what());
        } catch (...) {
            LM_LOG(Error, kLog, "project " << project << ": binding listeners failed");
        }
        if (answer) {
            storeStates(bound_, project, std::move(*answer));
        }
        ListenerStates local;
        if (auto known = bound_.find(project); known != bound_.end()) {
            local = known->second;
        }
        ListenerStates shown = merge_ ? merge_(project, local) : std::move(local);
        if (shown != states) {
            out = reconcile_(*objects, config_, now, shown);
        }
        if (merge_) {
            storeStates(shown_, project, std::move(shown));
        }
        settleLocked(released);
        // Other projects may have published meanwhile: this project's publish builds on theirs.
        current = profiles_.snapshot();
    }

    std::map<ObjectKey, const Json*> stored;
    for (const auto& object : *objects) {
        stored.emplace(keyOf(object), &object);
    }
    for (auto& update : out.statuses) {
        auto it = stored.find(update.key);
        if (it == stored.end()) {
            continue;  // reconciler only reports on objects it was given
        }
        const Json& currentObject = *it->second;
        if (currentObject.contains("status") && currentObject.at("status") == update.status) {
            continue;
        }
        // Against the object this pass read: a newer object gets its status from the pass its
        // own write causes, never from this older one.
        auto written = store_.updateStatus(project, update.key, std::move(update.status),
                                           currentObject["metadata"].value("resourceVersion", ""));
        if (!written && written.error().code() != Errc::Conflict) {
            return fail(std::move(written).error());
        }
    }

    ProfileMap next = nextProfiles(*current, project, out, options.freshSystemTrust);
    std::vector<route::ListenerPlan> plans;
    auto oldPlans = current->listeners.find(project);
    if (!out.internalErrors.empty()) {
        compileFailures_.fetch_add(out.internalErrors.size(), std::memory_order_relaxed);
        for (const auto& e : out.internalErrors) {
            LM_LOG(Warning, kLog, "project " << project << ": keeping the previous profiles: " << e);
        }
        if (oldPlans != current->listeners.end()) {
            plans = oldPlans->second;
        }
    } else {
        plans = plansFor(project, out.listeners, next);
    }
    auto old = current->projects.find(project);
    bool sameProfiles = old == current->projects.end() ? next.empty() : old->second == next;
    bool sameListeners = oldPlans == current->listeners.end() ? plans.empty()
                                                              : samePlans(oldPlans->second, plans);
    if (sameProfiles && sameListeners) {
        return {};
    }
    auto set = std::make_shared<tls::ProfileSet>(*current);
    set->generation = current->generation + 1;
    if (next.empty()) {
        set->projects.erase(project);
    } else {
        set->projects[project] = std::move(next);
    }
    if (plans.empty()) {
        set->listeners.erase(project);
    } else {
        set->listeners[project] = std::move(plans);
    }
    LM_LOG(Info, kLog,
           "published profile generation " << set->generation << " (project " << project << ")");
    profiles_.publish(std::move(set));
    return {};
}

void Controller::settleLocked(const std::set<std::string>& projects) {
    for (const auto& project : projects) {
        if (auto s = reconcileLocked(project, {.settleOthers = false}); !s) {
            LM_LOG(Error, kLog, "reconciling project " << project << ": " << s.error().message());
        }
    }
}

Json Controller::describeProfiles(const std::string& project) const {
    auto set = profiles_.snapshot();
    Json items = Json::array();
    if (auto it = set->projects.find(project); it != set->projects.end()) {
        for (const auto& [backend, profile] : it->second) {
            items.push_back(describeProfile(*profile));
        }
    }
    Json out{{"generation", set->generation},
             {"items", std::move(items)},
             {"recordEngines", recordEngines_}};
    if (interception_) {
        out["interception"] = interception_();
    }
    return out;
}

std::chrono::steady_clock::duration Controller::busyFor() const {
    const auto since = busySince_.load(std::memory_order_relaxed);
    if (since == 0) {
        return {};
    }
    return std::chrono::steady_clock::now().time_since_epoch() -
           std::chrono::steady_clock::duration(since);
}

std::uint64_t Controller::compileFailures() const {
    return compileFailures_.load(std::memory_order_relaxed);
}

}  // namespace lastmile::ctrl
