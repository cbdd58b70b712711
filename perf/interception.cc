// SPDX-License-Identifier: Apache-2.0
// lm-interception-bench: the CPU an intercepted connection costs over an explicit one (issue 12).
// Connections are opened one at a time (connect, a byte each way, close) to the listener's own
// address (explicit) and to a virtual address the programs take to it (intercepted), in
// interleaved rounds, with both ends in one process, so its CPU time covers everything the
// kernel and the BPF programs do for a connection.
// Host mode: the process is in a cgroup under interception (connect4, sockops on both sockets,
// the socket storage, the tuple map). Routed mode: the client's sockets live in a network
// namespace joined by a veth pair to the appliance's, where the listener is (the tc program's
// mark, the local-delivery rule, sk_lookup).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "bpf/interception.h"

namespace {

using lastmile::UniqueFd;
using lastmile::bpf::Endpoint;

double cpuSeconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One connection: connect, a byte each way, close; false on any failure.
bool roundTrip(int listener, const Endpoint& to) {
    socklen_t length = 0;
    const sockaddr_storage address = to.toSockaddr(length);
    UniqueFd client(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!client.valid() ||
        ::connect(client.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
        return false;
    }
    // Loopback completes the handshake within connect(): the accept does not wait.
    UniqueFd server(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    char byte = 'x';
    return server.valid() && ::write(client.get(), &byte, 1) == 1 &&
           ::read(server.get(), &byte, 1) == 1 && ::write(server.get(), &byte, 1) == 1 &&
           ::read(client.get(), &byte, 1) == 1;
}

// CPU µs per connection over `count` connections to `to`.
double measure(int listener, const Endpoint& to, int count) {
    const double before = cpuSeconds();
    for (int i = 0; i < count; ++i) {
        if (!roundTrip(listener, to)) {
            std::perror(("connection to " + to.toString()).c_str());
            std::exit(1);
        }
    }
    return (cpuSeconds() - before) * 1e6 / count;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Warms up, then measures `rounds` interleaved rounds of each kind and prints the table.
void compare(int listener, const Endpoint& direct, const Endpoint& vip, const std::string& mode,
             int rounds, int count) {
    measure(listener, direct, count / 10);  // warm-up: caches, socket slabs, neighbours
    measure(listener, vip, count / 10);
    std::vector<double> explicitUs, interceptedUs;
    for (int r = 0; r < rounds; ++r) {
        explicitUs.push_back(measure(listener, direct, count));
        interceptedUs.push_back(measure(listener, vip, count));
    }
    const double e = median(explicitUs);
    const double i = median(interceptedUs);
    std::printf("| connect + first byte, one at a time | CPU µs per connection |\n"
                "|---|---|\n"
                "| explicit (%s) | %.1f |\n"
                "| intercepted (%s, %s mode) | %.1f |\n"
                "| difference | %+.1f (%.2fx) |\n",
                direct.toString().c_str(), e, vip.toString().c_str(), mode.c_str(), i, i - e,
                i / e);
    std::fflush(stdout);
}

// A TCP listener on `ip` (any port), IP_TRANSPARENT first when asked; invalid on failure.
UniqueFd listenOn(const char* ip, bool transparent) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip, &address.sin_addr);
    if (!fd.valid() || (transparent && !lastmile::bpf::setTransparent(fd.get())) ||
        ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd.get(), 128) != 0) {
        std::perror("listening");
        return {};
    }
    return fd;
}

// Why the measurement cannot run ("" when it can): no listener, the mode unusable, or the
// virtual address refused by `add`.
std::string problem(const lastmile::bpf::Interception& interception, lastmile::bpf::Mode mode,
                    const UniqueFd& listener, const std::function<lastmile::Status()>& add) {
    if (!listener.valid()) {
        return "no listener";
    }
    if (auto usable = interception.usable(mode); !usable) {
        return "interception is not usable: " + usable.error().message();
    }
    if (auto added = add(); !added) {
        return added.error().message();
    }
    return {};
}

std::uint16_t portOf(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

int hostMode(int rounds, int count) {
    const std::string mount = lastmile::bpf::cgroupV2Mount();
    if (mount.empty()) {
        std::cerr << "no cgroup v2 mount in /proc/mounts\n";
        return 1;
    }
    const std::string cgroup = mount + "/lm-interception-bench-" + std::to_string(::getpid());
    if (::mkdir(cgroup.c_str(), 0755) != 0) {
        std::perror(("creating " + cgroup).c_str());
        return 1;
    }
    int status = 1;
    {
        auto interception = lastmile::bpf::Interception::start({.cgroups = {cgroup}});
        UniqueFd listener = listenOn("127.0.0.1", false);
        const Endpoint direct = *Endpoint::parse("127.0.0.1", portOf(listener.get()));
        const Endpoint vip = *Endpoint::parse("10.255.77.1", 443);
        const std::string cannot =
            problem(*interception, lastmile::bpf::Mode::Host, listener,
                    [&] { return interception->addHost(vip, direct); });
        if (!cannot.empty()) {
            std::cerr << cannot << "\n";
        } else if (const pid_t child = ::fork(); child == 0) {
            // Sockets belong to the cgroup their process was in when it made them.
            std::ofstream(cgroup + "/cgroup.procs") << ::getpid() << std::flush;
            compare(listener.get(), direct, vip, "host", rounds, count);
            ::_exit(0);
        } else {
            int wstatus = 0;
            ::waitpid(child, &wstatus, 0);
            status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 1;
        }
    }
    ::rmdir(cgroup.c_str());
    return status;
}

// Two network namespaces, "client" and "appliance", joined by a veth pair; deleted (with the
// pair) on destruction.
class Topology {
public:
    Topology() : suffix_(std::to_string(::getpid())) {
        ok_ = ip("netns add " + client()) && ip("netns add " + appliance()) &&
              ip("-n " + client() + " link add c0 type veth peer name a0 netns " + appliance()) &&
              ip("-n " + client() + " addr add 10.77.1.2/24 dev c0") &&
              ip("-n " + appliance() + " addr add 10.77.1.1/24 dev a0") &&
              ip("-n " + client() + " link set c0 up") &&
              ip("-n " + client() + " link set lo up") &&
              ip("-n " + appliance() + " link set a0 up") &&
              ip("-n " + appliance() + " link set lo up") &&
              ip("-n " + client() + " route add default via 10.77.1.1");
    }
    ~Topology() {
        ip("netns del " + client());
        ip("netns del " + appliance());
    }
    bool ok() const { return ok_; }
    std::string client() const { return "lmbench-c-" + suffix_; }
    std::string appliance() const { return "lmbench-a-" + suffix_; }

    // Moves the calling thread into namespace `name`.
    static bool enter(const std::string& name) {
        UniqueFd ns(::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC));
        return ns.valid() && ::setns(ns.get(), CLONE_NEWNET) == 0;
    }

private:
    static bool ip(const std::string& args) {
        return std::system(("ip " + args + " >/dev/null 2>&1").c_str()) == 0;
    }

    std::string suffix_;
    bool ok_ = false;
};

int routedMode(int rounds, int count) {
    UniqueFd home(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    Topology topology;
    if (!topology.ok() || !Topology::enter(topology.appliance())) {
        std::cerr << "building the namespaces failed (iproute2, root)\n";
        return 1;
    }
    int status = 1;
    {
        // Routed mode attaches to the calling thread's namespace: the appliance's.
        auto interception = lastmile::bpf::Interception::start({.interfaces = {"a0"}});
        UniqueFd listener = listenOn("0.0.0.0", true);
        const Endpoint direct = *Endpoint::parse("10.77.1.1", portOf(listener.get()));
        const Endpoint vip = *Endpoint::parse("10.77.2.2", 443);
        const std::string cannot =
            problem(*interception, lastmile::bpf::Mode::Routed, listener,
                    [&] { return interception->addRouted(vip, listener.get()); });
        if (!cannot.empty()) {
            std::cerr << cannot << "\n";
        } else if (Topology::enter(topology.client())) {
            // Sockets stay in the namespace they were made in: the listener in the
            // appliance's, the clients from here on in the client's.
            compare(listener.get(), direct, vip, "routed", rounds, count);
            status = 0;
        }
        Topology::enter(topology.appliance());  // the interception is undone where it was made
    }
    ::setns(home.get(), CLONE_NEWNET);
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"CPU per connection, intercepted against explicit"};
    int rounds = 7;
    int count = 5000;
    std::string mode = "host";
    app.add_option("--mode", mode, "host (a cgroup on this host) or routed (through a veth)")
        ->check(CLI::IsMember({"host", "routed"}));
    app.add_option("--rounds", rounds, "interleaved rounds of each kind")->check(CLI::Range(1, 99));
    app.add_option("--connections", count, "connections per round")
        ->check(CLI::Range(100, 1'000'000));
    CLI11_PARSE(app, argc, argv);
    return mode == "host" ? hostMode(rounds, count) : routedMode(rounds, count);
}
