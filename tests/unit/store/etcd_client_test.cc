// SPDX-License-Identifier: Apache-2.0
// The etcd client against real etcd members on loopback: kv, txn preconditions, leases,
// watches, TLS client certificates, and failover when members are killed.
#include "ctrl/store/etcd_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/client.h"
#include "tests/support/etcd_cluster.h"

namespace lastmile::ctrl::etcd {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using test::EtcdCluster;
using Clock = std::chrono::steady_clock;

#define SKIP_WITHOUT_ETCD()                                                       \
    if (!EtcdCluster::available()) {                                              \
        GTEST_SKIP() << EtcdCluster::kBinary << " is missing (package etcd-server)"; \
    }

milliseconds since(Clock::time_point t) {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - t);
}

std::unique_ptr<Client> openClient(std::vector<std::string> endpoints, TlsFiles tls = {},
                                   milliseconds requestTimeout = milliseconds(2000)) {
    ClientConfig config;
    config.endpoints = std::move(endpoints);
    config.tls = std::move(tls);
    config.requestTimeout = requestTimeout;
    auto c = Client::open(std::move(config));
    if (!c) {
        throw std::runtime_error(c.error().message());
    }
    return std::move(*c);
}

// Events until `until` holds for what was gathered, or `timeout` passes.
template <typename F>
std::vector<Event> gather(Watch& w, F until, milliseconds timeout = milliseconds(5000)) {
    std::vector<Event> out;
    const auto start = Clock::now();
    while (!until(out) && since(start) < timeout) {
        auto batch = w.next(milliseconds(100));
        if (!batch) {
            ADD_FAILURE() << batch.error().message();
            break;
        }
        out.insert(out.end(), batch->begin(), batch->end());
    }
    return out;
}

auto atLeast(std::size_t n) {
    return [n](const std::vector<Event>& e) { return e.size() >= n; };
}

// The keys of `kvs` in the order they were last written, leaving out revision `skip`.
std::vector<std::string> keysByRevision(const std::vector<KeyValue>& kvs, std::int64_t skip = 0) {
    std::map<std::int64_t, std::string> byRevision;
    for (const auto& kv : kvs) {
        if (kv.modRevision != skip) {
            byRevision[kv.modRevision] = kv.key;
        }
    }
    std::vector<std::string> out;
    for (const auto& [rev, key] : byRevision) {
        out.push_back(key);
    }
    return out;
}

// Gathers what `w` still has to deliver after `events` and checks that all of them together
// are exactly `expected`: nothing lost, nothing repeated, in order.
void expectWatchSawExactly(Watch& w, std::vector<Event> events,
                           const std::vector<std::string>& expected, const char* across) {
    const std::size_t already = events.size();
    const auto more = gather(w, [&](const std::vector<Event>& e) {
        return already + e.size() >= expected.size();
    });
    events.insert(events.end(), more.begin(), more.end());
    std::vector<std::string> seen;
    for (const auto& e : events) {
        seen.push_back(e.kv.key);
    }
    EXPECT_EQ(seen, expected) << "the watch lost or repeated events across " << across;
}

class EtcdClientTest : public ::testing::Test {
protected:
    void SetUp() override {
        SKIP_WITHOUT_ETCD();
        cluster_ = std::make_unique<EtcdCluster>(1);
        client_ = openClient(cluster_->endpoints());
    }
    std::unique_ptr<EtcdCluster> cluster_;
    std::unique_ptr<Client> client_;
};

TEST_F(EtcdClientTest, CreateIfAbsentSucceedsOnceThenReturnsTheCurrentValue) {
    const std::vector<Compare> absent = {{"/lm/a", Compare::Target::Create, 0}};
    const std::vector<Op> create = {{Op::Kind::Put, "/lm/a", "one", 0}};
    const std::vector<Op> read = {{Op::Kind::Range, "/lm/a", "", 0}};

    auto first = client_->txn(absent, create, read);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_TRUE(first->succeeded);
    EXPECT_GT(first->revision, 0);

    auto second = client_->txn(absent, {{Op::Kind::Put, "/lm/a", "two", 0}}, read);
    ASSERT_TRUE(second) << second.error().message();
    EXPECT_FALSE(second->succeeded);
    ASSERT_EQ(second->results.size(), 1u);
    ASSERT_EQ(second->results[0].kvs.size(), 1u);
    const KeyValue& kv = second->results[0].kvs[0];
    EXPECT_EQ(kv.value, "one");
    EXPECT_EQ(kv.modRevision, first->revision);
    EXPECT_EQ(kv.createRevision, first->revision);
    EXPECT_EQ(kv.version, 1);
}

