// SPDX-License-Identifier: Apache-2.0
// Interception: connections to virtual addresses taken over by lastmile listeners (issue 12).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "bpf/endpoint.h"

namespace lastmile::bpf {

class HostPrograms;
class RoutedPrograms;
class LocalDelivery;

enum class Mode { Host, Routed };

// What the programs counted (enum lm_counter in include/interception_abi.h).
struct Counters {
    std::uint64_t redirected = 0;     // connects rewritten (host) / SYNs steered (routed)
    std::uint64_t skippedByMark = 0;  // host: lastmiled's own (marked) connects left alone
    std::uint64_t refused = 0;        // matched but left alone: origin not storable, no socket
};

// The daemon's `interception:` key.
struct Config {
    // Host mode: cgroup v2 directories (absolute paths) whose processes' connects to a
    // virtual address go to a listener. Empty: host mode is off.
    std::vector<std::string> cgroups;
    // Routed mode: interfaces whose arriving SYNs for a virtual address go to a listener.
    // Empty: routed mode is off.
    std::vector<std::string> interfaces;
    // SO_MARK on lastmiled's backend sockets: never intercepted, so lastmiled cannot loop
    // into itself when a backend's own address is a virtual address.
    std::uint32_t backendMark = 0x4c4d;
    // Routed mode: the fwmark that selects local delivery, and the rule and table carrying
    // it. The mark must differ from backendMark, or backend connects would be delivered
    // locally too.
    std::uint32_t routedMark = 0x4c4e;
    std::uint32_t routedTable = 0x4c4d;
    std::uint32_t routedRulePriority = 0x4c4d;
};

class Interception {
public:
    // Loads and attaches what `config` asks for. Never fails as a whole: a mode that cannot
    // work (missing capabilities, a kernel without a program type or without tcx links, a
    // cgroup that does not exist or holds this very process, an unknown interface) is
    // unusable and usable(mode) says why. Links are not pinned: they die with the process.
    // Routed mode attaches to the network namespace of the calling thread.
    static std::unique_ptr<Interception> start(const Config& config);
    // Detaches everything; removes the rule and route routed mode installed.
    ~Interception();
    Interception(const Interception&) = delete;
    Interception& operator=(const Interception&) = delete;

    Status usable(Mode mode) const;

    // Host mode: connects to `vip` from the configured cgroups go to `listener`, an address
    // this host listens on. An IPv4 virtual address needs an IPv4 listener.
    Status addHost(const Endpoint& vip, const Endpoint& listener);
    // Routed mode: SYNs for `vip` arriving on the configured interfaces are steered into
    // `listenerFd`, a listening TCP socket with IP_TRANSPARENT (setTransparent); an IPv6
    // virtual address needs an IPv6 listener.
    Status addRouted(const Endpoint& vip, int listenerFd);
    Status remove(const Endpoint& vip, Mode mode);

    // The destination the client asked for, by the accepted fd: host mode from the socket's
    // storage, else the 4-tuple map; routed mode its getsockname() when that is a virtual
    // address. nullopt: the connection was not intercepted.
    std::optional<Endpoint> originalDestination(int acceptedFd, Mode mode) const;

    // Per program and target (cgroup, namespace, interface), from this process's own link
    // fds: enumerating the kernel's would need CAP_SYS_ADMIN.
    struct Attachment {
        Mode mode;
        std::string program;
        std::string target;
        bool attached;
    };
    std::vector<Attachment> attachments() const;

    Counters counters(Mode mode) const;

private:
    explicit Interception(const Config& config);
    Status startHost();
    Status startRouted();
    // Undoes what startRouted() did, marking first; also after a partial start.
    void stopRouted() noexcept;

    const Config config_;
    Status host_;
    Status routed_;
    std::unique_ptr<HostPrograms> hostPrograms_;
    std::unique_ptr<RoutedPrograms> routedPrograms_;
    std::unique_ptr<LocalDelivery> delivery_;

    mutable std::mutex mutex_;  // the tables below and map updates, across threads
    std::map<Endpoint, Endpoint> hostVips_;
    std::map<Endpoint, Endpoint> routedVips_;  // vip -> listener's own address
};

// Where cgroup v2 is mounted (the hybrid layouts put it under /sys/fs/cgroup/unified), from
// /proc/self/mounts; empty without one.
std::string cgroupV2Mount();

// IP_TRANSPARENT (IPV6_TRANSPARENT on an IPv6 socket), which a routed-mode listener needs:
// its accepted sockets carry the virtual address as their local address, which is not an
// address of this host. Set it before listen(). Needs CAP_NET_ADMIN (or CAP_NET_RAW).
Status setTransparent(int fd);

}  // namespace lastmile::bpf
