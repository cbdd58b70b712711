// SPDX-License-Identifier: Apache-2.0
// lm-interception-bench: the CPU an intercepted connection costs over an explicit one (issue 12).
// A child process in a cgroup under host-mode interception opens connections one at a time,
// sends a byte, has it answered and closes: to the listener's own address (explicit), and to
// a virtual address the programs rewrite to it (intercepted), in interleaved rounds. Both ends
// are in the child, so its CPU time covers everything the kernel and the BPF programs do for a
// connection: connect4, sockops on both sockets, the socket storage, the tuple map.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
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

std::string cgroupMount() {
    std::ifstream mounts("/proc/self/mounts");
    std::string device, point, type, rest;
    while (mounts >> device >> point >> type && std::getline(mounts, rest)) {
        if (type == "cgroup2") {
            return point;
        }
    }
    return {};
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

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"CPU per connection, intercepted (host mode) against explicit"};
    int rounds = 7;
    int count = 5000;
    app.add_option("--rounds", rounds, "interleaved rounds of each kind")->check(CLI::Range(1, 99));
    app.add_option("--connections", count, "connections per round")
        ->check(CLI::Range(100, 1'000'000));
    CLI11_PARSE(app, argc, argv);

    const std::string mount = cgroupMount();
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
        UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in any{};
        any.sin_family = AF_INET;
        any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof any;
        const bool listening =
            ::bind(listener.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) == 0 &&
            ::listen(listener.get(), 128) == 0 &&
            ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&any), &length) == 0;
        const Endpoint direct = *Endpoint::parse("127.0.0.1", ntohs(any.sin_port));
        const Endpoint vip = *Endpoint::parse("10.255.77.1", 443);
        if (!listening) {
            std::perror("listening on 127.0.0.1");
        } else if (auto usable = interception->usable(lastmile::bpf::Mode::Host); !usable) {
            std::cerr << "host-mode interception is not usable: " << usable.error().message()
                      << "\n";
        } else if (auto added = interception->addHost(vip, direct); !added) {
            std::cerr << added.error().message() << "\n";
        } else if (const pid_t child = ::fork(); child == 0) {
            std::ofstream(cgroup + "/cgroup.procs") << ::getpid() << std::flush;
            measure(listener.get(), direct, count / 10);  // warm-up: caches, socket slabs
            measure(listener.get(), vip, count / 10);
            std::vector<double> explicitUs, interceptedUs;
            for (int r = 0; r < rounds; ++r) {
                explicitUs.push_back(measure(listener.get(), direct, count));
                interceptedUs.push_back(measure(listener.get(), vip, count));
            }
            const double e = median(explicitUs);
            const double i = median(interceptedUs);
            std::printf("| connect + first byte, one at a time | CPU µs per connection |\n"
                        "|---|---|\n"
                        "| explicit (127.0.0.1) | %.1f |\n"
                        "| intercepted (10.255.77.1:443, host mode) | %.1f |\n"
                        "| difference | %+.1f (%.2fx) |\n",
                        e, i, i - e, i / e);
            std::fflush(stdout);
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
