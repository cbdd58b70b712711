// SPDX-License-Identifier: Apache-2.0
// Who may use which project on the API: apiAccess grants resolved to ids, checked per caller.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"

namespace lastmile::ctrl {

// One apiAccess entry of lastmiled's configuration, names as written there.
struct ApiGrant {
    std::string user;   // exactly one of user and group is set
    std::string group;
    std::vector<std::string> projects;  // DNS labels, or "*" for every project
    std::string origin;                 // "file:line:column", for messages
};

// The process at the other end of an API connection (SO_PEERCRED).
struct PeerCredentials {
    uid_t uid = 0;
    gid_t gid = 0;
};

// Grants by numeric id. Root and the service's own user have every project; anyone else has
// the union of the grants of their user and of their groups (the connection's gid plus the
// user's groups in the group database), and nothing without one. Thread-safe (immutable).
class ApiAccess {
public:
    // Resolves user and group names now, so that a name the system does not know stops
    // lastmiled at start instead of silently granting nothing. Errc::Invalid naming every
    // unknown name with its origin.
    static Result<ApiAccess> resolve(const std::vector<ApiGrant>& grants, uid_t serviceUid);

    // Whether `peer` may read and write `project`. No peer (not a unix socket): never.
    bool allows(const std::optional<PeerCredentials>& peer, const std::string& project) const;

    // "user \"nobody\" (uid 65534)", or "uid 1234" when the uid has no passwd entry.
    static std::string describe(const PeerCredentials& peer);

private:
    struct Projects {
        bool all = false;
        std::set<std::string> names;
    };

    ApiAccess(uid_t serviceUid, std::map<uid_t, Projects> users, std::map<gid_t, Projects> groups)
        : serviceUid_(serviceUid), users_(std::move(users)), groups_(std::move(groups)) {}

    uid_t serviceUid_;
    std::map<uid_t, Projects> users_;
    std::map<gid_t, Projects> groups_;
};

}  // namespace lastmile::ctrl
