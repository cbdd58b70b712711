// SPDX-License-Identifier: Apache-2.0
// Tests for lastmiled's configuration file.
#include "ctrl/lastmiled/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace lastmile::ctrl {
namespace {

TEST(DaemonConfigTest, FileValuesReplaceDefaults) {
    test::TempDir dir;
    auto path = dir.write("c.yaml", "stateDir: /tmp/s\nworkers: 3\nlogLevel: debug\n");
    auto config = loadConfig(path, DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->stateDir, "/tmp/s");
    EXPECT_EQ(config->dataplane.workers, 3U);
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

TEST(DaemonConfigTest, ApiAccessGrantsAreRead) {
    test::TempDir dir;
    auto config = loadConfig(dir.write("c.yaml", "apiAccess:\n"
                                                 "- {group: team-a, projects: [team-a]}\n"
                                                 "- user: ops\n"
                                                 "  projects: [\"*\"]\n"),
                             DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    ASSERT_EQ(config->apiAccess.size(), 2U);
    EXPECT_EQ(config->apiAccess[0].group, "team-a");
    EXPECT_EQ(config->apiAccess[0].user, "");
    EXPECT_EQ(config->apiAccess[0].projects, std::vector<std::string>{"team-a"});
    EXPECT_NE(config->apiAccess[0].origin.find("c.yaml:2:"), std::string::npos);
    EXPECT_EQ(config->apiAccess[1].user, "ops");
    EXPECT_EQ(config->apiAccess[1].projects, std::vector<std::string>{"*"});
    EXPECT_TRUE(DaemonConfig{}.apiAccess.empty());
}

TEST(DaemonConfigTest, MalformedApiAccessIsRefusedWithItsLine) {
    test::TempDir dir;
    for (const char* bad : {"apiAccess: ops\n", "apiAccess: [ops]\n",
                            "apiAccess:\n- {user: a, group: b, projects: [x]}\n",
                            "apiAccess:\n- {user: a}\n", "apiAccess:\n- {user: a, projects: []}\n",
                            "apiAccess:\n- {user: a, projects: [Team_A]}\n",
                            "apiAccess:\n- {user: a, projects: [x], role: admin}\n"}) {
        auto config = loadConfig(dir.write("c.yaml", bad), DaemonConfig{});
        ASSERT_FALSE(config) << bad;
        EXPECT_EQ(config.error().code(), Errc::Invalid) << bad;
        EXPECT_NE(config.error().context().find("apiAccess"), std::string::npos)
            << config.error().context();
    }
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
    // The shipped file documents the defaults: loading it changes nothing else.
    const dataplane::DataplaneOptions defaults;
    EXPECT_EQ(config->dataplane.workers, defaults.workers);
    EXPECT_EQ(config->dataplane.bindAddress, defaults.bindAddress);
    EXPECT_EQ(config->dataplane.connectTimeout, defaults.connectTimeout);
    EXPECT_EQ(config->dataplane.handshakeTimeout, defaults.handshakeTimeout);
    EXPECT_EQ(config->dataplane.idleTimeout, defaults.idleTimeout);
    EXPECT_EQ(config->dataplane.drainTimeout, defaults.drainTimeout);
    EXPECT_EQ(config->dataplane.maxConnections, defaults.maxConnections);
    EXPECT_EQ(config->dataplane.errorDetail, dataplane::ErrorDetail::Reason);
    EXPECT_EQ(config->dataplane.allowedBackendNetworks, defaults.allowedBackendNetworks);
    EXPECT_EQ(config->dataplane.backendConnectionLimit(), defaults.maxConnections);
    EXPECT_EQ(config->dataplane.maxBufferMemory, 256ull << 20);
    EXPECT_FALSE(config->dataplane.interception) << "shipped commented out";
}

TEST(DaemonConfigTest, DataplaneKeysReplaceTheirDefaults) {
    test::TempDir dir;
    auto path = dir.write("c.yaml",
                          "bindAddress: \"::1\"\nconnectTimeout: 500ms\nhandshakeTimeout: 2s\n"
                          "idleTimeout: 1h30m\ndrainTimeout: 0s\nmaxConnections: 100\n"
                          "errorDetail: full\n");
    auto config = loadConfig(path, DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    using std::chrono::milliseconds;
    EXPECT_EQ(config->dataplane.bindAddress, "::1");
    EXPECT_EQ(config->dataplane.connectTimeout, milliseconds(500));
    EXPECT_EQ(config->dataplane.handshakeTimeout, milliseconds(2'000));
    EXPECT_EQ(config->dataplane.idleTimeout, milliseconds(5'400'000));
    EXPECT_EQ(config->dataplane.drainTimeout, milliseconds(0));
    EXPECT_EQ(config->dataplane.maxConnections, 100U);
    EXPECT_EQ(config->dataplane.errorDetail, dataplane::ErrorDetail::Full);
    EXPECT_EQ(config->dataplane.workers, dataplane::DataplaneOptions{}.workers);
}

TEST(DaemonConfigTest, AllowedBackendNetworksAreCidrLists) {
    test::TempDir dir;
    EXPECT_FALSE(DaemonConfig{}.dataplane.allowedBackendNetworks) << "default: all but loopback";
    auto config = loadConfig(
        dir.write("c.yaml", "allowedBackendNetworks: [\"127.0.0.0/8\", \"::1/128\", 10.0.0.0/8]\n"),
        DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    ASSERT_TRUE(config->dataplane.allowedBackendNetworks);
    std::vector<std::string> got;
    for (const auto& n : *config->dataplane.allowedBackendNetworks) {
        got.push_back(n.toString());
    }
    EXPECT_EQ(got, (std::vector<std::string>{"127.0.0.0/8", "::1/128", "10.0.0.0/8"}));
    // As packaging/lastmiled.yaml writes it: unquoted, IPv6 included.
    auto plain = loadConfig(
        dir.write("p.yaml", "allowedBackendNetworks: [10.0.0.0/8, 192.168.0.0/16, fd00::/8]\n"),
        DaemonConfig{});
    ASSERT_TRUE(plain) << plain.error().message();
    EXPECT_EQ(plain->dataplane.allowedBackendNetworks->size(), 3U);
    auto none = loadConfig(dir.write("d.yaml", "allowedBackendNetworks: []\n"), DaemonConfig{});
    ASSERT_TRUE(none) << none.error().message();
    EXPECT_TRUE(none->dataplane.allowedBackendNetworks && none->dataplane.allowedBackendNetworks->empty());
}

TEST(DaemonConfigTest, BadNetworksAreAllNamedAndRefused) {
    test::TempDir dir;
    auto config = loadConfig(
        dir.write("c.yaml", "allowedBackendNetworks: [10.0.0.0/8, 127.1/32, 10.0.0.1/8, "
                            "\"0x7f000001/32\", \"fe80::1%lo/128\", 10.0.0.0/33, [a]]\n"),
        DaemonConfig{});
    ASSERT_FALSE(config);
    EXPECT_EQ(config.error().code(), Errc::Invalid);
    const std::string& text = config.error().context();
    for (const char* named : {"c.yaml:1:1: allowedBackendNetworks[1]", "[2]", "[3]", "[4]", "[5]", "[6]"}) {
        EXPECT_NE(text.find(named), std::string::npos) << named << " in " << text;
    }
    EXPECT_EQ(text.find("[0]"), std::string::npos) << text;
    for (const char* bad : {"allowedBackendNetworks: 10.0.0.0/8\n", "allowedBackendNetworks: {a: b}\n",
                            "allowedBackendNetworks: [10.0.0.0]\n", "allowedBackendNetworks: [\"\"]\n",
                            "allowedBackendNetworks: [010.0.0.0/8]\n", "allowedBackendNetworks: [::/0x]\n"}) {
        EXPECT_FALSE(loadConfig(dir.write("e.yaml", bad), DaemonConfig{})) << bad;
    }
}

TEST(DaemonConfigTest, BudgetKeysReplaceTheirDefaults) {
    test::TempDir dir;
    auto path = dir.write("c.yaml", "maxConnections: 100\nmaxBackendConnections: 40\n"
                                    "maxBufferMemory: 64Mi\n");
    auto config = loadConfig(path, DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->dataplane.backendConnectionLimit(), 40U);
    EXPECT_EQ(config->dataplane.maxBufferMemory, 64ull << 20);
}

TEST(DaemonConfigTest, ByteSizesAreBytesOrBinaryUnits) {
    struct Case {
        const char* text;
        long long want;  // -1: invalid
    } cases[] = {
        {"268435456", 268'435'456}, {"256Mi", 256ll << 20}, {"1Gi", 1ll << 30},
        {"512Ki", 512ll << 10}, {"1024Gi", 1ll << 40}, {"1025Gi", -1}, {"", -1}, {"Mi", -1},
        {"-1", -1}, {"+1", -1}, {"256M", -1}, {"256 Mi", -1}, {"1.5Gi", -1}, {"256mi", -1},
    };
    for (const auto& c : cases) {
        auto n = parseByteSize(c.text);
        if (c.want < 0) {
            EXPECT_FALSE(n) << c.text;
        } else {
            ASSERT_TRUE(n) << c.text;
            EXPECT_EQ(*n, static_cast<std::uint64_t>(c.want)) << c.text;
        }
    }
}

TEST(DaemonConfigTest, DurationsAreGoStyle) {
    struct Case {
        const char* text;
        long long wantMs;  // -1: invalid
    } cases[] = {
        {"500ms", 500}, {"5s", 5'000}, {"2m", 120'000}, {"1h", 3'600'000}, {"1m30s", 90'000},
        {"1.5s", 1'500}, {"0", -1}, {"", -1}, {"5", -1}, {"5 s", -1}, {"-5s", -1},
        {"5sec", -1}, {"10us", -1}, {"s", -1}, {"1..5s", -1}, {"99999999999h", -1},
    };
    for (const auto& c : cases) {
        auto d = parseDuration(c.text);
        if (c.wantMs < 0) {
            EXPECT_FALSE(d) << c.text;
            if (!d) {
                EXPECT_EQ(d.error().code(), Errc::Invalid) << c.text;
            }
        } else {
            ASSERT_TRUE(d) << c.text;
            EXPECT_EQ(d->count(), c.wantMs) << c.text;
        }
    }
}

TEST(DaemonConfigTest, BadDataplaneValuesNameFileLineAndKey) {
    struct Case {
        const char* yaml;
        const char* want;
    } cases[] = {
        {"stateDir: /a\nconnectTimeout: soon\n", "c.yaml:2:1: connectTimeout: duration \"soon\""},
        {"idleTimeout: 0s\n", "c.yaml:1:1: idleTimeout: must be longer than 0"},
        {"bindAddress: localhost\n", "c.yaml:1:1: bindAddress: \"localhost\" is not an IPv4 or IPv6"},
        {"bindAddress: 10.0.0.300\n", "bindAddress"},
        {"maxConnections: 0\n", "c.yaml:1:1: maxConnections: must be from 1"},
        {"maxConnections: -3\n", "maxConnections"},
        {"maxConnections: 5000000000\n", "maxConnections"},
        {"workers: -1\n", "c.yaml:1:1: workers"},
        {"maxBackendConnections: 0\n", "c.yaml:1:1: maxBackendConnections: must be from 1"},
        {"maxBufferMemory: 1Mi\n", "c.yaml:1:1: maxBufferMemory: must be at least 2Mi"},
        {"maxBufferMemory: lots\n", "c.yaml:1:1: maxBufferMemory: size \"lots\""},
        {"handshakeTimeout: [1s]\n", "handshakeTimeout: expected a single value"},
        {"errorDetail: verbose\n", "c.yaml:1:1: errorDetail: must be reason or full"},
        {"recordEngines: kernel\n", "c.yaml:1:1: recordEngines: expected a list of record engines"},
        {"recordEngines: []\n", "c.yaml:1:1: recordEngines: expected a list"},
        {"recordEngines: [kernel, gpu]\n",
         "c.yaml:1:1: recordEngines: record engine \"gpu\" is not built into this lastmiled (built: "
         "nic, kernel, "},
        {"recordEngines: [openssl, openssl]\n",
         "c.yaml:1:1: recordEngines: record engine \"openssl\" is listed twice"},
        {"recordEngines: [[kernel]]\n", "c.yaml:1:1: recordEngines[0]: expected an engine name"},
        {"cryptodev: [x]\n", "c.yaml:1:1: cryptodev: expected {eal: [...], devices: [...]}"},
        {"cryptodev: {eal: [--help]}\n",
         "c.yaml:1:1: cryptodev.eal: EAL argument \"--help\" is not allowed"},
        {"cryptodev: {queues: 3}\n", "c.yaml:1:1: cryptodev.queues: unknown key"},
        {"cryptodev: {devices: \"a b\"}\n", "c.yaml:1:1: cryptodev.devices: expected a list"},
        {"cryptodev: {devices: [\"qat 0\"]}\n",
         "c.yaml:1:1: cryptodev.devices: \"qat 0\" is not a DPDK device name"},
        {"interception: [eth1]\n",
         "c.yaml:1:1: interception: expected {cgroups: [...], interfaces: [...], "
         "addresses: [...]}"},
        {"interception:\n  cgroup: [/sys/fs/cgroup/a]\n",
         "c.yaml:2:3: interception.cgroup: unknown key (known: cgroups, interfaces, addresses)"},
        {"interception:\n  addresses: [10.0.0.0/8, 10.1.2.3/40]\n",
         "c.yaml:2:3: interception.addresses[1]: "},
        {"interception: {addresses: 10.0.0.0/8}\n", "interception.addresses: expected a list"},
        {"interception: {cgroups: /sys/fs/cgroup/a}\n",
         "c.yaml:1:16: interception.cgroups: expected a list"},
        {"interception:\n  cgroups:\n  - /sys/fs/cgroup/a\n  - relative/b\n",
         "c.yaml:4:5: interception.cgroups: \"relative/b\" is not an absolute cgroup v2 directory"},
        {"interception: {cgroups: [/sys/fs/cgroup/../../etc]}\n",
         "interception.cgroups: \"/sys/fs/cgroup/../../etc\" is not an absolute cgroup"},
        {"interception: {cgroups: [\"/sys/fs/cgroup/a b\"]}\n", "is not an absolute cgroup"},
        {"interception: {cgroups: [[/a]]}\n", "interception.cgroups: expected a string"},
        {"interception:\n  interfaces: [eth1, \"eth0; reboot\"]\n",
         "c.yaml:2:22: interception.interfaces: \"eth0; reboot\" is not a network interface name"},
        {"interception: {interfaces: [averyveryverylongname0]}\n",
         "is not a network interface name"},
        {"interception: {interfaces: [..]}\n", "is not a network interface name"},
    };
    for (const auto& c : cases) {
        test::TempDir dir;
        auto config = loadConfig(dir.write("c.yaml", c.yaml), DaemonConfig{});
        ASSERT_FALSE(config) << c.yaml;
        EXPECT_EQ(config.error().code(), Errc::Invalid) << c.yaml;
        EXPECT_NE(config.error().context().find(c.want), std::string::npos)
            << config.error().context();
    }
}

TEST(DaemonConfigTest, RecordEnginesKeepTheConfiguredOrder) {
    test::TempDir dir;
    auto config = loadConfig(dir.write("c.yaml", "recordEngines: [openssl, kernel]\n"), DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->dataplane.recordEngines, (std::vector<std::string>{"openssl", "kernel"}));
    EXPECT_TRUE(DaemonConfig{}.dataplane.recordEngines.empty()) << "default: every built engine";
}

TEST(DaemonConfigTest, CryptodevDevicesAndEalArgumentsAreRead) {
    test::TempDir dir;
    auto config = loadConfig(dir.write("c.yaml", "cryptodev:\n  eal: [--vdev=crypto_aesni_gcm0, -m128]\n"
                                                 "  devices: [crypto_aesni_gcm0]\n"),
                             DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->dataplane.cryptodev.eal,
              (std::vector<std::string>{"--vdev=crypto_aesni_gcm0", "-m128"}));
    EXPECT_EQ(config->dataplane.cryptodev.devices, std::vector<std::string>{"crypto_aesni_gcm0"});
}

TEST(DaemonConfigTest, InterceptionCgroupsAndInterfacesAreRead) {
    test::TempDir dir;
    EXPECT_FALSE(DaemonConfig{}.dataplane.interception) << "default: not configured";
    auto config = loadConfig(dir.write("c.yaml", "interception:\n"
                                                 "  cgroups: [/sys/fs/cgroup/apps.slice]\n"
                                                 "  interfaces: [eth1, veth-a.10]\n"
                                                 "  addresses: [10.96.0.0/12, fd00::/8]\n"),
                             DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    ASSERT_TRUE(config->dataplane.interception);
    EXPECT_EQ(config->dataplane.interception->cgroups,
              std::vector<std::string>{"/sys/fs/cgroup/apps.slice"});
    EXPECT_EQ(config->dataplane.interception->interfaces,
              (std::vector<std::string>{"eth1", "veth-a.10"}));
    EXPECT_EQ(config->dataplane.interception->addresses.size(), 2U);
    // Present but empty is configured: every virtual address then says why it is not usable.
    auto empty = loadConfig(dir.write("d.yaml", "interception: {}\n"), DaemonConfig{});
    ASSERT_TRUE(empty) << empty.error().message();
    ASSERT_TRUE(empty->dataplane.interception);
    EXPECT_TRUE(empty->dataplane.interception->cgroups.empty());
}

TEST(DaemonConfigTest, MissingFileIsNotFound) {
    auto config = loadConfig("/nonexistent/lastmiled.yaml", DaemonConfig{});
    ASSERT_FALSE(config);
    EXPECT_EQ(config.error().code(), Errc::NotFound);
}

TEST(DaemonConfigTest, EtcdStoreIsRead) {
    test::TempDir dir;
    auto config = loadConfig(dir.write("c.yaml", "nodeName: edge-1.dc2\n"
                                                 "store:\n"
                                                 "  type: etcd\n"
                                                 "  endpoints: [\"https://10.0.0.1:2379\", "
                                                 "\"https://etcd-2.example:2379\", "
                                                 "\"https://[fd00::3]:2379\"]\n"
                                                 "  prefix: /lastmile/prod/\n"
                                                 "  caFile: /etc/lastmile/etcd-ca.pem\n"
                                                 "  certFile: /etc/lastmile/etcd.pem\n"
                                                 "  keyFile: /etc/lastmile/etcd-key.pem\n"
                                                 "  leaseTtl: 15s\n"),
                             DaemonConfig{});
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->nodeName, "edge-1.dc2");
    EXPECT_EQ(config->store.type, StoreConfig::Type::Etcd);
    EXPECT_EQ(config->store.endpoints.size(), 3U);
    EXPECT_EQ(config->store.endpoints[2], "https://[fd00::3]:2379");
    EXPECT_EQ(config->store.prefix, "/lastmile/prod/");
    EXPECT_EQ(config->store.keyFile, "/etc/lastmile/etcd-key.pem");
    EXPECT_EQ(config->store.leaseTtl, std::chrono::seconds(15));
    EXPECT_EQ(DaemonConfig{}.store.type, StoreConfig::Type::Sqlite) << "SQLite stays the default";
}

TEST(DaemonConfigTest, BadStoreSettingsAreRefusedBeforeTheyReachLibcurl) {
    test::TempDir dir;
    const std::string etcd = "store:\n  type: etcd\n";
    for (const std::string& bad : std::vector<std::string>{
             etcd,                                                          // no endpoints
             etcd + "  endpoints: [\"http://127.0.0.1\"]\n",                // no port
             etcd + "  endpoints: [\"http://127.0.0.1:http\"]\n",           // a port that is no number
             etcd + "  endpoints: [\"http://127.0.0.1:70000\"]\n",
             etcd + "  endpoints: [\"file:///etc/passwd:1\"]\n",
             etcd + "  endpoints: [\"http://a b:1\"]\n",
             etcd + "  endpoints: [\"http://h:1/v3/kv\"]\n",
             etcd + "  endpoints: [\"http://h:1\"]\n  caFile: /ca.pem\n",    // TLS files, plain http
             etcd + "  endpoints: [\"https://h:1\"]\n  certFile: /c.pem\n",  // no key
             etcd + "  endpoints: [\"https://h:1\"]\n  caFile: ca.pem\n",    // relative
             etcd + "  endpoints: [\"http://h:1\"]\n  prefix: lastmile\n",
             etcd + "  endpoints: [\"http://h:1\"]\n  prefix: /a/../b/\n",
             etcd + "  endpoints: [\"http://h:1\"]\n  leaseTtl: 1s\n",
             etcd + "  endpoints: [\"http://h:1\"]\n  leaseTtl: 1500ms\n",
             etcd + "  endpoints: [\"http://h:1\"]\n  user: root\n",
             std::string("store:\n  type: zookeeper\n"),
             std::string("store:\n  endpoints: [\"http://h:1\"]\n"),  // no type
             std::string("store:\n  type: sqlite\n  endpoints: [\"http://h:1\"]\n"),
             std::string("nodeName: Node_A\n"),
             std::string("nodeName: a/b\n"),
         }) {
        auto config = loadConfig(dir.write("c.yaml", bad), DaemonConfig{});
        ASSERT_FALSE(config) << bad;
        EXPECT_EQ(config.error().code(), Errc::Invalid) << bad;
        EXPECT_NE(config.error().context().find("c.yaml:"), std::string::npos)
            << config.error().context();
    }
}

}  // namespace
}  // namespace lastmile::ctrl
