// SPDX-License-Identifier: Apache-2.0
// Tests for lastmiled's configuration file.
#include "ctrl/lastmiled/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/support/process.h"

namespace lastmile::ctrl {
namespace {

TEST(DaemonConfigTest, FileValuesReplaceDefaults) {
    test::TempDir dir;
    auto path = dir.write("c.yaml", "stateDir: /tmp/s\nworkers: 3\nlogLevel: debug\n");
    auto config = loadConfig(path, DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->stateDir, "/tmp/s");
    EXPECT_EQ(config->workers, 3U);
    EXPECT_EQ(config->logLevel, log::Level::Debug);
    EXPECT_EQ(config->apiSocket, DaemonConfig{}.apiSocket);
}

TEST(DaemonConfigTest, UnknownKeyIsNamedWithItsLine) {
    test::TempDir dir;
    auto path = dir.write("c.yaml", "stateDir: /tmp/s\nstatedir: /tmp/t\n");
    auto config = loadConfig(path, DaemonConfig{});
    ASSERT_FALSE(config);
    EXPECT_EQ(config.error().code(), Errc::Invalid);
    EXPECT_NE(config.error().context().find(":2:1: statedir: unknown key"), std::string::npos)
        << config.error().context();
}

TEST(DaemonConfigTest, WrongTypeAndBadLevelAreRefused) {
    test::TempDir dir;
    EXPECT_FALSE(loadConfig(dir.write("a.yaml", "workers: many\n"), DaemonConfig{}));
    EXPECT_FALSE(loadConfig(dir.write("b.yaml", "logLevel: loud\n"), DaemonConfig{}));
    EXPECT_FALSE(loadConfig(dir.write("c.yaml", "stateDir: [a, b]\n"), DaemonConfig{}));
}

TEST(DaemonConfigTest, MalformedYamlReportsLineAndColumn) {
    test::TempDir dir;
    auto config = loadConfig(dir.write("c.yaml", "stateDir: /a\n  bad: [\n"), DaemonConfig{});
    ASSERT_FALSE(config);
    EXPECT_NE(config.error().context().find("c.yaml:"), std::string::npos);
}

TEST(DaemonConfigTest, ShippedConfigurationLoads) {
    const char* root = std::getenv("LM_SOURCE_ROOT");
    ASSERT_NE(root, nullptr) << "run through meson test";
    auto config = loadConfig(std::string(root) + "/packaging/lastmiled.yaml", DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->manifests, "/etc/lastmile/manifests");
}

TEST(DaemonConfigTest, MissingFileIsNotFound) {
    auto config = loadConfig("/nonexistent/lastmiled.yaml", DaemonConfig{});
    ASSERT_FALSE(config);
    EXPECT_EQ(config.error().code(), Errc::NotFound);
}

}  // namespace
}  // namespace lastmile::ctrl
