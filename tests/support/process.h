// SPDX-License-Identifier: Apache-2.0
// Child processes for integration tests: run a command to completion, or keep a daemon up.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace lastmile::test {

// The value of environment variable `var` (a path meson passes). Throws when it is not set.
std::string requiredEnv(const char* var);

// Polls `condition` every `interval` until it holds or `timeout` passes.
template <typename F>
bool eventually(F&& condition, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                std::chrono::milliseconds interval = std::chrono::milliseconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (condition()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(interval);
    }
}

struct Outcome {
    int exitCode = -1;  // -1 when killed by a signal or timed out
    std::string out;
    std::string err;
};

// Runs `argv` with `env` added to the environment and `input` on stdin; waits at most
// `timeout` (then kills it and throws). Throws on spawn failure (tests may throw).
Outcome runProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                   const std::string& input = "",
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A long-running child. Output goes to files in `logDir` (for post-mortems).
class ChildProcess {
public:
    ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                 const std::string& logDir);
    ~ChildProcess();  // SIGKILL if still running
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig);
    // Waits for exit; returns the exit code (128+N for signal N). Throws on timeout.
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    std::string stderrText() const;
    std::string stdoutText() const;

private:
    pid_t pid_ = -1;
    int pidfd_ = -1;
    std::string logDir_;
    bool reaped_ = false;
    int status_ = 0;
};

// A whole file (empty when it cannot be read), /proc files included.
std::string readFile(const std::string& path);
// Open descriptors (/proc/PID/fd) and resident memory (VmRSS) of a process.
std::uint64_t countFds(pid_t pid);
std::uint64_t rssKiB(pid_t pid);

// A unix datagram socket standing in for systemd's NOTIFY_SOCKET.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path);
    ~NotifySocket();
    const std::string& path() const { return path_; }
    // Waits for a datagram containing `line` (e.g. "READY=1"); throws on timeout.
    void waitFor(const std::string& line, std::chrono::milliseconds timeout = std::chrono::seconds(30));

private:
    std::string path_;
    int fd_ = -1;
};

// A fresh directory under $TMPDIR, removed with its content on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    // Writes `content` to path()/name and returns the full path.
    std::string write(const std::string& name, const std::string& content) const;

private:
    std::string path_;
};

}  // namespace lastmile::test
