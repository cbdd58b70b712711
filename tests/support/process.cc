// SPDX-License-Identifier: Apache-2.0
// fork/exec with pidfd-based bounded waits: no polling loops, no sleeps.
#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace lastmile::test {
namespace {

[[noreturn]] void die(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Forks and execs argv with stdin/stdout/stderr on the given files. Returns the pid.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            int in, int out, int err) {
    std::vector<std::string> envStrings;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string entry = *e;
        auto eq = entry.find('=');
        if (!env.count(entry.substr(0, eq))) {
            envStrings.push_back(entry);
        }
    }
    for (const auto& [k, v] : env) {
        envStrings.push_back(k + "=" + v);
    }
    std::vector<char*> args, envs;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : envStrings) envs.push_back(const_cast<char*>(e.c_str()));
    envs.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid == -1) {
        die("fork");
    }
    if (pid == 0) {
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        ::execve(args[0], args.data(), envs.data());
        ::_exit(127);
    }
    return pid;
}

int openFile(const std::string& path, int flags) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0600);
    if (fd == -1) {
        die("open " + path);
    }
    return fd;
}

// Waits on a pidfd for at most `timeout`; true when the child exited.
bool waitPidfd(int pidfd, std::chrono::milliseconds timeout) {
    pollfd p{pidfd, POLLIN, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc == -1 && errno == EINTR);
    return rc == 1;
}

// glibc 2.36's <sys/pidfd.h> lacks C linkage for C++, so go through syscall(2).
int pidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int decodeStatus(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::uint64_t countFds(pid_t pid) {
    std::uint64_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        ++n;
    }
    return n;
}

std::uint64_t rssKiB(pid_t pid) {
    std::istringstream status(readFile("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoull(line.substr(6));
        }
    }
    return 0;
}

Outcome runProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const std::string& input, std::chrono::milliseconds timeout) {
    TempDir dir;
    const std::string inPath = dir.write("stdin", input);
    int in = openFile(inPath, O_RDONLY);
    int out = openFile(dir.path() + "/stdout", O_WRONLY | O_CREAT | O_TRUNC);
    int err = openFile(dir.path() + "/stderr", O_WRONLY | O_CREAT | O_TRUNC);
    pid_t pid = spawn(argv, env, in, out, err);
    ::close(in);
    ::close(out);
    ::close(err);
    int pidfd = pidfdOpen(pid);
    if (pidfd == -1) {
        die("pidfd_open");
    }
    bool exited = waitPidfd(pidfd, timeout);
    ::close(pidfd);
    if (!exited) {
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!exited) {
        throw std::runtime_error("timed out: " + argv.front());
    }
    Outcome o;
    o.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = readFile(dir.path() + "/stdout");
    o.err = readFile(dir.path() + "/stderr");
    return o;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env, const std::string& logDir)
    : logDir_(logDir) {
    int in = openFile("/dev/null", O_RDONLY);
    int out = openFile(logDir + "/stdout", O_WRONLY | O_CREAT | O_APPEND);
    int err = openFile(logDir + "/stderr", O_WRONLY | O_CREAT | O_APPEND);
    pid_ = spawn(argv, env, in, out, err);
    ::close(in);
    ::close(out);
    ::close(err);
    pidfd_ = pidfdOpen(pid_);
    if (pidfd_ == -1) {
        die("pidfd_open");
    }
}

ChildProcess::~ChildProcess() {
    if (!reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    ::close(pidfd_);
}

void ChildProcess::signal(int sig) { ::kill(pid_, sig); }

int ChildProcess::wait(std::chrono::milliseconds timeout) {
    if (!reaped_) {
        if (!waitPidfd(pidfd_, timeout)) {
            throw std::runtime_error("child " + std::to_string(pid_) + " did not exit in time");
        }
        ::waitpid(pid_, &status_, 0);
        reaped_ = true;
    }
    return decodeStatus(status_);
}

std::string requiredEnv(const char* var) {
    const char* value = std::getenv(var);
    if (value == nullptr) {
        throw std::runtime_error(std::string(var) + " is not set (run through meson test)");
    }
    return value;
}

std::string ChildProcess::stderrText() const { return readFile(logDir_ + "/stderr"); }

std::string ChildProcess::stdoutText() const { return readFile(logDir_ + "/stdout"); }

NotifySocket::NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ == -1) {
        die("socket");
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        throw std::runtime_error("notify socket path too long: " + path);
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == -1) {
        die("bind " + path);
    }
}

NotifySocket::~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
}

void NotifySocket::waitFor(const std::string& line, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
            throw std::runtime_error("no \"" + line + "\" on " + path_ + " in time");
        }
        char buf[4096];
        ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n > 0 && std::string(buf, static_cast<std::size_t>(n)).find(line) != std::string::npos) {
            return;
        }
    }
}

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base != nullptr ? base : "/tmp") + "/lastmile-test-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
        die("mkdtemp");
    }
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
    std::string full = path_ + "/" + name;
    std::ofstream(full, std::ios::binary) << content;
    return full;
}

}  // namespace lastmile::test
