// SPDX-License-Identifier: Apache-2.0
// Ring: one io_uring per worker thread, set up with the best flags the kernel accepts.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"

namespace lastmile::uring {

// What to try at setup; tests turn features off to exercise the fallbacks.
struct RingOptions {
    unsigned entries = 4096;
    // IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (6.1+): completions run only when we wait,
    // on our thread. Falls back to COOP_TASKRUN (5.19+), then to no flags.
    bool deferTaskrun = true;
    // IORING_ACCEPT_MULTISHOT (5.19+): one SQE accepts until cancelled; else re-armed per accept.
    bool multishotAccept = true;
};

// What this ring ended up with, for logs, metrics and the fallback paths.
struct RingFeatures {
    std::string setup;  // "defer-taskrun", "coop-taskrun" or "plain"
    bool multishotAccept = false;
    bool cancelFdAll = false;  // IORING_ASYNC_CANCEL_FD | ALL (5.19+)
};

// user_data packing, the only one in the dataplane: the operation in the top byte, the
// object (a pointer; user space addresses fit in 56 bits on x86-64 and arm64) below it.
constexpr std::uint64_t packUserData(std::uint8_t op, std::uint64_t object) {
    return (std::uint64_t(op) << 56) | (object & ((1ULL << 56) - 1));
}
constexpr std::uint8_t userDataOp(std::uint64_t data) { return std::uint8_t(data >> 56); }
constexpr std::uint64_t userDataObject(std::uint64_t data) { return data & ((1ULL << 56) - 1); }
static_assert(userDataOp(packUserData(7, 0x7fff'ffff'f000)) == 7);
static_assert(userDataObject(packUserData(7, 0x7fff'ffff'f000)) == 0x7fff'ffff'f000);

// Neither copyable nor movable: SQEs point into it. Must be used by the thread that created it
// (SINGLE_ISSUER).
class Ring {
public:
    static Result<std::unique_ptr<Ring>> create(const RingOptions& options);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    const RingFeatures& features() const noexcept { return features_; }
    // Multishot accept turned out unsupported at run time (the kernel failed the SQE).
    void disableMultishotAccept() noexcept { features_.multishotAccept = false; }

    // A free SQE; submits queued ones first when the ring is full. Never null.
    io_uring_sqe* sqe();
    // Submits what is queued and waits for at least one completion or `timeoutMs`.
    void submitAndWait(unsigned timeoutMs);
    // Calls fn(cqe) for every ready completion, then marks them seen.
    template <typename Fn>
    unsigned drain(Fn&& fn) {
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_cqe* cqe = nullptr;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            fn(*cqe);
            ++seen;
        }
        io_uring_cq_advance(&ring_, seen);
        return seen;
    }

    std::uint64_t submits() const noexcept { return submits_; }

private:
    Ring() = default;
    io_uring ring_{};
    RingFeatures features_;
    std::uint64_t submits_ = 0;
};

}  // namespace lastmile::uring
