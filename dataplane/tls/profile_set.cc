// SPDX-License-Identifier: Apache-2.0
// ProfileSet lookups.
#include "dataplane/tls/profile_set.h"

namespace lastmile::tls {

std::shared_ptr<const HandshakeProfile> ProfileSet::find(const std::string& project,
                                                         const BackendKey& backend) const {
    const auto p = projects.find(project);
    if (p == projects.end()) {
        return nullptr;
    }
    const auto b = p->second.find(backend);
    return b == p->second.end() ? nullptr : b->second;
}

}  // namespace lastmile::tls
