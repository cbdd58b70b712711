// SPDX-License-Identifier: Apache-2.0
// Giving memory back when connections go quiet: parking receives, trimming the heap.
#include "dataplane/worker/worker_impl.h"

#include <malloc.h>

namespace lastmile::dataplane {

namespace {

// malloc_trim once this many handshakes ended or connections parked, and none did for
// kTrimQuiet; keep this much slack.
constexpr unsigned kTrimAfterReleases = 256;
constexpr std::size_t kTrimPad = 1 << 20;
constexpr std::chrono::seconds kTrimQuiet{1};

}  // namespace

void Worker::Impl::park(Connection& c) {
    const bool plain = plaintextWire(c);
    if (has(c, ClientRecv) && !c.clientParking && c.upIn && c.upIn->empty() &&
        !(plain && has(c, BackendSend))) {
        cancel(c, ClientRecv);
        c.clientParking = true;
    }
    if (has(c, BackendRecv) && !c.backendParking && c.downIn && c.downIn->empty() &&
        !(plain && has(c, ClientSend))) {
        cancel(c, BackendRecv);
        c.backendParking = true;
    }
}

void Worker::Impl::noteRelease() {
    ++releasesSinceTrim_;
    lastRelease_ = now_;
}

void Worker::Impl::trimAfterBurst() {
    if (handshaking_ != 0) {
        lastRelease_ = now_;
    } else if (releasesSinceTrim_ >= kTrimAfterReleases && now_ - lastRelease_ >= kTrimQuiet) {
        ::malloc_trim(kTrimPad);
        releasesSinceTrim_ = 0;
    }
}

}  // namespace lastmile::dataplane
