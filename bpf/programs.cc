// SPDX-License-Identifier: Apache-2.0
// Loading the interception objects, updating their maps and owning their links.
#include "bpf/programs.h"

#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "bpf/include/interception_abi.h"
#include "bpf/skeletons.h"

static_assert(sizeof(lm_endpoint) == 20);
static_assert(sizeof(lm_origin) == 28);
static_assert(sizeof(lm_tuple) == 36);

namespace lastmile::bpf {
namespace {

// tcx (Linux 6.6) is newer than the UAPI headers of the build host (Debian 12: 6.1).
constexpr int kTcxIngress = 46;
constexpr std::size_t kLogTail = 2000;
// The kernel's internal ENOTSUPP, which reaches userspace from BPF syscalls as is.
constexpr int kKernelNotSupported = 524;

thread_local std::string* libbpfSink = nullptr;

int printToSink(libbpf_print_level level, const char* format, va_list args) {
    if (libbpfSink == nullptr || level == LIBBPF_DEBUG) {
        return 0;
    }
    char line[1024];
    const int n = std::vsnprintf(line, sizeof(line), format, args);
    if (n > 0) {
        libbpfSink->append(line, std::min(static_cast<std::size_t>(n), sizeof(line) - 1));
    }
    return n;
}

lm_endpoint toAbi(const Endpoint& e) {
    lm_endpoint out{};
    std::memcpy(out.addr, e.bytes().data(), sizeof(out.addr));
    out.port = e.port();
    return out;
}

Endpoint fromAbi(const lm_endpoint& e) {
    std::array<std::uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), e.addr, bytes.size());
    return Endpoint::fromBytes(bytes, e.port);
}

// libbpf reports -errno; the verifier's reasons are in `log`.
Unexpected<Error> loadFailure(int rc, const std::string& what, const LibbpfLog& log) {
    std::string context = "loading the " + what + " programs";
    const int err = rc < 0 ? -rc : errno;
    if (err == EPERM) {
        context += ": missing capabilities CAP_BPF and CAP_NET_ADMIN";
    } else if (err == EINVAL || err == kKernelNotSupported || err == EOPNOTSUPP) {
        context += ": the kernel lacks a program or attach type they need";
    } else if (err == EACCES) {
        context += ": the verifier rejected them";
    }
    const std::string tail = log.tail();
    if (!tail.empty()) {
        context += " (libbpf: " + tail + ")";
    }
    return fail(std::error_code(err, std::generic_category()), context);
}

Result<UniqueFd> link(int programFd, int targetFd, int attachType) {
    const int fd = ::bpf_link_create(programFd, targetFd, static_cast<bpf_attach_type>(attachType),
                                     nullptr);
    if (fd < 0) {
        return fail(std::error_code(-fd, std::generic_category()), "creating a bpf_link");
    }
    return UniqueFd(fd);
}

Counters sumCounters(const bpf_map* map) {
    Counters out;
    const int cpus = ::libbpf_num_possible_cpus();
    if (cpus <= 0) {
        return out;
    }
    std::vector<std::uint64_t> perCpu(static_cast<std::size_t>(cpus));
    std::uint64_t* fields[LM_COUNT_MAX] = {&out.redirected, &out.skippedByMark, &out.refused};
    for (std::uint32_t i = 0; i < LM_COUNT_MAX; ++i) {
        if (::bpf_map_lookup_elem(::bpf_map__fd(map), &i, perCpu.data()) != 0) {
            continue;
        }
        for (std::uint64_t v : perCpu) {
            *fields[i] += v;
        }
    }
    return out;
}

}  // namespace

LibbpfLog::LibbpfLog() : previous_(libbpfSink) {
    static std::once_flag installed;
    std::call_once(installed, [] { ::libbpf_set_print(printToSink); });
    libbpfSink = &text_;
}

LibbpfLog::~LibbpfLog() { libbpfSink = previous_; }

std::string LibbpfLog::tail() const {
    std::string out = text_.size() > kLogTail ? text_.substr(text_.size() - kLogTail) : text_;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    for (char& c : out) {
        if (c == '\n') {
            c = ' ';
        }
    }
    return out;
}

// ---- host mode ----

void HostPrograms::Destroy::operator()(lm_host* skeleton) const noexcept {
    lm_host__destroy(skeleton);
}

HostPrograms::HostPrograms(std::unique_ptr<lm_host, Destroy> skeleton)
    : skeleton_(std::move(skeleton)) {}

HostPrograms::~HostPrograms() {
    links_.clear();  // detach before the programs and maps go
}

Result<std::unique_ptr<HostPrograms>> HostPrograms::load(std::uint32_t backendMark) {
    LibbpfLog log;
    std::unique_ptr<lm_host, Destroy> skeleton(lm_host__open());
    if (!skeleton) {
        return loadFailure(-errno, "host-mode", log);
    }
    skeleton->rodata->backend_mark = backendMark;
    if (const int rc = lm_host__load(skeleton.get()); rc != 0) {
        return loadFailure(rc, "host-mode", log);
    }
    return std::unique_ptr<HostPrograms>(new HostPrograms(std::move(skeleton)));
}

