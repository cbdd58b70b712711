// SPDX-License-Identifier: Apache-2.0
// Ring setup with fallbacks, and the submit/wait step of the worker loop.
#include "dataplane/uring/ring.h"

#include <sys/utsname.h>

#include <cstdio>

namespace lastmile::uring {
namespace {

// Multishot accept and cancel-by-fd-all arrived in 5.19; io_uring_probe lists opcodes, not
// flags, so the release decides. A kernel that still refuses fails the SQE with -EINVAL and
// the worker falls back (Ring::disableMultishotAccept).
bool kernelAtLeast(int major, int minor) {
    utsname u{};
    if (::uname(&u) != 0) {
        return false;
    }
    int ma = 0;
    int mi = 0;
    if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) {
        return false;
    }
    return ma > major || (ma == major && mi >= minor);
}

}  // namespace

Result<std::unique_ptr<Ring>> Ring::create(const RingOptions& options) {
    std::unique_ptr<Ring> r(new Ring());
    struct Attempt {
        unsigned flags;
        const char* name;
    };
    const Attempt attempts[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "defer-taskrun"},
        {IORING_SETUP_COOP_TASKRUN, "coop-taskrun"},
        {0, "plain"},
    };
    int err = 0;
    for (const auto& a : attempts) {
        if (!options.deferTaskrun && a.flags != 0) {
            continue;
        }
        io_uring_params params{};
        params.flags = a.flags | IORING_SETUP_CLAMP;
        err = io_uring_queue_init_params(options.entries, &r->ring_, &params);
        if (err == 0) {
            r->features_.setup = a.name;
            break;
        }
        if (err != -EINVAL) {
            break;  // ENOMEM, EPERM (io_uring disabled by sysctl): no flag changes that
        }
    }
    if (err != 0) {
        return fail(std::error_code(-err, std::generic_category()), "setting up io_uring");
    }
    const bool modern = kernelAtLeast(5, 19);
    r->features_.multishotAccept = options.multishotAccept && modern;
    r->features_.cancelFdAll = modern;
    return r;
}

Ring::~Ring() { io_uring_queue_exit(&ring_); }

io_uring_sqe* Ring::sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    while (s == nullptr) {
        io_uring_submit(&ring_);
        ++submits_;
        s = io_uring_get_sqe(&ring_);
    }
    return s;
}

void Ring::submitAndWait(unsigned timeoutMs) {
    __kernel_timespec ts{};
    ts.tv_sec = timeoutMs / 1000;
    ts.tv_nsec = static_cast<long long>(timeoutMs % 1000) * 1'000'000;
    io_uring_cqe* cqe = nullptr;
    ++submits_;
    // -ETIME and -EINTR only mean "nothing yet": the loop checks its timers and comes back.
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
}

}  // namespace lastmile::uring