TEST_F(EtcdClientTest, UpdatesAndDeletesOnlyAtTheExpectedModRevision) {
    auto created = client_->put("/lm/k", "v1");
    ASSERT_TRUE(created) << created.error().message();
    auto updated = client_->put("/lm/k", "v2");
    ASSERT_TRUE(updated) << updated.error().message();

    // A writer that read v1 is stale now: its update fails and shows what is there.
    auto stale = client_->txn({{"/lm/k", Compare::Target::Mod, *created}},
                              {{Op::Kind::Put, "/lm/k", "stale", 0}},
                              {{Op::Kind::Range, "/lm/k", "", 0}});
    ASSERT_TRUE(stale) << stale.error().message();
    EXPECT_FALSE(stale->succeeded);
    ASSERT_EQ(stale->results.at(0).kvs.size(), 1u);
    EXPECT_EQ(stale->results[0].kvs[0].value, "v2");

    auto fresh = client_->txn({{"/lm/k", Compare::Target::Mod, *updated}},
                              {{Op::Kind::Put, "/lm/k", "v3", 0}}, {});
    ASSERT_TRUE(fresh) << fresh.error().message();
    EXPECT_TRUE(fresh->succeeded);

    auto staleDelete = client_->txn({{"/lm/k", Compare::Target::Mod, *updated}},
                                    {{Op::Kind::Delete, "/lm/k", "", 0}}, {});
    ASSERT_TRUE(staleDelete) << staleDelete.error().message();
    EXPECT_FALSE(staleDelete->succeeded);

    auto del = client_->txn({{"/lm/k", Compare::Target::Mod, fresh->revision}},
                            {{Op::Kind::Delete, "/lm/k", "", 0}}, {});
    ASSERT_TRUE(del) << del.error().message();
    EXPECT_TRUE(del->succeeded);
    ASSERT_EQ(del->results.at(0).kvs.size(), 1u);
    EXPECT_EQ(del->results[0].kvs[0].value, "v3");  // the deleted value (prev_kv)

    auto gone = client_->range("/lm/k", false);
    ASSERT_TRUE(gone) << gone.error().message();
    EXPECT_TRUE(gone->kvs.empty());
    EXPECT_EQ(gone->revision, del->revision);
}

TEST_F(EtcdClientTest, PrefixRangeIsSortedAndStopsAtThePrefix) {
    // Binary bytes survive base64 both ways; "/lm/p0" and "/lm/q" sort just outside "/lm/p/".
    const std::string binary("/lm/p/\x00\xff", 8);
    for (const std::string key : {"/lm/p/b", "/lm/p0", "/lm/p/a", "/lm/q", "/lm/p/c"}) {
        ASSERT_TRUE(client_->put(key, "x"));
    }
    ASSERT_TRUE(client_->put(binary, std::string("\x00\x01", 2)));
    ASSERT_TRUE(client_->put("/lm/p/empty", ""));

    auto r = client_->range("/lm/p/", true);
    ASSERT_TRUE(r) << r.error().message();
    std::vector<std::string> keys;
    for (const auto& kv : r->kvs) {
        keys.push_back(kv.key);
    }
    EXPECT_EQ(keys, (std::vector<std::string>{binary, "/lm/p/a", "/lm/p/b", "/lm/p/c",
                                              "/lm/p/empty"}));
    EXPECT_EQ(r->kvs.at(0).value, std::string("\x00\x01", 2));
    EXPECT_EQ(r->kvs.at(4).value, "");
    auto serializable = client_->rangeSerializable("/lm/p/", true);
    ASSERT_TRUE(serializable) << serializable.error().message();
    EXPECT_EQ(serializable->kvs.size(), 5u);
}

