// SPDX-License-Identifier: Apache-2.0
// Resolver: keeps the addresses of ExternalName Services resolved, off the worker threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace lastmile::net {

// getaddrinfo blocks, so one thread of its own does every lookup: at once for a name it was
// just given, then every `refresh`. Workers only read the last answers.
class Resolver {
public:
    explicit Resolver(std::chrono::milliseconds refresh = std::chrono::seconds(10));
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // The names to keep resolved, replacing the previous set.
    void track(std::set<std::string> names);
    // IP literals of `name` from the last lookup; empty while unknown or when it failed.
    std::vector<std::string> addresses(const std::string& name) const;

private:
    void run();

    const std::chrono::milliseconds refresh_;
    mutable std::mutex mu_;
    std::condition_variable wake_;
    std::set<std::string> names_;
    std::map<std::string, std::vector<std::string>> answers_;
    bool changed_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace lastmile::net
