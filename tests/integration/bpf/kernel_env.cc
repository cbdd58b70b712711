// SPDX-License-Identifier: Apache-2.0
// Namespaces and cgroups created through iproute2 and cgroupfs, sockets with bounded waits.
#include "tests/integration/bpf/kernel_env.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "bpf/interception.h"
#include "tests/support/process.h"

namespace lastmile::test {
namespace {

std::atomic<int> serial{0};

std::string unique(const std::string& role) {
    return "lmbpf-" + std::to_string(::getpid()) + "-" + std::to_string(serial++) + "-" + role;
}

[[noreturn]] void throwErrno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

void writeFile(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
    out.close();
    if (!out) {
        throw std::runtime_error("writing " + path);
    }
}

// runProcess execs without a PATH search.
std::string ipPath() {
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
        if (::access(path, X_OK) == 0) {
            return path;
        }
    }
    return "";
}

}  // namespace

std::optional<std::string> kernelEnvMissing() {
    if (::geteuid() != 0) {
        return "needs root (BPF, network namespaces and cgroups)";
    }
    if (TestCgroup::mount().empty()) {
        return "no cgroup v2 mount in /proc/mounts";
    }
    if (ipPath().empty()) {
        return "needs iproute2's ip to build the namespaces";
    }
    return std::nullopt;
}

std::string ipOutput(const std::vector<std::string>& args) {
    std::vector<std::string> argv{ipPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto outcome = runProcess(argv, {}, "", std::chrono::seconds(10));
    if (outcome.exitCode != 0) {
        std::string line;
        for (const auto& a : argv) {
            line += a + " ";
        }
        throw std::runtime_error(line + "failed: " + outcome.err);
    }
    return outcome.out;
}

void ip(const std::vector<std::string>& args) { ipOutput(args); }

Netns::Netns(const std::string& role) : name_(unique(role)) {
    test::ip({"netns", "add", name_});
    fd_.reset(::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_.valid()) {
        throwErrno("opening netns " + name_);
    }
    this->ip({"link", "set", "lo", "up"});
}

Netns::~Netns() {
    fd_.reset();
    runProcess({ipPath(), "netns", "del", name_}, {}, "", std::chrono::seconds(10));
}

ino_t Netns::inode() const {
    struct stat st {};
    ::fstat(fd_.get(), &st);
    return st.st_ino;
}

void Netns::ip(const std::vector<std::string>& args) const {
    std::vector<std::string> all{"-n", name_};
    all.insert(all.end(), args.begin(), args.end());
    test::ip(all);
}

InNetns::InNetns(const Netns& netns)
    : previous_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (!previous_.valid() || ::setns(netns.fd(), CLONE_NEWNET) == -1) {
        throwErrno("entering netns " + netns.name());
    }
}

InNetns::~InNetns() { ::setns(previous_.get(), CLONE_NEWNET); }

std::string TestCgroup::mount() { return bpf::cgroupV2Mount(); }

TestCgroup::TestCgroup(const std::vector<std::string>& children)
    : root_(mount() + "/" + unique("cg")), children_(children) {
    std::ifstream self("/proc/self/cgroup");
    std::string line;
    while (std::getline(self, line)) {
        if (line.starts_with("0::")) {
            original_ = mount() + line.substr(3);
        }
    }
    if (::mkdir(root_.c_str(), 0755) == -1) {
        throwErrno("mkdir " + root_);
    }
    for (const auto& child : children_) {
        if (::mkdir(path(child).c_str(), 0755) == -1) {
            throwErrno("mkdir " + path(child));
        }
    }
}

TestCgroup::~TestCgroup() {
    try {
        writeFile(original_ + "/cgroup.procs", std::to_string(::getpid()));
    } catch (const std::exception&) {
        // Nothing better to do in a destructor: the rmdir below then fails visibly.
    }
    for (const auto& child : children_) {
        ::rmdir(path(child).c_str());
    }
    ::rmdir(root_.c_str());
}

void TestCgroup::enter(const std::string& child) const {
    writeFile((child.empty() ? root_ : path(child)) + "/cgroup.procs", std::to_string(::getpid()));
}

UniqueFd listenOn(const bpf::Endpoint& address, bool transparent) {
    socklen_t length = 0;
    const sockaddr_storage storage = address.toSockaddr(length);
    UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    if (!fd.valid() || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
        throwErrno("listener socket");
    }
    if (transparent) {
        const bool v6 = storage.ss_family == AF_INET6;
        if (::setsockopt(fd.get(), v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT,
                         &one, sizeof(one)) == -1) {
            throwErrno("IP_TRANSPARENT");
        }
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) == -1 ||
        ::listen(fd.get(), 16) == -1) {
        throwErrno("listening on " + address.toString());
    }
    return fd;
}

UniqueFd tcpSocket(int family, std::uint32_t mark) {
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
        throwErrno("socket");
    }
    if (mark != 0 && ::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == -1) {
        throwErrno("SO_MARK");
    }
    return fd;
}

Status connectWithin(int fd, const bpf::Endpoint& to, std::chrono::milliseconds timeout) {
    socklen_t length = 0;
    sockaddr_storage storage = to.toSockaddr(length);
    int family = 0;
    socklen_t familyLength = sizeof(family);
    ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &familyLength);
    if (family == AF_INET6 && to.isV4()) {
        // A dual-stack socket dials an IPv4 address in its mapped form.
        sockaddr_in6 mapped{};
        mapped.sin6_family = AF_INET6;
        mapped.sin6_port = htons(to.port());
        std::memcpy(&mapped.sin6_addr, to.bytes().data(), 16);
        std::memcpy(&storage, &mapped, sizeof(mapped));
        length = sizeof(mapped);
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&storage), length) == 0) {
        return {};
    }
    if (errno != EINPROGRESS) {
        return failErrno("connect to " + to.toString());
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
        return fail(std::make_error_code(std::errc::timed_out), "connect to " + to.toString());
    }
    int error = 0;
    socklen_t errorLength = sizeof(error);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &errorLength);
    if (error != 0) {
        return fail(std::error_code(error, std::generic_category()), "connect to " + to.toString());
    }
    return {};
}

std::optional<UniqueFd> acceptWithin(int listener, std::chrono::milliseconds timeout) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
        return std::nullopt;
    }
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) {
        return std::nullopt;
    }
    return fd;
}

}  // namespace lastmile::test