TEST_F(EtcdClientTest, KeyOnALeaseGoesWhenTheLeaseExpires) {
    auto lease = client_->grantLease(seconds(1));
    ASSERT_TRUE(lease) << lease.error().message();
    ASSERT_TRUE(client_->put("/lm/nodes/n1", "alive", *lease));
    auto ttl = client_->keepAlive(*lease);
    ASSERT_TRUE(ttl) << ttl.error().message();
    EXPECT_EQ(*ttl, seconds(1));

    auto r = client_->range("/lm/nodes/n1", false);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->kvs.size(), 1u);
    EXPECT_EQ(r->kvs[0].lease, *lease);  // ids exceed 2^53: parsed exactly

    EXPECT_TRUE(test::eventually(
        [&] {
            auto now = client_->range("/lm/nodes/n1", false);
            return now && now->kvs.empty();
        },
        seconds(5), milliseconds(50)));
    auto late = client_->keepAlive(*lease);
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().code(), EtcdErrc::LeaseNotFound);
    auto revoke = client_->revokeLease(*lease);
    ASSERT_FALSE(revoke);
    EXPECT_EQ(revoke.error().code(), EtcdErrc::LeaseNotFound);

    auto other = client_->grantLease(seconds(30));
    ASSERT_TRUE(other);
    EXPECT_TRUE(client_->revokeLease(*other));
}

TEST_F(EtcdClientTest, WatchDeliversPutsAndDeletesInOrderWithPreviousValues) {
    auto before = client_->put("/lm/w/a", "1");
    ASSERT_TRUE(before);
    ASSERT_TRUE(client_->put("/lm/other", "not watched"));
    ASSERT_TRUE(client_->put("/lm/w/a", "2"));
    auto w = client_->watch("/lm/w/", *before);  // from a past revision: catch-up, then live
    ASSERT_TRUE(client_->remove("/lm/w/a"));
    ASSERT_TRUE(client_->put("/lm/w/b", "3"));

    const auto events = gather(*w, atLeast(4));
    ASSERT_EQ(events.size(), 4u);
    EXPECT_TRUE(w->connected());
    EXPECT_EQ(events[0].type, Event::Type::Put);
    EXPECT_EQ(events[0].kv.modRevision, *before);
    EXPECT_EQ(events[0].prevKv.key, "");  // new key
    EXPECT_EQ(events[1].kv.value, "2");
    EXPECT_EQ(events[1].prevKv.value, "1");
    EXPECT_EQ(events[2].type, Event::Type::Delete);
    EXPECT_EQ(events[2].kv.key, "/lm/w/a");
    EXPECT_EQ(events[2].prevKv.value, "2");
    EXPECT_EQ(events[3].kv.key, "/lm/w/b");
    for (std::size_t i = 1; i < events.size(); ++i) {
        EXPECT_GT(events[i].kv.modRevision, events[i - 1].kv.modRevision);
    }
}

TEST_F(EtcdClientTest, WatchFromACompactedRevisionEndsWithCompacted) {
    auto first = client_->put("/lm/c/a", "1");
    ASSERT_TRUE(first);
    auto last = client_->put("/lm/c/a", "2");
    ASSERT_TRUE(last);
    cluster_->post(0, "/v3/kv/compaction",
                   R"({"revision":")" + std::to_string(*last) + R"(","physical":true})");

    auto w = client_->watch("/lm/c/", *first);
    const auto start = Clock::now();
    Result<std::vector<Event>> r = std::vector<Event>{};
    while (r && since(start) < seconds(5)) {
        r = w->next(milliseconds(200));
    }
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EtcdErrc::Compacted);
    auto again = w->next(milliseconds(10));  // stays ended: the caller relists
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code(), EtcdErrc::Compacted);
}

// The pitfall of proto-etcd §3.6: etcd accepts a watch starting exactly at the compacted
// revision but no longer has a delete made at that revision. A watch that resumed from its
// last delivered revision + 1 would wait in silence; resuming from the last one ends in
// Compacted, so the caller relists and sees the delete.
TEST_F(EtcdClientTest, WatchResumedPastADeleteThatWasCompactedAwayEndsWithCompacted) {
    auto put = client_->put("/lm/r/a", "1");
    ASSERT_TRUE(put);
    auto w = client_->watch("/lm/r/", *put);
    const auto first = gather(*w, atLeast(1));
    ASSERT_EQ(first.size(), 1u);

    // Break the stream, and while the watch is away delete the key and compact right there.
    cluster_->kill(0);
    cluster_->restart(0);
    auto del = client_->remove("/lm/r/a");
    ASSERT_TRUE(del) << del.error().message();
    ASSERT_EQ(*del, *put + 1);
    cluster_->post(0, "/v3/kv/compaction",
                   R"({"revision":")" + std::to_string(*del) + R"(","physical":true})");

    const auto start = Clock::now();
    Result<std::vector<Event>> r = std::vector<Event>{};
    while (r && r->empty() && since(start) < seconds(5)) {
        r = w->next(milliseconds(200));
    }
    ASSERT_FALSE(r) << "the watch resumed without the delete: " << r->size() << " events";
    EXPECT_EQ(r.error().code(), EtcdErrc::Compacted);
}

