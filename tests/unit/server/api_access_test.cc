// SPDX-License-Identifier: Apache-2.0
// Tests for apiAccess: name resolution at start and who may use which project.
#include "ctrl/server/api_access.h"

#include <gtest/gtest.h>
#include <grp.h>
#include <pwd.h>

namespace lastmile::ctrl {
namespace {

// Debian's unprivileged account and its group; both exist on every Debian system.
constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;
constexpr uid_t kService = 4242;
constexpr uid_t kStranger = 54321;  // no passwd entry

ApiAccess resolved(const std::vector<ApiGrant>& grants) {
    auto access = ApiAccess::resolve(grants, kService);
    EXPECT_TRUE(access) << access.error().message();
    return *access;
}

TEST(ApiAccessTest, WithoutGrantsOnlyRootAndTheServiceUserGetIn) {
    auto access = resolved({});
    EXPECT_TRUE(access.allows(PeerCredentials{0, 0}, "default"));
    EXPECT_TRUE(access.allows(PeerCredentials{kService, kService}, "team-a"));
    EXPECT_FALSE(access.allows(PeerCredentials{kNobody, kNogroup}, "default"));
    EXPECT_FALSE(access.allows(std::nullopt, "default"));
}

TEST(ApiAccessTest, UserGrantCoversOnlyItsProjects) {
    auto access = resolved({{"nobody", "", {"team-a", "team-b"}, "c.yaml:2:3"}});
    EXPECT_TRUE(access.allows(PeerCredentials{kNobody, kNogroup}, "team-a"));
    EXPECT_TRUE(access.allows(PeerCredentials{kNobody, kNogroup}, "team-b"));
    EXPECT_FALSE(access.allows(PeerCredentials{kNobody, kNogroup}, "default"));
    EXPECT_FALSE(access.allows(PeerCredentials{kStranger, kNogroup}, "team-a"));
}

TEST(ApiAccessTest, StarGrantsEveryProject) {
    auto access = resolved({{"nobody", "", {"*"}, "c.yaml:2:3"}});
    EXPECT_TRUE(access.allows(PeerCredentials{kNobody, kNogroup}, "anything"));
}

TEST(ApiAccessTest, GroupGrantCoversTheConnectionsGroup) {
    auto access = resolved({{"", "nogroup", {"team-a"}, "c.yaml:2:3"}});
    EXPECT_TRUE(access.allows(PeerCredentials{kStranger, kNogroup}, "team-a"));
    EXPECT_FALSE(access.allows(PeerCredentials{kStranger, kNogroup}, "team-b"));
    EXPECT_FALSE(access.allows(PeerCredentials{kStranger, kStranger}, "team-a"));
}

TEST(ApiAccessTest, GroupGrantCoversSupplementaryGroupsOfTheUser) {
    // root is a member of group "root" by its passwd entry: getgrouplist adds it to any gid
    // the connection has. Use a uid other than 0 that is listed in a group's member list.
    group* g = nullptr;
    passwd* member = nullptr;
    setgrent();
    while ((g = getgrent()) != nullptr) {
        if (g->gr_mem != nullptr && g->gr_mem[0] != nullptr &&
            (member = getpwnam(g->gr_mem[0])) != nullptr && member->pw_uid != 0) {
            break;
        }
    }
    endgrent();
    if (g == nullptr) {
        GTEST_SKIP() << "no group in the group database lists a non-root member";
    }
    std::string groupName = g->gr_name;
    uid_t uid = member->pw_uid;
    auto access = resolved({{"", groupName, {"team-a"}, "c.yaml:2:3"}});
    EXPECT_TRUE(access.allows(PeerCredentials{uid, kStranger}, "team-a")) << groupName;
}

TEST(ApiAccessTest, UnknownNamesAreAnErrorNamingEachOne) {
    auto access = ApiAccess::resolve({{"no-such-user-x", "", {"a"}, "c.yaml:2:3"},
                                      {"", "no-such-group-y", {"b"}, "c.yaml:4:3"}},
                                     kService);
    ASSERT_FALSE(access);
    EXPECT_EQ(access.error().code(), Errc::Invalid);
    const auto& context = access.error().context();
    EXPECT_NE(context.find("c.yaml:2:3: unknown user \"no-such-user-x\""), std::string::npos) << context;
    EXPECT_NE(context.find("c.yaml:4:3: unknown group \"no-such-group-y\""), std::string::npos)
        << context;
}

TEST(ApiAccessTest, DescribeNamesTheUserWhenItHasOne) {
    EXPECT_EQ(ApiAccess::describe({kNobody, kNogroup}), "user \"nobody\" (uid 65534)");
    EXPECT_EQ(ApiAccess::describe({kStranger, kNogroup}), "uid 54321");
}

}  // namespace
}  // namespace lastmile::ctrl
