// SPDX-License-Identifier: Apache-2.0
// Interception: feature checks, attachment of both modes, and the virtual-address tables.
#include "bpf/interception.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "base/log.h"
#include "base/text.h"
#include "base/unique_fd.h"
#include "bpf/programs.h"
#include "bpf/rtnetlink.h"

namespace lastmile::bpf {
namespace {

constexpr const char* kCategory = "bpf";
// tcx links, which make routed mode fail open, arrived in Linux 6.6.
constexpr int kTcxMajor = 6;
constexpr int kTcxMinor = 6;
// Not in the 6.1 UAPI headers of the build host.
constexpr std::uint32_t kLinkTypeTcx = 11;

std::error_code posix(std::errc e) { return std::make_error_code(e); }

bool effective(int capability) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &header, data) == -1) {
        return false;
    }
    return (data[capability / 32].effective & (1U << (capability % 32))) != 0;
}

// First, because without privileges libbpf's probes answer "unsupported" instead of failing.
Status checkCapabilities() {
    std::vector<std::string> missing;
    if (!effective(CAP_BPF) && !effective(CAP_SYS_ADMIN)) {
        missing.emplace_back("CAP_BPF");
    }
    if (!effective(CAP_NET_ADMIN)) {
        missing.emplace_back("CAP_NET_ADMIN");
    }
    if (missing.empty()) {
        return {};
    }
    return fail(posix(std::errc::operation_not_permitted),
                "missing capabilities " + join(missing, ", ") +
                    " (the package ships them in lastmiled.service.d/interception.conf)");
}

Status checkProgramType(bpf_prog_type type, const char* name) {
    const int rc = ::libbpf_probe_bpf_prog_type(type, nullptr);
    if (rc == 1) {
        return {};
    }
    if (rc == 0) {
        return fail(posix(std::errc::function_not_supported),
                    std::string("the kernel lacks BPF program type ") + name);
    }
    return fail(std::error_code(-rc, std::generic_category()),
                std::string("probing BPF program type ") + name);
}

Unexpected<Error> unusable(const char* mode, const Error& error) {
    return fail(error.code(), std::string(mode) + " interception is unusable: " + error.context());
}

std::optional<std::string> realPath(const std::string& path) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) {
        return std::nullopt;
    }
    return std::string(resolved);
}

// /proc/self/mounts escapes blanks in mount points as octal (\040).
std::string unescapeMount(const std::string& field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            out += static_cast<char>(std::strtol(field.substr(i + 1, 3).c_str(), nullptr, 8));
            i += 3;
        } else {
            out += field[i];
        }
    }
    return out;
}

// The cgroup v2 mount and this process's cgroup directory under it (the "0::" line).
struct OwnCgroup {
    std::string mount;
    std::string directory;
};

std::optional<OwnCgroup> ownCgroup() {
    OwnCgroup own;
    own.mount = cgroupV2Mount();
    std::ifstream cgroups("/proc/self/cgroup");
    std::string line;
    while (std::getline(cgroups, line)) {
        if (line.starts_with("0::") && !own.mount.empty()) {
            auto directory = realPath(own.mount + line.substr(3));
            auto mount = realPath(own.mount);
            if (!directory || !mount) {
                return std::nullopt;
            }
            own.directory = *directory;
            own.mount = *mount;
            return own;
        }
    }
    return std::nullopt;
}

bool within(const std::string& path, const std::string& ancestor) {
    return path == ancestor || path.starts_with(ancestor == "/" ? ancestor : ancestor + "/");
}

struct OpenCgroup {
    std::string path;
    UniqueFd fd;
};

Result<OpenCgroup> openCgroup(const std::string& path, const std::optional<OwnCgroup>& own) {
    if (!isCgroupPath(path)) {
        return fail(Errc::Invalid, "\"" + path + "\" is not an absolute cgroup directory path");
    }
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
        return failErrno("opening cgroup " + path);
    }
    struct statfs fs {};
    if (::fstatfs(fd.get(), &fs) == -1) {
        return failErrno("checking cgroup " + path);
    }
    if (fs.f_type != CGROUP2_SUPER_MAGIC) {
        return fail(Errc::Invalid, path + " is not a cgroup v2 directory");
    }
    auto resolved = realPath(path);
    if (!resolved) {
        return failErrno("resolving cgroup " + path);
    }
    if (own && within(own->directory, *resolved)) {
        return fail(Errc::Invalid, "cgroup " + path + " contains lastmiled itself (pid " +
                                       std::to_string(::getpid()) +
                                       "): its own backend connects would be intercepted");
    }
    return OpenCgroup{*resolved, std::move(fd)};
}