TEST_F(EtcdClientTest, WatchThatHasDeliveredNothingResumesFromWhereItWasAsked) {
    auto w = client_->watch("/lm/empty/", 1);
    ASSERT_TRUE(test::eventually([&] { return w->next(milliseconds(50)) && w->connected(); },
                                 seconds(5), milliseconds(1)));
    cluster_->kill(0);  // the stream breaks before it delivered anything
    cluster_->restart(0);
    ASSERT_TRUE(client_->put("/lm/empty/a", "1"));  // made while the watch is away

    const auto events = gather(*w, atLeast(1), milliseconds(3000));
    ASSERT_EQ(events.size(), 1u) << "the put made during the break was lost";
    EXPECT_EQ(events[0].kv.key, "/lm/empty/a");
}

TEST(EtcdClientWatchTest, NextKeepsToItsWaitWhileNoMemberAnswers) {
    auto client = openClient({"http://127.0.0.1:" + std::to_string(test::freePort())});
    auto w = client->watch("/lm/", 1);
    for (int i = 0; i < 5; ++i) {
        const auto start = Clock::now();
        auto r = w->next(milliseconds(100));
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_TRUE(r->empty());
        EXPECT_LT(since(start), milliseconds(600));  // wait 100 ms, slack for a loaded host
        EXPECT_FALSE(w->connected());
    }
}

TEST_F(EtcdClientTest, WakeEndsAWaitingNextAtOnce) {
    auto w = client_->watch("/lm/idle/", 0);
    std::thread waker([&] {
        std::this_thread::sleep_for(milliseconds(100));
        w->wake();
    });
    const auto start = Clock::now();
    auto r = w->next(seconds(10));
    waker.join();
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(r->empty());
    EXPECT_LT(since(start), seconds(2));
}

TEST(EtcdClientOpenTest, RefusesEndpointsThatAreNotPlainUrls) {
    for (const std::string bad : {"127.0.0.1:2379", "http://127.0.0.1:2379/v3", "ftp://h:1",
                                  "http://user@h:1", "http://h:0", "http://h:99999", "",
                                  "http://:1", "http://[::1]x:1", "http://h:1 ", "http://h:-1",
                                  "http://h\n:1", "http://[]:1", "https://h"}) {
        ClientConfig config;
        config.endpoints = {bad};
        auto c = Client::open(config);
        ASSERT_FALSE(c) << bad;
        EXPECT_EQ(c.error().code(), Errc::Invalid) << bad;
    }
    for (const std::string good : {"http://127.0.0.1:2379", "https://etcd-0.example:443",
                                   "http://[::1]:2379"}) {
        ClientConfig config;
        config.endpoints = {good};
        EXPECT_TRUE(Client::open(config)) << good;
    }
    ClientConfig missing;
    missing.endpoints = {"https://127.0.0.1:1"};
    missing.tls.caFile = "/nonexistent/ca.pem";
    auto c = Client::open(missing);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code(), Errc::Invalid);
}

TEST(EtcdClientOpenTest, NothingListeningIsUnreachableAtOnce) {
    auto client = openClient({"http://127.0.0.1:" + std::to_string(test::freePort()),
                              "http://127.0.0.1:" + std::to_string(test::freePort())});
    const auto start = Clock::now();
    auto r = client->put("/lm/x", "y");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EtcdErrc::Unreachable);
    EXPECT_LT(since(start), milliseconds(500));
}

class EtcdClientTlsTest : public ::testing::Test {
protected:
    void SetUp() override {
        SKIP_WITHOUT_ETCD();
        cluster_ = std::make_unique<EtcdCluster>(1, true);
    }
    TlsFiles trusted() const {
        const auto& f = cluster_->clientFiles();
        return {f.caFile, f.certFile, f.keyFile};
    }
    std::unique_ptr<EtcdCluster> cluster_;
};

TEST_F(EtcdClientTlsTest, WorksWithATrustedClientCertificate) {
    auto client = openClient(cluster_->endpoints(), trusted());
    auto rev = client->put("/lm/tls", "v");
    ASSERT_TRUE(rev) << rev.error().message();
    auto w = client->watch("/lm/tls", *rev);
    const auto events = gather(*w, atLeast(1));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kv.value, "v");
}

