// SPDX-License-Identifier: Apache-2.0
// The two BPF objects (host.bpf.c, routed.bpf.c) loaded, their maps and their links.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "bpf/endpoint.h"
#include "bpf/interception.h"

struct lm_host;
struct lm_routed;

namespace lastmile::bpf {

// A bpf_link owned by this process and never pinned: the kernel detaches it when the fd
// closes, at the latest when the process dies, so a crash cannot leave interception behind.
struct Link {
    std::string program;
    std::string target;
    UniqueFd fd;
};

// Captures libbpf's messages (the verifier log among them) for as long as it lives, on this
// thread, so that a failure can say why; libbpf never writes to stderr on its own.
class LibbpfLog {
public:
    LibbpfLog();
    ~LibbpfLog();
    LibbpfLog(const LibbpfLog&) = delete;
    LibbpfLog& operator=(const LibbpfLog&) = delete;

    // The last lines captured (bounded: a verifier log can run to megabytes), or "".
    std::string tail() const;

private:
    std::string text_;
    std::string* previous_;
};

// Host mode: connect4/6, getpeername4/6 and sockops sharing the vips, origins and tuples maps.
class HostPrograms {
public:
    // Loads (verifies) the programs; sockets marked `backendMark` will never be redirected.
    static Result<std::unique_ptr<HostPrograms>> load(std::uint32_t backendMark);
    ~HostPrograms();

    // Every program on a cgroup whose processes' connects are intercepted.
    Status attachClients(int cgroupFd, const std::string& path);
    // sockops alone, on the cgroup of the listening sockets: PASSIVE_ESTABLISHED_CB runs in
    // the listener's cgroup, and only there can the origin move to the accepted socket.
    Status attachListeners(int cgroupFd, const std::string& path);

    Status add(const Endpoint& vip, const Endpoint& listener);
    Status remove(const Endpoint& vip);
    // From the accepted socket's storage, else from the tuple map (then the entry is
    // consumed); nullopt when the connection was not redirected.
    std::optional<Endpoint> originalDestination(int acceptedFd) const;

    const std::vector<Link>& links() const noexcept { return links_; }
    // Summed over CPUs.
    Counters counters() const;

private:
    struct Destroy {
        void operator()(lm_host* skeleton) const noexcept;
    };
    explicit HostPrograms(std::unique_ptr<lm_host, Destroy> skeleton);
    Status attach(const char* program, int cgroupFd, const std::string& path);

    std::unique_ptr<lm_host, Destroy> skeleton_;
    std::vector<Link> links_;
};

// Routed mode: sk_lookup steering into a sockmap of listeners, and the tc program that marks
// the packets the policy rule delivers locally.
class RoutedPrograms {
public:
    // `deliverMark`: the fwmark the tc program sets. `filterInterfaces` false lets
    // BPF_PROG_TEST_RUN (which refuses an ingress ifindex) reach the lookup.
    static Result<std::unique_ptr<RoutedPrograms>> load(std::uint32_t deliverMark,
                                                        bool filterInterfaces);
    ~RoutedPrograms();

    Status allowInterface(std::uint32_t ifindex);
    // sk_lookup on the network namespace `netnsFd`.
    Status attachNamespace(int netnsFd, const std::string& name);
    // The marking program on ingress of `ifindex`, by a tcx link (Linux 6.6+).
    Status attachIngress(std::uint32_t ifindex, const std::string& name);

    // `listenerFd` must be a listening TCP socket; one sockmap slot per listener, shared
    // by its virtual addresses and freed with the last of them.
    Status add(const Endpoint& vip, int listenerFd);
    Status remove(const Endpoint& vip);

    int lookupProgramFd() const noexcept;
    const std::vector<Link>& links() const noexcept { return links_; }
    // Summed over CPUs.
    Counters counters() const;
    // Closes the tcx links first: marking stops before anything else goes away.
    void detachIngress() noexcept;

private:
    struct Destroy {
        void operator()(lm_routed* skeleton) const noexcept;
    };
    explicit RoutedPrograms(std::unique_ptr<lm_routed, Destroy> skeleton);

    std::unique_ptr<lm_routed, Destroy> skeleton_;
    std::vector<Link> links_;
    std::map<Endpoint, std::uint32_t> slotOf_;
    std::vector<std::uint64_t> slotCookies_;  // SO_COOKIE per sockmap slot, 0 when free
};

}  // namespace lastmile::bpf