Status HostPrograms::attach(const char* program, int cgroupFd, const std::string& path) {
    bpf_program* prog = ::bpf_object__find_program_by_name(skeleton_->obj, program);
    auto fd = link(::bpf_program__fd(prog), cgroupFd, ::bpf_program__expected_attach_type(prog));
    if (!fd) {
        return fail(fd.error().code(), std::string("attaching ") + program + " to " + path);
    }
    links_.push_back({program, path, std::move(*fd)});
    return {};
}

Status HostPrograms::attachClients(int cgroupFd, const std::string& path) {
    for (const char* program :
         {"lm_connect4", "lm_connect6", "lm_getpeername4", "lm_getpeername6", "lm_sockops"}) {
        LM_TRY(attach(program, cgroupFd, path));
    }
    return {};
}

Status HostPrograms::attachListeners(int cgroupFd, const std::string& path) {
    return attach("lm_sockops", cgroupFd, path);
}

Status HostPrograms::add(const Endpoint& vip, const Endpoint& listener) {
    const lm_endpoint key = toAbi(vip);
    const lm_endpoint value = toAbi(listener);
    if (::bpf_map_update_elem(::bpf_map__fd(skeleton_->maps.vips), &key, &value, BPF_ANY) != 0) {
        return failErrno("adding " + vip.toString() + " to the host-mode map");
    }
    return {};
}

Status HostPrograms::remove(const Endpoint& vip) {
    const lm_endpoint key = toAbi(vip);
    if (::bpf_map_delete_elem(::bpf_map__fd(skeleton_->maps.vips), &key) != 0) {
        return failErrno("removing " + vip.toString() + " from the host-mode map");
    }
    return {};
}

std::optional<Endpoint> HostPrograms::originalDestination(int acceptedFd) const {
    lm_origin origin{};
    // Socket storage is keyed by the fd in the caller's process.
    if (::bpf_map_lookup_elem(::bpf_map__fd(skeleton_->maps.origins), &acceptedFd, &origin) == 0 &&
        origin.side == LM_SIDE_ACCEPTED) {
        return fromAbi(origin.dst);
    }
    auto peer = Endpoint::peerOf(acceptedFd);
    auto local = Endpoint::localOf(acceptedFd);
    if (!peer || !local) {
        return std::nullopt;
    }
    lm_tuple tuple{};
    std::memcpy(tuple.client, peer->bytes().data(), sizeof(tuple.client));
    std::memcpy(tuple.listener, local->bytes().data(), sizeof(tuple.listener));
    tuple.client_port = peer->port();
    tuple.listener_port = local->port();
    const int tuples = ::bpf_map__fd(skeleton_->maps.tuples);
    // Consumed: a later connection reusing the 4-tuple must not inherit this destination.
    if (::bpf_map_lookup_and_delete_elem(tuples, &tuple, &origin) != 0) {
        return std::nullopt;
    }
    return fromAbi(origin.dst);
}

Counters HostPrograms::counters() const { return sumCounters(skeleton_->maps.counters); }

// ---- routed mode ----

void RoutedPrograms::Destroy::operator()(lm_routed* skeleton) const noexcept {
    lm_routed__destroy(skeleton);
}

RoutedPrograms::RoutedPrograms(std::unique_ptr<lm_routed, Destroy> skeleton)
    : skeleton_(std::move(skeleton)),
      slotCookies_(::bpf_map__max_entries(skeleton_->maps.listeners), 0) {}

RoutedPrograms::~RoutedPrograms() {
    detachIngress();
    links_.clear();
}

Result<std::unique_ptr<RoutedPrograms>> RoutedPrograms::load(std::uint32_t deliverMark,
                                                             bool filterInterfaces) {
    LibbpfLog log;
    std::unique_ptr<lm_routed, Destroy> skeleton(lm_routed__open());
    if (!skeleton) {
        return loadFailure(-errno, "routed-mode", log);
    }
    skeleton->rodata->deliver_mark = deliverMark;
    skeleton->rodata->filter_interfaces = filterInterfaces ? 1 : 0;
    if (const int rc = lm_routed__load(skeleton.get()); rc != 0) {
        return loadFailure(rc, "routed-mode", log);
    }
    return std::unique_ptr<RoutedPrograms>(new RoutedPrograms(std::move(skeleton)));
}

Status RoutedPrograms::allowInterface(std::uint32_t ifindex) {
    const std::uint8_t yes = 1;
    if (::bpf_map_update_elem(::bpf_map__fd(skeleton_->maps.interfaces), &ifindex, &yes,
                              BPF_ANY) != 0) {
        return failErrno("adding interface " + std::to_string(ifindex) + " to the routed-mode map");
    }
    return {};
}