TEST_F(EtcdClientTlsTest, RefusedClientCertificatesAreRejectedWithoutHanging) {
    const auto& f = cluster_->clientFiles();
    for (const TlsFiles& tls : {TlsFiles{f.caFile, "", ""},
                                TlsFiles{f.caFile, f.rogueCertFile, f.rogueKeyFile}}) {
        auto client = openClient(cluster_->endpoints(), tls);
        const auto start = Clock::now();
        auto r = client->put("/lm/tls", "v");
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EtcdErrc::Rejected) << r.error().message();
        EXPECT_LT(since(start), milliseconds(1000));
        std::cout << "refused " << (tls.certFile.empty() ? "without" : "rogue")
                  << " client certificate: " << r.error().message() << "\n";
    }
    // Our own CA does not vouch for the member: verification stays on.
    auto client = openClient(cluster_->endpoints(), TlsFiles{f.rogueCertFile, f.certFile,
                                                              f.keyFile});
    auto r = client->range("/lm/tls", false);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EtcdErrc::Rejected) << r.error().message();
}

class EtcdClientFailoverTest : public ::testing::Test {
protected:
    void SetUp() override {
        SKIP_WITHOUT_ETCD();
        cluster_ = std::make_unique<EtcdCluster>(3);
    }
    std::unique_ptr<EtcdCluster> cluster_;
};

// What a sequential writer saw: which keys it knows are written, and those it must re-read.
struct WriteLog {
    std::vector<std::string> acked;
    std::vector<std::string> unknown;
};

TEST_F(EtcdClientFailoverTest, LeaderKillKeepsWritesGoingAndTheWatchWhole) {
    const int leader = cluster_->leader();
    // The leader first: both the watch and the writes start on the member that dies.
    std::vector<std::string> endpoints = {cluster_->endpoint(leader)};
    for (int i = 0; i < cluster_->size(); ++i) {
        if (i != leader) {
            endpoints.push_back(cluster_->endpoint(i));
        }
    }
    auto client = openClient(endpoints, {}, milliseconds(1000));
    auto base = client->put("/lm/f/base", "0");
    ASSERT_TRUE(base) << base.error().message();
    auto w = client->watch("/lm/f/", *base + 1);
    ASSERT_EQ(client->currentEndpoint(), endpoints[0]);

    WriteLog log;
    Clock::time_point killedAt{};
    milliseconds gap{-1};
    std::vector<Event> events;
    auto drain = [&] {
        auto batch = w->next(milliseconds(0));
        ASSERT_TRUE(batch) << batch.error().message();
        events.insert(events.end(), batch->begin(), batch->end());
    };
    for (int n = 0; n < 60; ++n) {
        if (killedAt != Clock::time_point{} && since(killedAt) > seconds(10)) {
            break;
        }
        if (n == 20) {
            // The stream on the leader has delivered something: it must resume after that.
            const auto before = gather(*w, [&](const std::vector<Event>& e) {
                return events.size() + e.size() >= log.acked.size();
            });
            events.insert(events.end(), before.begin(), before.end());
            ASSERT_EQ(events.size(), 20u);
            cluster_->kill(leader);
            killedAt = Clock::now();
        }
        char key[32];
        std::snprintf(key, sizeof key, "/lm/f/k%03d", n);
        auto r = client->put(key, "v");
        if (r) {
            log.acked.push_back(key);
            if (killedAt != Clock::time_point{} && gap.count() < 0) {
                gap = since(killedAt);
            }
        } else {
            ASSERT_TRUE(r.error().code() == EtcdErrc::OutcomeUnknown ||
                        r.error().code() == EtcdErrc::NoLeader ||
                        r.error().code() == EtcdErrc::Unreachable)
                << r.error().message();
            if (r.error().code() == EtcdErrc::OutcomeUnknown) {
                log.unknown.push_back(key);
            }
        }
        drain();
    }
    ASSERT_GE(gap.count(), 0) << "no write succeeded after the leader was killed";
    std::cout << "leader kill: first successful write " << gap.count() << " ms after the kill; "
              << log.acked.size() << " writes acknowledged, " << log.unknown.size()
              << " with unknown outcome\n";
    EXPECT_LT(gap, seconds(5));
    EXPECT_NE(client->currentEndpoint(), endpoints[0]);

    // The truth: everything under the prefix after the base, in revision order.
    auto truth = client->range("/lm/f/k", true);
    ASSERT_TRUE(truth) << truth.error().message();
    const std::vector<std::string> expected = keysByRevision(truth->kvs);
    for (const auto& k : log.acked) {
        EXPECT_TRUE(std::find(expected.begin(), expected.end(), k) != expected.end()) << k;
    }
    expectWatchSawExactly(*w, events, expected, "the leader kill");
    EXPECT_TRUE(w->connected());
}

