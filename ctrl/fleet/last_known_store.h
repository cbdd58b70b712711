// SPDX-License-Identifier: Apache-2.0
// LastKnownStore: a Store that answers reads from the last watched state when the store itself
// cannot (an etcd cluster without quorum), so a fleet node stays readable during an outage.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ctrl/store/store.h"

namespace lastmile::ctrl {

class LastKnownStore final : public Store {
public:
    explicit LastKnownStore(Store& inner) : inner_(inner) {}

    // The follower's feed: a whole relist, or one watched change.
    void replace(std::uint64_t revision, const std::vector<std::pair<std::string, Listed>>& all);
    void apply(const StoreEvent& event);
    // Projects the last watched state holds objects of.
    std::set<std::string> knownProjects() const;
    // The store itself, without the fallback: what the follower lists and watches, since a
    // list answered from the last watched state would be taken for the store's.
    Store& inner() { return inner_; }

    // Reads: the store's answer; Errc::Unavailable from the store gets the last watched state
    // instead (a list then carries the revision that state was watched at).
    Result<Json> get(const std::string& project, const ObjectKey& key) override;
    Result<Listed> list(const std::string& project, const std::string& group,
                        const std::string& kind, const std::optional<std::string>& ns) override;
    Result<Listed> listProject(const std::string& project) override;
    Result<std::vector<std::pair<std::string, Listed>>> listAll() override;
    Result<std::vector<std::string>> projects() override;

    // Writes and watches go to the store: a write without quorum is refused, never queued.
    Result<Json> create(const std::string& project, Json object) override {
        return inner_.create(project, std::move(object));
    }
    Result<Json> update(const std::string& project, Json object) override {
        return inner_.update(project, std::move(object));
    }
    Result<Json> updateStatus(const std::string& project, const ObjectKey& key, Json status,
                              std::optional<std::string> resourceVersion) override {
        return inner_.updateStatus(project, key, std::move(status), std::move(resourceVersion));
    }
    Result<Json> remove(const std::string& project, const ObjectKey& key,
                        const Preconditions& preconditions) override {
        return inner_.remove(project, key, preconditions);
    }
    Result<std::uint64_t> revision() override { return inner_.revision(); }
    std::unique_ptr<StoreWatch> watch(std::uint64_t fromRevision) override {
        return inner_.watch(fromRevision);
    }

private:
    Listed select(const std::string& project,
                  const std::function<bool(const ObjectKey&)>& keep) const;

    Store& inner_;
    mutable std::mutex mu_;
    std::uint64_t revision_ = 0;
    std::map<std::string, std::map<ObjectKey, Json>> objects_;  // by project, in list order
};

}  // namespace lastmile::ctrl
