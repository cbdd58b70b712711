// SPDX-License-Identifier: Apache-2.0
// EtcdCluster: 1 or 3 real etcd members on free loopback ports with temporary data dirs, for
// tests that kill, restart and talk to them (optionally over TLS with client certificates).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace lastmile::test {

// PEM files a client presents to a TLS cluster.
struct EtcdClientFiles {
    std::string caFile;    // the CA that issued the members' server certificate
    std::string certFile;  // a client certificate the members trust
    std::string keyFile;
    std::string rogueCertFile;  // a client certificate from another CA: refused
    std::string rogueKeyFile;
};

class EtcdCluster {
public:
    static constexpr const char* kBinary = "/usr/bin/etcd";
    // False when etcd is not installed: tests GTEST_SKIP with that reason.
    static bool available();

    // Starts `members` members (1 or 3) and waits up to 10 s until each reports healthy.
    // With `tls`, clients must use https and a client certificate (clientFiles()).
    // Throws std::runtime_error on failure, with the members' log tails.
    explicit EtcdCluster(int members, bool tls = false);
    ~EtcdCluster();  // SIGKILLs every member and removes the data dirs
    EtcdCluster(const EtcdCluster&) = delete;
    EtcdCluster& operator=(const EtcdCluster&) = delete;

    int size() const { return static_cast<int>(members_.size()); }
    // Client URLs ("http://127.0.0.1:PORT" or https), in member order.
    std::vector<std::string> endpoints() const;
    const std::string& endpoint(int i) const;
    const EtcdClientFiles& clientFiles() const { return files_; }

    void kill(int i);     // SIGKILL, then reap
    void restart(int i);  // the same command on the same data dir; waits until healthy
    bool running(int i) const;
    // The index of the member the running members agree is leader; waits up to `timeout`
    // for one. Throws when there is none in time.
    int leader(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    // True when member i answers /health with "true" (it is up and has a leader).
    bool healthy(int i) const;
    // POSTs `body` to member i's gateway at `path` (e.g. "/v3/kv/compaction") for what the
    // client under test does not do; returns the reply body, throws unless HTTP 200.
    std::string post(int i, const std::string& path, const std::string& body) const;
    // The last bytes of member i's log, for failure messages.
    std::string logTail(int i) const;

private:
    struct Member {
        std::string name;
        std::string clientUrl;
        std::string dir;  // logs here, data in dir/data
        std::vector<std::string> argv;
        std::unique_ptr<ChildProcess> process;
    };

    void start(int i);
    void waitHealthy(int i, std::chrono::milliseconds timeout);

    TempDir dir_;
    EtcdClientFiles files_;
    std::vector<Member> members_;
};

}  // namespace lastmile::test
