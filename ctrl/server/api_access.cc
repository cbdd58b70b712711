// SPDX-License-Identifier: Apache-2.0
// apiAccess: name resolution at start (getpwnam_r, getgrnam_r) and per-request group lookup.
#include "ctrl/server/api_access.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace lastmile::ctrl {
namespace {

// Buffer size for the *_r lookups: sysconf's hint, grown on ERANGE up to this bound.
constexpr std::size_t kMaxLookupBuffer = 1 << 20;

constexpr std::size_t kMaxGroups = 65536;

std::size_t initialBuffer(int name) {
    long hint = ::sysconf(name);
    return hint > 0 ? static_cast<std::size_t>(hint) : 1024;
}

// One getpw*_r/getgr*_r lookup, with the buffer grown on ERANGE; `field` picks what the
// caller needs out of the entry before the buffer it points into goes away.
template <typename Entry, typename Call, typename Field>
auto lookup(int sizeHint, Call call, Field field)
    -> std::optional<decltype(field(std::declval<const Entry&>()))> {
    Entry entry{};
    std::vector<char> buffer(initialBuffer(sizeHint));
    for (;;) {
        Entry* found = nullptr;
        int rc = call(&entry, buffer.data(), buffer.size(), &found);
        if (rc == ERANGE && buffer.size() < kMaxLookupBuffer) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (rc != 0 || found == nullptr) {
            return std::nullopt;
        }
        return field(entry);
    }
}

std::optional<uid_t> userId(const std::string& name) {
    return lookup<passwd>(
        _SC_GETPW_R_SIZE_MAX,
        [&](passwd* e, char* b, std::size_t n, passwd** r) {
            return ::getpwnam_r(name.c_str(), e, b, n, r);
        },
        [](const passwd& p) { return p.pw_uid; });
}

std::optional<gid_t> groupId(const std::string& name) {
    return lookup<group>(
        _SC_GETGR_R_SIZE_MAX,
        [&](group* e, char* b, std::size_t n, group** r) {
            return ::getgrnam_r(name.c_str(), e, b, n, r);
        },
        [](const group& g) { return g.gr_gid; });
}

std::optional<std::string> userName(uid_t uid) {
    return lookup<passwd>(
        _SC_GETPW_R_SIZE_MAX,
        [&](passwd* e, char* b, std::size_t n, passwd** r) {
            return ::getpwuid_r(uid, e, b, n, r);
        },
        [](const passwd& p) { return std::string(p.pw_name); });
}

// The peer's gid and, when its uid has a passwd entry, that user's groups.
std::vector<gid_t> groupsOf(const PeerCredentials& peer) {
    auto name = userName(peer.uid);
    if (!name) {
        return {peer.gid};
    }
    std::vector<gid_t> groups(16);
    for (;;) {
        int count = static_cast<int>(groups.size());
        if (::getgrouplist(name->c_str(), peer.gid, groups.data(), &count) != -1) {
            groups.resize(static_cast<std::size_t>(count));
            return groups;
        }
        // -1: too small, and `count` now holds the size needed. Beyond the kernel's own
        // NGROUPS_MAX the database is broken: fall back to the connection's gid alone.
        if (groups.size() >= kMaxGroups) {
            return {peer.gid};
        }
        groups.resize(std::max(static_cast<std::size_t>(count), groups.size() * 2));
    }
}

}  // namespace

Result<ApiAccess> ApiAccess::resolve(const std::vector<ApiGrant>& grants, uid_t serviceUid) {
    std::map<uid_t, Projects> users;
    std::map<gid_t, Projects> groups;
    std::string unknown;
    for (const auto& grant : grants) {
        Projects* projects = nullptr;
        if (!grant.user.empty()) {
            if (auto uid = userId(grant.user)) {
                projects = &users[*uid];
            } else {
                unknown += (unknown.empty() ? "" : "; ") + grant.origin + ": unknown user \"" +
                           grant.user + "\"";
            }
        } else if (auto gid = groupId(grant.group)) {
            projects = &groups[*gid];
        } else {
            unknown += (unknown.empty() ? "" : "; ") + grant.origin + ": unknown group \"" +
                       grant.group + "\"";
        }
        if (projects == nullptr) {
            continue;
        }
        for (const auto& project : grant.projects) {
            if (project == "*") {
                projects->all = true;
            } else {
                projects->names.insert(project);
            }
        }
    }
    if (!unknown.empty()) {
        return fail(Errc::Invalid, "apiAccess: " + unknown);
    }
    return ApiAccess(serviceUid, std::move(users), std::move(groups));
}

bool ApiAccess::allows(const std::optional<PeerCredentials>& peer,
                       const std::string& project) const {
    if (!peer) {
        return false;
    }
    if (peer->uid == 0 || peer->uid == serviceUid_) {
        return true;
    }
    auto covers = [&project](const Projects& p) { return p.all || p.names.count(project) != 0; };
    if (auto user = users_.find(peer->uid); user != users_.end() && covers(user->second)) {
        return true;
    }
    if (groups_.empty()) {
        return false;  // spares the group database lookups
    }
    for (gid_t gid : groupsOf(*peer)) {
        if (auto group = groups_.find(gid); group != groups_.end() && covers(group->second)) {
            return true;
        }
    }
    return false;
}

std::string ApiAccess::describe(const PeerCredentials& peer) {
    auto name = userName(peer.uid);
    std::string uid = "uid " + std::to_string(peer.uid);
    return name ? "user \"" + *name + "\" (" + uid + ")" : uid;
}

}  // namespace lastmile::ctrl
