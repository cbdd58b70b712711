// SPDX-License-Identifier: Apache-2.0
// LastKnownStore: reads fall back to the last watched state while the store is unavailable.
#include "ctrl/fleet/last_known_store.h"

#include <functional>

namespace lastmile::ctrl {

void LastKnownStore::replace(std::uint64_t revision,
                             const std::vector<std::pair<std::string, Listed>>& all) {
    std::lock_guard lock(mu_);
    objects_.clear();
    for (const auto& [project, listed] : all) {
        auto& objects = objects_[project];
        for (const auto& object : listed.items) {
            objects[keyOf(object)] = object;
        }
    }
    revision_ = revision;
}

void LastKnownStore::apply(const StoreEvent& event) {
    std::lock_guard lock(mu_);
    const ObjectKey key = keyOf(event.object);
    if (event.type == StoreEvent::Type::Deleted) {
        if (auto project = objects_.find(event.project); project != objects_.end()) {
            project->second.erase(key);
            if (project->second.empty()) {
                objects_.erase(project);
            }
        }
    } else {
        objects_[event.project][key] = event.object;
    }
    revision_ = event.revision;
}

std::set<std::string> LastKnownStore::knownProjects() const {
    std::lock_guard lock(mu_);
    std::set<std::string> out;
    for (const auto& entry : objects_) {
        out.insert(entry.first);
    }
    return out;
}

Listed LastKnownStore::select(const std::string& project,
                              const std::function<bool(const ObjectKey&)>& keep) const {
    std::lock_guard lock(mu_);
    Listed out;
    out.revision = revision_;
    if (auto objects = objects_.find(project); objects != objects_.end()) {
        for (const auto& [key, object] : objects->second) {
            if (keep(key)) {
                out.items.push_back(object);
            }
        }
    }
    return out;
}

Result<Json> LastKnownStore::get(const std::string& project, const ObjectKey& key) {
    auto got = inner_.get(project, key);
    if (got || got.error().code() != Errc::Unavailable) {
        return got;
    }
    auto found = select(project, [&](const ObjectKey& k) { return k == key; });
    if (found.items.empty()) {
        return fail(Errc::NotFound, got.error().context());
    }
    return std::move(found.items.front());
}

Result<Listed> LastKnownStore::list(const std::string& project, const std::string& group,
                                    const std::string& kind,
                                    const std::optional<std::string>& ns) {
    auto listed = inner_.list(project, group, kind, ns);
    if (listed || listed.error().code() != Errc::Unavailable) {
        return listed;
    }
    return select(project, [&](const ObjectKey& k) {
        return k.group == group && k.kind == kind && (!ns || k.ns == *ns);
    });
}

Result<Listed> LastKnownStore::listProject(const std::string& project) {
    auto listed = inner_.listProject(project);
    if (listed || listed.error().code() != Errc::Unavailable) {
        return listed;
    }
    return select(project, [](const ObjectKey&) { return true; });
}

Result<std::vector<std::pair<std::string, Listed>>> LastKnownStore::listAll() {
    auto all = inner_.listAll();
    if (all || all.error().code() != Errc::Unavailable) {
        return all;
    }
    std::vector<std::pair<std::string, Listed>> out;
    for (const auto& project : knownProjects()) {
        out.emplace_back(project, select(project, [](const ObjectKey&) { return true; }));
    }
    return out;
}

Result<std::vector<std::string>> LastKnownStore::projects() {
    auto projects = inner_.projects();
    if (projects || projects.error().code() != Errc::Unavailable) {
        return projects;
    }
    auto known = knownProjects();
    return std::vector<std::string>(known.begin(), known.end());
}

}  // namespace lastmile::ctrl
