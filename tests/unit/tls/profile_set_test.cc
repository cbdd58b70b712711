// SPDX-License-Identifier: Apache-2.0
// Tests for ProfileSet lookups and ProfileRegistry publication.
#include "dataplane/tls/profile_set.h"

#include <gtest/gtest.h>

namespace lastmile::tls {
namespace {

std::shared_ptr<const HandshakeProfile> profileFor(const BackendKey& key) {
    ProfileSpec spec;
    spec.backend = key;
    return HandshakeProfile::failClosed(spec, "test");
}

TEST(ProfileSetTest, FindsTheProfileOfAProjectsBackend) {
    const BackendKey echo{"default", "echo", 443};
    ProfileSet set;
    auto p = profileFor(echo);
    set.projects["alpha"][echo] = p;
    EXPECT_EQ(set.find("alpha", echo), p);
}

TEST(ProfileSetTest, ReturnsNullForAnUngovernedBackendOrUnknownProject) {
    const BackendKey echo{"default", "echo", 443};
    ProfileSet set;
    set.projects["alpha"][echo] = profileFor(echo);
    EXPECT_EQ(set.find("alpha", BackendKey{"default", "echo", 8443}), nullptr);
    EXPECT_EQ(set.find("alpha", BackendKey{"other", "echo", 443}), nullptr);
    EXPECT_EQ(set.find("beta", echo), nullptr);
}

TEST(ProfileSetTest, KeepsTenantsApart) {
    const BackendKey echo{"default", "echo", 443};
    ProfileSet set;
    auto a = profileFor(echo);
    auto b = profileFor(echo);
    set.projects["alpha"][echo] = a;
    set.projects["beta"][echo] = b;
    EXPECT_EQ(set.find("alpha", echo), a);
    EXPECT_EQ(set.find("beta", echo), b);
}

TEST(ProfileRegistryTest, SnapshotTakenBeforePublishKeepsItsGeneration) {
    ProfileRegistry registry;
    EXPECT_EQ(registry.snapshot()->generation, 0U);
    auto next = std::make_shared<ProfileSet>();
    next->generation = 7;
    auto before = registry.snapshot();
    registry.publish(next);
    EXPECT_EQ(before->generation, 0U);
    EXPECT_EQ(registry.snapshot()->generation, 7U);
}

}  // namespace
}  // namespace lastmile::tls
