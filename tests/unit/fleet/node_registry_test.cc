// SPDX-License-Identifier: Apache-2.0
// Tests of the node registry on a real etcd member: every node merges listener states into the
// same status, a node's key follows its lease, and the manifests lock excludes.
#include "ctrl/fleet/node_registry.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/etcd_cluster.h"
#include "tests/support/process.h"

namespace lastmile::ctrl {
namespace {

using namespace std::chrono;

const std::pair<ObjectKey, std::string> kListener{
    ObjectKey{"gateway.networking.k8s.io", "Gateway", "default", "edge"}, "tcp"};

class NodeRegistryTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!test::EtcdCluster::available()) {
            GTEST_SKIP() << "etcd is not installed (the etcd-server package)";
        }
        cluster_ = std::make_unique<test::EtcdCluster>(1);
    }

    std::unique_ptr<NodeRegistry> join(const std::string& name) {
        etcd::ClientConfig config;
        config.endpoints = cluster_->endpoints();
        auto client = etcd::Client::open(config);
        if (!client) {
            throw std::runtime_error(client.error().message());
        }
        auto registry = std::make_unique<NodeRegistry>(
            std::shared_ptr<etcd::Client>(std::move(*client)),
            NodeOptions{"/test/", name, name + ".example:9090", Json::array({"openssl"}),
                        seconds(2)},
            [] { return std::uint64_t{7}; }, [] { return system_clock::now(); });
        auto joined = registry->join();
        if (!joined) {
            throw std::runtime_error(joined.error().message());
        }
        return registry;
    }

    static ListenerStates states(bool bound, const std::string& message) {
        route::ListenerState state;
        state.bound = bound;
        state.message = message;
        return ListenerStates{{kListener, state}};
    }

    std::unique_ptr<test::EtcdCluster> cluster_;
};

TEST_F(NodeRegistryTest, EveryNodeMergesTheSameStatusFromTheSameReports) {
    auto a = join("node-a");
    auto b = join("node-b");
    auto c = join("node-c");
    const auto fromA = states(false, "127.0.0.2:443: Address already in use");
    const auto fromB = states(true, "");
    const auto fromC = states(false, "127.0.0.4:443: Address already in use");
    // Each node publishes its own binds; once every node has seen the others', all three
    // merge to the same state, whichever computes it.
    ListenerStates mergedA, mergedB, mergedC;
    ASSERT_TRUE(test::eventually(
        [&] {
            mergedA = a->merge("p", fromA);
            mergedB = b->merge("p", fromB);
            mergedC = c->merge("p", fromC);
            return mergedA == mergedB && mergedB == mergedC &&
                   mergedA.at(kListener).message.find("not programmed yet") == std::string::npos;
        },
        seconds(5), milliseconds(20)))
        << mergedA.at(kListener).message << "\n" << mergedB.at(kListener).message << "\n"
        << mergedC.at(kListener).message;
    EXPECT_FALSE(mergedB.at(kListener).bound) << "bound on node-b alone is not bound";
    EXPECT_EQ(mergedB.at(kListener).message,
              "node node-a: 127.0.0.2:443: Address already in use; "
              "node node-c: 127.0.0.4:443: Address already in use");
}

TEST_F(NodeRegistryTest, ANodeThatLeavesIsNoLongerListedOrCounted) {
    auto a = join("node-a");
    auto b = join("node-b");
    std::atomic<int> changes{0};
    a->onPeersChanged([&] { ++changes; });
    ASSERT_TRUE(test::eventually([&] { return a->nodes("p").size() == 2; }, seconds(5)));
    EXPECT_EQ(a->nodes("p")[1].name, "node-b");
    EXPECT_EQ(a->nodes("p")[1].address, "node-b.example:9090");
    EXPECT_EQ(a->nodes("p")[1].profileGeneration, 7U);

    b->merge("p", states(false, "no"));
    ASSERT_TRUE(test::eventually(
        [&] { return a->merge("p", states(true, "")).at(kListener).message == "node node-b: no"; },
        seconds(5)));
    // Each node's own state of the project's listeners, for describe; other projects' stay out.
    EXPECT_EQ(a->nodes("p")[1].listeners["default/edge/tcp"]["message"], "no");
    EXPECT_TRUE(a->nodes("other")[1].listeners.empty());
    b.reset();  // leaves: revokes its lease
    EXPECT_TRUE(test::eventually([&] { return a->nodes("p").size() == 1; }, seconds(5)));
    EXPECT_TRUE(a->merge("p", states(true, "")).at(kListener).bound);
    EXPECT_GT(changes.load(), 0);
}

TEST_F(NodeRegistryTest, ANameHeldByALiveNodeElsewhereIsRefused) {
    auto a = join("node-a");
    etcd::ClientConfig config;
    config.endpoints = cluster_->endpoints();
    auto client = etcd::Client::open(config);
    ASSERT_TRUE(client);
    NodeRegistry twin(std::shared_ptr<etcd::Client>(std::move(*client)),
                      NodeOptions{"/test/", "node-a", "elsewhere:9090", Json::array(), seconds(2)},
                      {}, [] { return system_clock::now(); });
    auto joined = twin.join();
    ASSERT_FALSE(joined);
    EXPECT_EQ(joined.error().code(), Errc::AlreadyExists);
    EXPECT_NE(joined.error().context().find("node-a.example:9090"), std::string::npos)
        << joined.error().context();
}

TEST_F(NodeRegistryTest, TheLockIsHeldByOneNodeAtATime) {
    auto a = join("node-a");
    auto b = join("node-b");
    std::atomic<int> inside{0};
    std::atomic<int> most{0};
    auto work = [&] {
        most = std::max(most.load(), ++inside);
        std::this_thread::sleep_for(milliseconds(200));
        --inside;
    };
    std::thread other([&] { EXPECT_TRUE(b->withLock("manifests", seconds(5), work)); });
    EXPECT_TRUE(a->withLock("manifests", seconds(5), work));
    other.join();
    EXPECT_EQ(most.load(), 1);

    // Held past the wait: refused with who holds it.
    std::thread holder([&] { EXPECT_TRUE(a->withLock("manifests", seconds(5), [] {
        std::this_thread::sleep_for(milliseconds(600));
    })); });
    std::this_thread::sleep_for(milliseconds(100));
    auto refused = b->withLock("manifests", milliseconds(200), [] {});
    holder.join();
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().context().find("node-a"), std::string::npos);
}

}  // namespace
}  // namespace lastmile::ctrl
