// SPDX-License-Identifier: Apache-2.0
// Which record engine takes an established session, and entering kernel framing.
#include "dataplane/worker/worker_impl.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace lastmile::dataplane {

namespace {

// The splice pipe's capacity, asked for (the kernel's default is 64 KiB): what one splice
// moves at most, like a chunk. Pages are only taken while bytes are in the pipe.
constexpr int kPipeCapacity = 256 * 1024;

}  // namespace

std::vector<std::size_t> Worker::Impl::candidates(const Connection& c) {
    const drivers::EngineSet& engines = *shared_.engines;
    const tls::ProfileSpec& spec = c.profile->spec();
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < engines.size(); ++i) {
        if (engines.usable(i) && engines.at(i).serves(spec.offload)) {
            out.push_back(i);
        }
    }
    const bool collectTickets = spec.sessionResumption &&
                                SSL_version(c.ssl.get()) == TLS1_3_VERSION &&
                                SSL_session_reused(c.ssl.get()) != 1;
    const auto keeps = [&](std::size_t i) { return engines.at(i).keepsTickets(); };
    if (collectTickets && !out.empty() && !keeps(out.front()) &&
        std::any_of(out.begin(), out.end(), keeps)) {
        std::erase_if(out, [&](std::size_t i) { return !keeps(i); });
        bump(counters_.ticketCollectors);
    }
    return out;
}

bool Worker::Impl::attachEngine(Connection& c) {
    const drivers::EngineSet& engines = *shared_.engines;
    std::optional<std::size_t> taker;
    for (std::size_t i : candidates(c)) {
        drivers::RecordEngine& engine = engines.at(i);
        drivers::Attach attached = engine.attach(c.ssl.get(), c.backend.get(), c.wire);
        if (attached.outcome == drivers::Attach::Outcome::Broken) {
            reject(c, Failure::HandshakeFailed, 502,
                   "moving the TLS session to the " + std::string(engine.name()) +
                       " engine failed: " + attached.reason);
            return false;
        }
        if (attached.outcome == drivers::Attach::Outcome::Declined) {
            LM_LOG(Debug, kLog, engine.name() << " engine declined a session: "
                                              << attached.reason);
            continue;
        }
        c.session = std::move(attached.session);
        taker = i;
        break;
    }
    for (std::size_t i = 0; i < engines.size(); ++i) {
        if (i != taker) {
            engines.at(i).passOver(c.ssl.get());
        }
    }
    if (!taker) {
        reject(c, Failure::HandshakeFailed, 502, "no record engine took the session");
        return false;
    }
    bump(counters_.engineSessions[*taker]);
    c.serviceStats->engine.store(engines.at(*taker).name().data(), std::memory_order_relaxed);
    if (c.session->framing() == drivers::Framing::Kernel) {
        return enterKernel(c);
    }
    return true;
}

bool Worker::Impl::enterKernel(Connection& c) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        reject(c, Failure::HandshakeFailed, 502,
               std::string("creating the splice pipe: ") + std::strerror(errno));
        return false;
    }
    c.pipeRead.reset(fds[0]);
    c.pipeWrite.reset(fds[1]);
    // Smaller (the default) when the pipe-max-size sysctl or the user's pipe quota says no.
    int capacity = ::fcntl(fds[1], F_SETPIPE_SZ, kPipeCapacity);
    if (capacity <= 0) {
        capacity = ::fcntl(fds[1], F_GETPIPE_SZ);
    }
    c.pipeCapacity = static_cast<std::size_t>(std::max(capacity, 4096));
    c.kernelFramed = true;
    c.ssl.reset();
    c.wire = {};
    pool_chunks_.release(c.upOut);
    return true;
}

}  // namespace lastmile::dataplane