TEST_F(EtcdClientFailoverTest, WithoutQuorumWritesFailBoundedAndResumeWhenAMemberReturns) {
    const milliseconds requestTimeout(1500);
    auto client = openClient(cluster_->endpoints(), {}, requestTimeout);
    auto before = client->put("/lm/q/before", "1");
    ASSERT_TRUE(before);
    // On the survivor: its stream ends once it knows it has no leader, and must come back.
    auto w = client->watch("/lm/q/", *before + 1);
    std::vector<Event> events;
    auto drain = [&] {
        auto batch = w->next(milliseconds(0));
        ASSERT_TRUE(batch) << batch.error().message();
        events.insert(events.end(), batch->begin(), batch->end());
    };
    cluster_->kill(1);
    cluster_->kill(2);
    const auto killedAt = Clock::now();

    // Keys whose put answered NoLeader: etcd did not take them, so they must never appear.
    std::set<std::string> refused;
    int attempts = 0;
    auto write = [&](std::optional<std::error_code>* code) {
        const std::string key = "/lm/q/w" + std::to_string(attempts++);
        const auto start = Clock::now();
        auto r = client->put(key, "v");
        const auto took = since(start);
        *code = r ? std::nullopt : std::optional(r.error().code());
        if (code->has_value() && **code == EtcdErrc::NoLeader) {
            refused.insert(key);
        }
        std::cout << "without quorum, +" << since(killedAt).count() << " ms: put " << key
                  << " -> " << (r ? "ok" : r.error().message()) << " after " << took.count()
                  << " ms\n";
        return took;
    };
    std::optional<std::error_code> code;
    EXPECT_LT(write(&code), requestTimeout + milliseconds(500));
    ASSERT_TRUE(code.has_value());
    EXPECT_TRUE(*code == EtcdErrc::NoLeader || *code == EtcdErrc::OutcomeUnknown ||
                *code == EtcdErrc::Unreachable);
    // Once the survivor knows it has no leader it says so (hasleader header), still bounded.
    const bool saysNoLeader = test::eventually(
        [&] {
            EXPECT_LT(write(&code), requestTimeout + milliseconds(500));
            drain();
            return code == EtcdErrc::NoLeader;
        },
        seconds(8), milliseconds(100));
    EXPECT_TRUE(saysNoLeader);
    // Quorum is known lost: the next write is refused at once, not after the whole budget.
    EXPECT_LT(write(&code), milliseconds(300));
    EXPECT_TRUE(code == EtcdErrc::NoLeader);
    // Reads from the member's own copy still answer.
    auto stale = client->rangeSerializable("/lm/q/", true);
    ASSERT_TRUE(stale) << stale.error().message();
    EXPECT_EQ(stale->kvs.size(), 1u);

    const auto restartedAt = Clock::now();
    cluster_->restart(1);  // returns once the member is healthy, i.e. has a leader again
    const bool resumed = test::eventually([&] { return client->put("/lm/q/c", "v").has_value(); },
                                          seconds(5), milliseconds(20));
    EXPECT_TRUE(resumed);
    std::cout << "quorum back: writes resumed " << since(restartedAt).count()
              << " ms after the restart began\n";
    auto after = client->range("/lm/q/", true);
    ASSERT_TRUE(after) << after.error().message();
    std::set<std::string> present;
    for (const auto& kv : after->kvs) {
        present.insert(kv.key);
    }
    EXPECT_TRUE(present.count("/lm/q/before") && present.count("/lm/q/c"));
    for (const auto& k : refused) {
        EXPECT_FALSE(present.count(k)) << k << " was refused with NoLeader but got written";
    }
    expectWatchSawExactly(*w, events, keysByRevision(after->kvs, *before), "the outage");
}

}  // namespace
}  // namespace lastmile::ctrl::etcd
