// SPDX-License-Identifier: Apache-2.0
// The ExternalName resolver thread.
#include "dataplane/net/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>

#include "base/log.h"

namespace lastmile::net {
namespace {

constexpr const char* kLog = "resolver";

std::vector<std::string> lookup(const std::string& name) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &result);
    if (rc != 0) {
        LM_LOG(Info, kLog, "ExternalName " << name << ": " << ::gai_strerror(rc));
        return {};
    }
    std::vector<std::string> out;
    for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN] = {};
        const void* raw = ai->ai_family == AF_INET6
                              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr)
                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr);
        if (::inet_ntop(ai->ai_family, raw, text, sizeof(text)) != nullptr &&
            std::find(out.begin(), out.end(), text) == out.end()) {
            out.emplace_back(text);
        }
    }
    ::freeaddrinfo(result);
    return out;
}

}  // namespace

Resolver::Resolver(std::chrono::milliseconds refresh)
    : refresh_(refresh), thread_([this] { run(); }) {}

Resolver::~Resolver() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void Resolver::track(std::set<std::string> names) {
    {
        std::lock_guard lock(mu_);
        if (names == names_) {
            return;
        }
        names_ = std::move(names);
        changed_ = true;
    }
    wake_.notify_all();
}

std::vector<std::string> Resolver::addresses(const std::string& name) const {
    std::lock_guard lock(mu_);
    auto it = answers_.find(name);
    return it == answers_.end() ? std::vector<std::string>{} : it->second;
}

void Resolver::run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
        const std::set<std::string> names = names_;
        changed_ = false;
        lock.unlock();
        std::map<std::string, std::vector<std::string>> answers;
        for (const auto& name : names) {
            answers[name] = lookup(name);
        }
        lock.lock();
        answers_ = std::move(answers);
        wake_.wait_for(lock, refresh_, [this] { return stopping_ || changed_; });
    }
}

}  // namespace lastmile::net