Status checkTcxKernel() {
    utsname name{};
    int major = 0;
    int minor = 0;
    if (::uname(&name) == -1 || std::sscanf(name.release, "%d.%d", &major, &minor) != 2) {
        return {};  // unknown: the attach itself will tell
    }
    if (major < kTcxMajor || (major == kTcxMajor && minor < kTcxMinor)) {
        return fail(posix(std::errc::function_not_supported),
                    std::string("routed mode needs tcx links (Linux 6.6 or later) to fail open "
                                "when lastmiled dies; this kernel is ") +
                        name.release);
    }
    return {};
}

// What the kernel says about one of our links: detached links report a zero target.
bool linkAttached(int fd) {
    bpf_link_info info{};
    __u32 length = sizeof(info);
    if (::bpf_obj_get_info_by_fd(fd, &info, &length) != 0) {
        return false;
    }
    switch (info.type) {
    case BPF_LINK_TYPE_CGROUP:
        return info.cgroup.cgroup_id != 0;
    case BPF_LINK_TYPE_NETNS:
        return info.netns.netns_ino != 0;
    case kLinkTypeTcx:
        // struct { __u32 ifindex; __u32 attach_type; } tcx: the layout of netns.
        return info.netns.netns_ino != 0;
    default:
        return true;
    }
}

}  // namespace

std::string cgroupV2Mount() {
    std::ifstream mounts("/proc/self/mounts");
    std::string device, point, type, rest;
    while (mounts >> device >> point >> type && std::getline(mounts, rest)) {
        if (type == "cgroup2") {
            return unescapeMount(point);
        }
    }
    return {};
}

Interception::Interception(const Config& config) : config_(config) {}

std::unique_ptr<Interception> Interception::start(const Config& config) {
    // libbpf's messages from the probes and attaches go into errors or nowhere, not stderr.
    LibbpfLog quiet;
    std::unique_ptr<Interception> self(new Interception(config));
    if (auto status = self->startHost(); !status) {
        self->hostPrograms_.reset();
        self->host_ = unusable("host-mode", status.error());
        if (!config.cgroups.empty()) {  // not configured is no news
            LM_LOG(Warning, kCategory, self->host_.error().message());
        }
    }
    if (auto status = self->startRouted(); !status) {
        self->stopRouted();
        self->routed_ = unusable("routed-mode", status.error());
        if (!config.interfaces.empty()) {
            LM_LOG(Warning, kCategory, self->routed_.error().message());
        }
    }
    return self;
}

Interception::~Interception() {
    stopRouted();
    hostPrograms_.reset();
}

void Interception::stopRouted() noexcept {
    // Stop marking first, so no packet is delivered locally to a listener already gone.
    if (routedPrograms_) {
        routedPrograms_->detachIngress();
    }
    delivery_.reset();
    routedPrograms_.reset();
}

