// SPDX-License-Identifier: Apache-2.0
// Interceptor: the dataplane's side of bpf/ interception, whether or not this build has it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "dataplane/net/socket.h"
#include "dataplane/worker/options.h"

namespace lastmile::dataplane {

enum class InterceptMode : std::uint8_t { Host, Routed };
inline constexpr std::array<InterceptMode, 2> kInterceptModes{InterceptMode::Host,
                                                              InterceptMode::Routed};
// "host", "routed": the metric label and what status shows.
constexpr std::string_view modeName(InterceptMode mode) {
    return mode == InterceptMode::Host ? "host" : "routed";
}

// What the programs of one mode counted.
struct InterceptCounters {
    std::uint64_t redirected = 0;  // connects rewritten (host) / SYNs steered (routed)
    std::uint64_t refused = 0;     // matched but left alone (no socket, origin not storable)
};

// The links of one program on one target, as this process holds them.
struct InterceptAttachment {
    InterceptMode mode;
    std::string program;
    std::string target;  // a cgroup path, "net:[inode]", an interface name
    bool attached;
};

// Built with the bpf feature it drives bpf::Interception; without it every mode is unusable
// and says so. Thread-safe: bind() registers from the control thread, workers classify.
class Interceptor {
public:
    // Loads and attaches what `options` asks for, on the calling thread's network namespace
    // (call it before the workers start); logs whether each mode is usable.
    static std::unique_ptr<Interceptor> start(const InterceptionOptions& options);
    ~Interceptor();  // detaches everything
    Interceptor(const Interceptor&) = delete;
    Interceptor& operator=(const Interceptor&) = delete;

    // Why `mode` cannot take virtual addresses, or success.
    Status usable(InterceptMode mode) const;
    // SO_MARK for backend sockets, which the programs never intercept; 0 when no mode is
    // usable (then nothing could intercept them, and setting a mark needs CAP_NET_ADMIN).
    std::uint32_t backendMark() const;
    // Before listen() on a socket that will take virtual addresses: routed mode needs
    // IP_TRANSPARENT. Succeeds without doing anything when routed mode is unusable.
    Status prepareListener(int fd) const;
    // Registers `vip` (port included) with every usable mode for the listening socket `fd`
    // bound to `listener` (a wildcard means its loopback address for host mode). Returns the
    // modes that took it; fails with every mode's reason when none did.
    Result<std::vector<InterceptMode>> add(const net::SocketAddress& vip,
                                           const net::SocketAddress& listener, int fd);
    // Unregisters `vip` from `modes`: call it before the listener's socket closes, so no
    // connection is steered to a socket that is gone.
    void remove(const net::SocketAddress& vip, const std::vector<InterceptMode>& modes);
    // The mode that took over an accepted connection, nullopt when it was not intercepted.
    // A map lookup (host), then getsockname (routed): only for listeners with virtual
    // addresses.
    std::optional<InterceptMode> interceptedBy(int acceptedFd) const;

    std::vector<InterceptAttachment> attachments() const;
    InterceptCounters counters(InterceptMode mode) const;

private:
    struct Impl;
    explicit Interceptor(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace lastmile::dataplane