Status RoutedPrograms::attachNamespace(int netnsFd, const std::string& name) {
    auto fd = link(::bpf_program__fd(skeleton_->progs.lm_sk_lookup), netnsFd, BPF_SK_LOOKUP);
    if (!fd) {
        return fail(fd.error().code(), "attaching lm_sk_lookup to " + name);
    }
    links_.push_back({"lm_sk_lookup", name, std::move(*fd)});
    return {};
}

Status RoutedPrograms::attachIngress(std::uint32_t ifindex, const std::string& name) {
    auto fd = link(::bpf_program__fd(skeleton_->progs.lm_tc_mark), static_cast<int>(ifindex),
                   kTcxIngress);
    if (!fd) {
        const bool unknownType = fd.error().code().value() == EINVAL;
        return fail(fd.error().code(), "attaching lm_tc_mark to ingress of " + name +
                                           (unknownType ? " (tcx links need Linux 6.6 or later)"
                                                        : ""));
    }
    links_.push_back({"lm_tc_mark", name, std::move(*fd)});
    return {};
}

void RoutedPrograms::detachIngress() noexcept {
    std::erase_if(links_, [](const Link& l) { return l.program == "lm_tc_mark"; });
}

Status RoutedPrograms::add(const Endpoint& vip, int listenerFd) {
    std::uint64_t cookie = 0;
    socklen_t length = sizeof(cookie);
    if (::getsockopt(listenerFd, SOL_SOCKET, SO_COOKIE, &cookie, &length) == -1) {
        return failErrno("reading the listener's socket cookie");
    }
    std::uint32_t slot = 0;
    bool fresh = false;
    auto same = std::find(slotCookies_.begin(), slotCookies_.end(), cookie);
    if (same != slotCookies_.end()) {
        slot = static_cast<std::uint32_t>(same - slotCookies_.begin());
    } else {
        auto free = std::find(slotCookies_.begin(), slotCookies_.end(), 0);
        if (free == slotCookies_.end()) {
            return fail(Errc::Unavailable, "routed mode holds at most " +
                                               std::to_string(slotCookies_.size()) + " listeners");
        }
        slot = static_cast<std::uint32_t>(free - slotCookies_.begin());
        const std::uint64_t value = static_cast<std::uint64_t>(listenerFd);
        if (::bpf_map_update_elem(::bpf_map__fd(skeleton_->maps.listeners), &slot, &value,
                                  BPF_ANY) != 0) {
            return failErrno("adding the listener for " + vip.toString() + " to the sockmap");
        }
        slotCookies_[slot] = cookie;
        fresh = true;
    }
    const lm_endpoint key = toAbi(vip);
    if (::bpf_map_update_elem(::bpf_map__fd(skeleton_->maps.vips), &key, &slot, BPF_ANY) != 0) {
        auto error = failErrno("adding " + vip.toString() + " to the routed-mode map");
        if (fresh) {
            ::bpf_map_delete_elem(::bpf_map__fd(skeleton_->maps.listeners), &slot);
            slotCookies_[slot] = 0;
        }
        return error;
    }
    if (auto old = slotOf_.find(vip); old != slotOf_.end() && old->second != slot) {
        const std::uint32_t previous = old->second;
        old->second = slot;
        if (std::none_of(slotOf_.begin(), slotOf_.end(),
                         [&](const auto& kv) { return kv.second == previous; })) {
            ::bpf_map_delete_elem(::bpf_map__fd(skeleton_->maps.listeners), &previous);
            slotCookies_[previous] = 0;
        }
    } else {
        slotOf_[vip] = slot;
    }
    return {};
}

Status RoutedPrograms::remove(const Endpoint& vip) {
    auto it = slotOf_.find(vip);
    if (it == slotOf_.end()) {
        return fail(Errc::NotFound, vip.toString() + " is not a routed-mode virtual address");
    }
    const std::uint32_t slot = it->second;
    slotOf_.erase(it);
    const lm_endpoint key = toAbi(vip);
    Status status;
    if (::bpf_map_delete_elem(::bpf_map__fd(skeleton_->maps.vips), &key) != 0) {
        status = failErrno("removing " + vip.toString() + " from the routed-mode map");
    }
    if (std::none_of(slotOf_.begin(), slotOf_.end(),
                     [&](const auto& kv) { return kv.second == slot; })) {
        // ENOENT is fine: the kernel drops a socket from the sockmap when it closes.
        ::bpf_map_delete_elem(::bpf_map__fd(skeleton_->maps.listeners), &slot);
        slotCookies_[slot] = 0;
    }
    return status;
}

int RoutedPrograms::lookupProgramFd() const noexcept {
    return ::bpf_program__fd(skeleton_->progs.lm_sk_lookup);
}

Counters RoutedPrograms::counters() const {
    return sumCounters(skeleton_->maps.counters);
}

}  // namespace lastmile::bpf