Status Interception::startHost() {
    if (config_.cgroups.empty()) {
        return fail(Errc::NotFound, "no cgroups configured (interception.cgroups)");
    }
    const auto own = ownCgroup();
    std::vector<OpenCgroup> cgroups;
    for (const auto& path : config_.cgroups) {
        auto cgroup = openCgroup(path, own);
        if (!cgroup) {
            return fail(std::move(cgroup).error());
        }
        // Once: a second set of links would run every program twice per connect.
        if (std::none_of(cgroups.begin(), cgroups.end(),
                         [&](const OpenCgroup& c) { return c.path == cgroup->path; })) {
            cgroups.push_back(std::move(*cgroup));
        }
    }
    LM_TRY(checkCapabilities());
    LM_TRY(checkProgramType(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "cgroup_sock_addr"));
    LM_TRY(checkProgramType(BPF_PROG_TYPE_SOCK_OPS, "sock_ops"));
    auto programs = HostPrograms::load(config_.backendMark);
    if (!programs) {
        return fail(std::move(programs).error());
    }
    hostPrograms_ = std::move(*programs);
    for (const auto& cgroup : cgroups) {
        LM_TRY(hostPrograms_->attachClients(cgroup.fd.get(), cgroup.path));
    }
    // The accepted sockets get their origin in lastmiled's own cgroup. In the root cgroup
    // that would run sockops for every socket of the host: there the tuple map serves.
    if (own && own->directory != own->mount) {
        UniqueFd fd(::open(own->directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd.valid()) {
            return failErrno("opening lastmiled's own cgroup " + own->directory);
        }
        LM_TRY(hostPrograms_->attachListeners(fd.get(), own->directory));
    }
    return {};
}

Status Interception::startRouted() {
    if (config_.interfaces.empty()) {
        return fail(Errc::NotFound, "no interfaces configured (interception.interfaces)");
    }
    if (config_.routedMark == 0 || config_.routedMark == config_.backendMark) {
        return fail(Errc::Invalid, "the routed-mode fwmark must be non-zero and differ from the "
                                   "backend socket mark");
    }
    std::vector<std::pair<std::uint32_t, std::string>> interfaces;
    for (const auto& name : config_.interfaces) {
        if (!isInterfaceName(name)) {
            return fail(Errc::Invalid, "\"" + name + "\" is not an interface name");
        }
        const unsigned index = ::if_nametoindex(name.c_str());
        if (index == 0) {
            return fail(Errc::NotFound, "unknown interface " + name);
        }
        // tcx refuses the same program twice on one interface (EEXIST).
        if (std::none_of(interfaces.begin(), interfaces.end(),
                         [&](const auto& i) { return i.first == index; })) {
            interfaces.emplace_back(index, name);
        }
    }
    LM_TRY(checkCapabilities());
    LM_TRY(checkTcxKernel());
    LM_TRY(checkProgramType(BPF_PROG_TYPE_SK_LOOKUP, "sk_lookup"));
    LM_TRY(checkProgramType(BPF_PROG_TYPE_SCHED_CLS, "sched_cls"));
    auto programs = RoutedPrograms::load(config_.routedMark, true);
    if (!programs) {
        return fail(std::move(programs).error());
    }
    routedPrograms_ = std::move(*programs);
    for (const auto& [index, name] : interfaces) {
        LM_TRY(routedPrograms_->allowInterface(index));
    }
    // The calling thread's namespace: a thread may have entered another one with setns().
    UniqueFd netns(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    struct stat ns {};
    if (!netns.valid() || ::fstat(netns.get(), &ns) == -1) {
        return failErrno("opening this thread's network namespace");
    }
    LM_TRY(routedPrograms_->attachNamespace(netns.get(),
                                            "net:[" + std::to_string(ns.st_ino) + "]"));
    for (const auto& [index, name] : interfaces) {
        LM_TRY(routedPrograms_->attachIngress(index, name));
    }
    auto delivery = LocalDelivery::install(config_.routedMark, config_.routedTable,
                                           config_.routedRulePriority);
    if (!delivery) {
        return fail(std::move(delivery).error());
    }
    delivery_ = std::move(*delivery);
    return {};
}

Status Interception::usable(Mode mode) const { return mode == Mode::Host ? host_ : routed_; }

Status Interception::addHost(const Endpoint& vip, const Endpoint& listener) {
    std::lock_guard lock(mutex_);
    if (!host_) {
        return fail(host_.error());  // a copy: the reason stays for usable()
    }
    if (vip.port() == 0 || listener.port() == 0) {
        return fail(Errc::Invalid, "host mode needs a port on both " + vip.toString() + " and " +
                                       listener.toString());
    }
    if (vip.isV4() && !listener.isV4()) {
        return fail(Errc::Invalid, "the IPv4 virtual address " + vip.toString() +
                                       " needs an IPv4 listener, not " + listener.toString());
    }
    const bool loop = vip == listener || hostVips_.contains(listener) ||
                      std::any_of(hostVips_.begin(), hostVips_.end(),
                                  [&](const auto& kv) { return kv.second == vip; });
    if (loop) {
        LM_LOG(Warning, kCategory,
               "refused virtual address " << vip.toString() << " -> " << listener.toString()
                                          << ": a redirect loop");
        return fail(Errc::Invalid, "virtual address " + vip.toString() + " -> " +
                                       listener.toString() +
                                       " would loop: a listener address is a virtual address");
    }
    LM_TRY(hostPrograms_->add(vip, listener));
    hostVips_[vip] = listener;
    return {};
}

Status Interception::addRouted(const Endpoint& vip, int listenerFd) {
    std::lock_guard lock(mutex_);
    if (!routed_) {
        return fail(routed_.error());
    }
    int listening = 0;
    int transparent = 0;
    socklen_t length = sizeof(listening);
    if (::getsockopt(listenerFd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == -1 ||
        listening == 0) {
        return fail(Errc::Invalid, "the listener for " + vip.toString() +
                                       " is not a listening socket");
    }
    auto local = Endpoint::localOf(listenerFd);
    if (!local) {
        return fail(std::move(local).error());
    }
    int family = 0;
    length = sizeof(family);
    ::getsockopt(listenerFd, SOL_SOCKET, SO_DOMAIN, &family, &length);
    // The kernel assigns an IPv6 SYN only to an IPv6 socket; an IPv4 one also to a
    // dual-stack IPv6 socket.
    if (!vip.isV4() && family != AF_INET6) {
        return fail(Errc::Invalid, "the IPv6 virtual address " + vip.toString() +
                                       " needs an IPv6 listener, not " + local->toString());
    }
    length = sizeof(transparent);
    const bool v6 = family == AF_INET6;
    if (::getsockopt(listenerFd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT,
                     &transparent, &length) == -1 ||
        transparent == 0) {
        return fail(Errc::Invalid, "the listener " + local->toString() + " for " + vip.toString() +
                                       " needs IP_TRANSPARENT");
    }
    if (*local == vip) {
        LM_LOG(Warning, kCategory,
               "refused virtual address " << vip.toString() << ": its own listener, a loop");
        return fail(Errc::Invalid, "virtual address " + vip.toString() +
                                       " is its listener's own address: a redirect loop");
    }
    LM_TRY(routedPrograms_->add(vip, listenerFd));
    routedVips_[vip] = *local;
    return {};
}

Status Interception::remove(const Endpoint& vip, Mode mode) {
    std::lock_guard lock(mutex_);
    auto& table = mode == Mode::Host ? hostVips_ : routedVips_;
    if (!table.contains(vip)) {
        return fail(Errc::NotFound, vip.toString() + " is not a virtual address of this mode");
    }
    table.erase(vip);
    return mode == Mode::Host ? hostPrograms_->remove(vip) : routedPrograms_->remove(vip);
}

std::optional<Endpoint> Interception::originalDestination(int acceptedFd, Mode mode) const {
    if (mode == Mode::Host) {
        // No lock: map lookups are atomic, and workers call this for every connection.
        return hostPrograms_ ? hostPrograms_->originalDestination(acceptedFd) : std::nullopt;
    }
    auto local = Endpoint::localOf(acceptedFd);
    if (!local) {
        return std::nullopt;
    }
    std::lock_guard lock(mutex_);
    return routedVips_.contains(*local) ? std::optional<Endpoint>(*local) : std::nullopt;
}

std::vector<Interception::Attachment> Interception::attachments() const {
    std::vector<Attachment> out;
    const auto list = [&](Mode mode, const std::vector<Link>& links) {
        for (const auto& l : links) {
            out.push_back({mode, l.program, l.target, linkAttached(l.fd.get())});
        }
    };
    if (hostPrograms_) {
        list(Mode::Host, hostPrograms_->links());
    }
    if (routedPrograms_) {
        list(Mode::Routed, routedPrograms_->links());
    }
    return out;
}

Counters Interception::counters(Mode mode) const {
    if (mode == Mode::Host && hostPrograms_) {
        return hostPrograms_->counters();
    }
    if (mode == Mode::Routed && routedPrograms_) {
        return routedPrograms_->counters();
    }
    return {};
}

Status setTransparent(int fd) {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == -1) {
        return failErrno("reading the socket's family");
    }
    const int one = 1;
    const bool v6 = address.ss_family == AF_INET6;
    if (::setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one,
                     sizeof(one)) == -1) {
        return failErrno("setting IP_TRANSPARENT");
    }
    return {};
}

}  // namespace lastmile::bpf
