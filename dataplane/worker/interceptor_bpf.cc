// SPDX-License-Identifier: Apache-2.0
// Interceptor on bpf::Interception: net addresses become bpf Endpoints, modes map one to one.
#include "dataplane/worker/interceptor.h"

#include <netinet/in.h>

#include <array>

#include "base/log.h"
#include "base/text.h"
#include "bpf/interception.h"

namespace lastmile::dataplane {

namespace {

constexpr const char* kLog = "dataplane";

bpf::Mode toBpf(InterceptMode mode) {
    return mode == InterceptMode::Host ? bpf::Mode::Host : bpf::Mode::Routed;
}

Result<bpf::Endpoint> endpointOf(const net::SocketAddress& address) {
    return bpf::Endpoint::fromSockaddr(address.get(), address.length());
}

// Host mode rewrites a connect to this address: a wildcard listener is reached on loopback.
Result<bpf::Endpoint> hostTarget(const net::SocketAddress& listener) {
    const bool v6 = listener.family() == AF_INET6;
    auto target = endpointOf(listener);
    LM_TRY(target);
    const std::array<std::uint8_t, 16> any6{};
    auto any4 = std::array<std::uint8_t, 16>{};
    any4[10] = any4[11] = 0xff;
    if (target->bytes() == (v6 ? any6 : any4)) {
        return bpf::Endpoint::parse(v6 ? "::1" : "127.0.0.1", target->port());
    }
    return target;
}

}  // namespace

struct Interceptor::Impl {
    std::unique_ptr<bpf::Interception> bpf;
    std::uint32_t backendMark = 0;
    std::array<bool, kInterceptModes.size()> usable{};  // fixed at start: no copy per accept
};

Interceptor::Interceptor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Interceptor::~Interceptor() = default;

std::unique_ptr<Interceptor> Interceptor::start(const InterceptionOptions& options) {
    auto impl = std::make_unique<Impl>();
    bpf::Config config;
    config.cgroups = options.cgroups;
    config.interfaces = options.interfaces;
    impl->bpf = bpf::Interception::start(config);
    bool any = false;
    for (InterceptMode mode : kInterceptModes) {
        const Status status = impl->bpf->usable(toBpf(mode));
        impl->usable[static_cast<std::size_t>(mode)] = static_cast<bool>(status);
        any = any || static_cast<bool>(status);
        if (status) {
            LM_LOG(Info, kLog, modeName(mode) << "-mode interception is usable");
        } else {
            LM_LOG(Info, kLog, status.error().message());
        }
    }
    impl->backendMark = any ? config.backendMark : 0;
    return std::unique_ptr<Interceptor>(new Interceptor(std::move(impl)));
}

Status Interceptor::usable(InterceptMode mode) const { return impl_->bpf->usable(toBpf(mode)); }

std::uint32_t Interceptor::backendMark() const { return impl_->backendMark; }

Status Interceptor::prepareListener(int fd) const {
    if (!impl_->usable[static_cast<std::size_t>(InterceptMode::Routed)]) {
        return {};
    }
    return bpf::setTransparent(fd);
}

Result<std::vector<InterceptMode>> Interceptor::add(const net::SocketAddress& vip,
                                                    const net::SocketAddress& listener, int fd) {
    auto endpoint = endpointOf(vip);
    LM_TRY(endpoint);
    std::vector<InterceptMode> taken;
    std::vector<std::string> reasons;
    for (InterceptMode mode : kInterceptModes) {
        Status added;
        if (mode == InterceptMode::Host) {
            auto target = hostTarget(listener);
            added = target ? impl_->bpf->addHost(*endpoint, *target) : Status(fail(target.error()));
        } else {
            added = impl_->bpf->addRouted(*endpoint, fd);
        }
        if (added) {
            taken.push_back(mode);
        } else {
            reasons.push_back(added.error().context());
        }
    }
    if (taken.empty()) {
        return fail(Errc::Unavailable, join(reasons, "; "));
    }
    return taken;
}

void Interceptor::remove(const net::SocketAddress& vip, const std::vector<InterceptMode>& modes) {
    auto endpoint = endpointOf(vip);
    if (!endpoint) {
        return;
    }
    for (InterceptMode mode : modes) {
        if (auto s = impl_->bpf->remove(*endpoint, toBpf(mode)); !s) {
            LM_LOG(Warning, kLog, "removing virtual address " << vip.toString() << ": "
                                                              << s.error().message());
        }
    }
}

std::optional<InterceptMode> Interceptor::interceptedBy(int acceptedFd) const {
    for (InterceptMode mode : kInterceptModes) {
        if (impl_->usable[static_cast<std::size_t>(mode)] &&
            impl_->bpf->originalDestination(acceptedFd, toBpf(mode))) {
            return mode;
        }
    }
    return std::nullopt;
}

std::vector<InterceptAttachment> Interceptor::attachments() const {
    std::vector<InterceptAttachment> out;
    for (const auto& a : impl_->bpf->attachments()) {
        out.push_back({a.mode == bpf::Mode::Host ? InterceptMode::Host : InterceptMode::Routed,
                       a.program, a.target, a.attached});
    }
    return out;
}

InterceptCounters Interceptor::counters(InterceptMode mode) const {
    const bpf::Counters c = impl_->bpf->counters(toBpf(mode));
    return {c.redirected, c.refused};
}

}  // namespace lastmile::dataplane
