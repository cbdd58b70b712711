// SPDX-License-Identifier: Apache-2.0
// Real-kernel scaffolding for the interception tests: network namespaces, cgroups, sockets.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "bpf/endpoint.h"

namespace lastmile::test {

// Why the interception tests cannot run here, or nullopt: they need root (CAP_BPF,
// CAP_NET_ADMIN, CAP_SYS_ADMIN for namespaces and cgroups) and a cgroup v2 mount.
std::optional<std::string> kernelEnvMissing();

// Runs `ip ARGS...` (iproute2) to completion; throws when it fails.
void ip(const std::vector<std::string>& args);
// Its standard output.
std::string ipOutput(const std::vector<std::string>& args);

// A named network namespace ("ip netns add"), unique to this process, deleted on
// destruction with every interface, route and rule in it.
class Netns {
public:
    explicit Netns(const std::string& role);
    ~Netns();
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;

    const std::string& name() const { return name_; }
    int fd() const { return fd_.get(); }
    ino_t inode() const;
    // `ip -n NAME ARGS...`
    void ip(const std::vector<std::string>& args) const;

private:
    std::string name_;
    UniqueFd fd_;
};

// Moves the calling thread into `netns` for its lifetime, then back. Sockets keep the
// namespace they were created in.
class InNetns {
public:
    explicit InNetns(const Netns& netns);
    ~InNetns();
    InNetns(const InNetns&) = delete;
    InNetns& operator=(const InNetns&) = delete;

private:
    UniqueFd previous_;
};

// A cgroup v2 subtree unique to this process, with named children. Tracks where this
// process was, moves it back and removes the subtree on destruction.
class TestCgroup {
public:
    explicit TestCgroup(const std::vector<std::string>& children);
    ~TestCgroup();
    TestCgroup(const TestCgroup&) = delete;
    TestCgroup& operator=(const TestCgroup&) = delete;

    static std::string mount();
    const std::string& root() const { return root_; }
    std::string path(const std::string& child) const { return root_ + "/" + child; }
    // Moves this whole process into `child` ("" for root()); sockets created now belong to it.
    void enter(const std::string& child) const;

private:
    std::string original_;
    std::string root_;
    std::vector<std::string> children_;
};

// A listening TCP socket on `address` (port 0 for any), optionally with IP_TRANSPARENT.
UniqueFd listenOn(const bpf::Endpoint& address, bool transparent = false);
// A TCP socket of `family`, with SO_MARK `mark` unless 0.
UniqueFd tcpSocket(int family, std::uint32_t mark = 0);
// Connects `fd` within `timeout`; the errno of the failure otherwise (ETIMEDOUT on timeout).
Status connectWithin(int fd, const bpf::Endpoint& to,
                     std::chrono::milliseconds timeout = std::chrono::seconds(3));
// Accepts one connection from `listener` if one arrives within `timeout`.
std::optional<UniqueFd> acceptWithin(int listener,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(3));

}  // namespace lastmile::test
