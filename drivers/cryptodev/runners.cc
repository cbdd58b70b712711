// SPDX-License-Identifier: Apache-2.0
// How a session's record AEADs reach the device: the CPU path in one call, or the queue path
// as operations on the worker's lane.
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "base/log.h"
#include "drivers/cryptodev/device.h"

namespace lastmile::drivers::cryptodev {
namespace {

constexpr const char* kLog = "cryptodev";

// Each operation's private area, after the symmetric operation: which runner and job it
// belongs to, then the nonce and the additional data (DPDK memory, so a device reads them by
// DMA as it reads the buffer).
struct OpTag {
    QueueRunner* runner;
    std::uint8_t direction;
    std::uint8_t job;
};
constexpr std::uint16_t kTagOffset = sizeof(rte_crypto_op) + sizeof(rte_crypto_sym_op);
constexpr std::uint16_t kIvOffset = kTagOffset + 16;
constexpr std::uint16_t kAadOffset = kIvOffset + 16;
constexpr std::uint16_t kOpPrivate = kAadOffset + 16 - kTagOffset;
static_assert(sizeof(OpTag) <= 16);

// Per lane: a queue pair's descriptors, and buffers for sixteen batches of records in flight;
// a worker with more waits for some to come back (Lane::waitForRoom).
constexpr std::uint32_t kLaneOps = 1024;
constexpr std::uint32_t kLaneBuffers = 256;
// The largest record text either version allows (TLS 1.2: 2^14 + 2048), and its tag.
constexpr std::uint16_t kBufferRoom =
    RTE_PKTMBUF_HEADROOM + tls::kMaxRecordPlaintext + 2048 + tls::kAeadTag;
constexpr std::uint16_t kPollBurst = 64;

// op->sym is a flexible array member: GCC 12's -Warray-bounds fires on op->sym->field in
// our code. The same address, reached by its offset.
rte_crypto_sym_op* symOf(rte_crypto_op* op) {
    return reinterpret_cast<rte_crypto_sym_op*>(reinterpret_cast<char*>(op) +
                                                offsetof(rte_crypto_op, sym));
}

thread_local std::array<Lane*, RTE_CRYPTO_MAX_DEVS> tLanes{};

}  // namespace

Device::~Device() {
    rte_cryptodev_stop(id);
    rte_cryptodev_close(id);
    rte_mempool_free(sessions);
}

DeviceRunner::~DeviceRunner() {
    for (void* s : sessions_) {
        if (s != nullptr) {
            rte_cryptodev_sym_session_free(device_.id, s);
        }
    }
}

Status DeviceRunner::setKey(tls::AeadDirection d, std::span<const std::uint8_t> key) {
    rte_crypto_sym_xform xform{};
    xform.type = RTE_CRYPTO_SYM_XFORM_AEAD;
    xform.aead.op = d == tls::AeadDirection::Seal ? RTE_CRYPTO_AEAD_OP_ENCRYPT
                                                   : RTE_CRYPTO_AEAD_OP_DECRYPT;
    xform.aead.algo = RTE_CRYPTO_AEAD_AES_GCM;
    xform.aead.key.data = key.data();
    xform.aead.key.length = static_cast<std::uint16_t>(key.size());
    xform.aead.iv.offset = ivOffset_;
    xform.aead.iv.length = 12;
    xform.aead.digest_length = tls::kAeadTag;
    xform.aead.aad_length = static_cast<std::uint16_t>(aadLen_);
    void* made = rte_cryptodev_sym_session_create(device_.id, &xform, device_.sessions);
    if (made == nullptr) {
        return fail(Errc::Unavailable, "the crypto device has no session left");
    }
    void*& slot = sessions_[index(d)];
    if (slot != nullptr) {
        rte_cryptodev_sym_session_free(device_.id, slot);
    }
    slot = made;
    return {};
}

Status CpuCryptoRunner::start(tls::AeadDirection d, std::span<tls::AeadJob> jobs) {
    std::array<rte_crypto_vec, 2 * tls::kBatch> vecs{};
    std::array<rte_crypto_sgl, tls::kBatch> sgls{};
    std::array<rte_crypto_va_iova_ptr, tls::kBatch> ivs{};
    std::array<rte_crypto_va_iova_ptr, tls::kBatch> digests{};
    std::array<rte_crypto_va_iova_ptr, tls::kBatch> aads{};
    std::array<std::int32_t, tls::kBatch> status{};
    if (jobs.size() > tls::kBatch) {
        return fail(Errc::Internal, "more records in one batch than the runner takes");
    }
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        tls::AeadJob& job = jobs[i];
        std::uint32_t segments = 0;
        for (const auto& span : job.text) {
            if (span.len != 0) {
                const auto len = static_cast<std::uint32_t>(span.len);
                vecs[2 * i + segments++] = {span.data, RTE_BAD_IOVA, len, len};
            }
        }
        sgls[i] = {&vecs[2 * i], segments};
        ivs[i] = {job.nonce.data(), RTE_BAD_IOVA};
        digests[i] = {job.tag, RTE_BAD_IOVA};
        aads[i] = {job.aad.data(), RTE_BAD_IOVA};
    }
    rte_crypto_sym_vec vec{};
    vec.num = static_cast<std::uint32_t>(jobs.size());
    vec.src_sgl = sgls.data();
    vec.iv = ivs.data();
    vec.digest = digests.data();
    vec.aad = aads.data();
    vec.status = status.data();
    rte_crypto_sym_ofs ofs{};
    ofs.raw = 0;
    rte_cryptodev_sym_cpu_crypto_process(device_.id, session(d), ofs, &vec);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (d == tls::AeadDirection::Seal && status[i] != 0) {
            return fail(Errc::Internal, "the crypto device failed to seal a record (status " +
                                            std::to_string(status[i]) + ")");
        }
        jobs[i].authentic = status[i] == 0;
    }
    return {};
}

Lane::Lane(Device& device) : device_(device) {
    // DPDK's per-thread mempool caches need an lcore id; without one every allocation
    // goes to the shared ring.
    if (rte_lcore_id() == LCORE_ID_ANY) {
        registered_ = rte_thread_register() == 0;
        if (!registered_) {
            LM_LOG(Warning, kLog, "registering a worker thread with DPDK: "
                                      << rte_strerror(rte_errno));
        }
    }
    tLanes[device_.id] = this;
    if (device_.cpuCrypto) {
        return;
    }
    std::uint16_t qp = 0;
    {
        std::lock_guard lock(device_.queuePairsMu);
        if (device_.freeQueuePairs.empty()) {
            LM_LOG(Warning, kLog, device_.name << " has " << device_.queuePairs
                                               << " queue pairs, fewer than the workers: a "
                                                  "worker without one sends its sessions to "
                                                  "other engines");
            return;
        }
        qp = device_.freeQueuePairs.back();
        device_.freeQueuePairs.pop_back();
    }
    const std::string suffix = std::to_string(device_.id) + "_" + std::to_string(qp);
    const int socket = rte_cryptodev_socket_id(device_.id);
    ops_ = rte_crypto_op_pool_create(("lm_op_" + suffix).c_str(), RTE_CRYPTO_OP_TYPE_SYMMETRIC,
                                     kLaneOps, 0, kOpPrivate, socket);
    buffers_ = rte_pktmbuf_pool_create(("lm_buf_" + suffix).c_str(), kLaneBuffers, 0, 0,
                                       kBufferRoom, socket);
    if (ops_ == nullptr || buffers_ == nullptr) {
        LM_LOG(Warning, kLog, "no memory for the queue pair of a worker on "
                                  << device_.name << " (" << rte_strerror(rte_errno)
                                  << "): its sessions go to other engines");
        std::lock_guard lock(device_.queuePairsMu);
        device_.freeQueuePairs.push_back(qp);
        return;
    }
    queuePair_ = qp;
}

Lane::~Lane() {
    rte_mempool_free(buffers_);
    rte_mempool_free(ops_);
    if (queuePair_) {
        std::lock_guard lock(device_.queuePairsMu);
        device_.freeQueuePairs.push_back(*queuePair_);
    }
    tLanes[device_.id] = nullptr;
    if (registered_) {
        rte_thread_unregister();
    }
}

Lane* Lane::of(const Device& device) { return tLanes[device.id]; }

void Lane::flush() {
    if (queued_.empty()) {
        return;
    }
    const std::uint16_t taken = rte_cryptodev_enqueue_burst(
        device_.id, *queuePair_, queued_.data(), static_cast<std::uint16_t>(queued_.size()));
    onDevice_ += taken;
    // A full queue pair takes the rest at a later flush.
    queued_.erase(queued_.begin(), queued_.begin() + taken);
}

void Lane::poll(std::vector<Wire*>& progressed) {
    if (onDevice_ == 0) {
        return;
    }
    std::array<rte_crypto_op*, kPollBurst> done;
    const std::uint16_t n =
        rte_cryptodev_dequeue_burst(device_.id, *queuePair_, done.data(), kPollBurst);
    onDevice_ -= n;
    for (std::uint16_t i = 0; i < n; ++i) {
        const OpTag tag = *rte_crypto_op_ctod_offset(done[i], OpTag*, kTagOffset);
        if (tag.runner->complete(static_cast<tls::AeadDirection>(tag.direction), tag.job,
                                 done[i])) {
            progressed.push_back(&tag.runner->wire());
        }
    }
    if (n > 0 && !waiting_.empty()) {
        for (QueueRunner* r : waiting_) {
            progressed.push_back(&r->wire());
        }
        waiting_.clear();
    }
}

bool Lane::take(std::span<rte_crypto_op*> ops, std::span<rte_mbuf*> buffers) {
    const auto n = static_cast<std::uint16_t>(ops.size());
    if (rte_crypto_op_bulk_alloc(ops_, RTE_CRYPTO_OP_TYPE_SYMMETRIC, ops.data(), n) != n) {
        return false;
    }
    if (rte_pktmbuf_alloc_bulk(buffers_, buffers.data(), n) != 0) {
        rte_mempool_put_bulk(ops_, reinterpret_cast<void**>(ops.data()), n);
        return false;
    }
    return true;
}

void Lane::waitForRoom(QueueRunner& runner) {
    if (std::find(waiting_.begin(), waiting_.end(), &runner) == waiting_.end()) {
        waiting_.push_back(&runner);
    }
}

void Lane::forget(QueueRunner& runner) { std::erase(waiting_, &runner); }

QueueRunner::QueueRunner(const Device& device, bool tls13, Lane& lane, Wire& wire)
    : DeviceRunner(device, tls13, kIvOffset), lane_(lane), wire_(wire) {}

Status QueueRunner::start(tls::AeadDirection d, std::span<tls::AeadJob> jobs) {
    std::array<rte_crypto_op*, tls::kBatch> ops;
    std::array<rte_mbuf*, tls::kBatch> buffers;
    const std::size_t n = jobs.size();
    if (n > tls::kBatch) {
        return fail(Errc::Internal, "more records in one batch than the runner takes");
    }
    if (!lane_.take({ops.data(), n}, {buffers.data(), n})) {
        lane_.waitForRoom(*this);
        return fail(Errc::Unavailable, "the crypto device's queue is full");
    }
    for (std::size_t i = 0; i < n; ++i) {
        const tls::AeadJob& job = jobs[i];
        rte_mbuf* m = buffers[i];
        auto* data = rte_pktmbuf_mtod(m, std::uint8_t*);
        std::uint32_t len = 0;
        for (const auto& span : job.text) {
            if (span.len != 0) {  // an unused span has no pointer: memcpy must not see it
                std::memcpy(data + len, span.data, span.len);
                len += static_cast<std::uint32_t>(span.len);
            }
        }
        if (d == tls::AeadDirection::Open) {
            std::memcpy(data + len, job.tag, tls::kAeadTag);
        }
        rte_pktmbuf_append(m, static_cast<std::uint16_t>(len + tls::kAeadTag));

        rte_crypto_op* op = ops[i];
        rte_crypto_op_attach_sym_session(op, session(d));
        rte_crypto_sym_op* sym = symOf(op);
        sym->m_src = m;
        sym->aead.data.offset = 0;
        sym->aead.data.length = len;
        sym->aead.digest.data = data + len;
        sym->aead.digest.phys_addr = rte_pktmbuf_iova_offset(m, len);
        std::memcpy(rte_crypto_op_ctod_offset(op, std::uint8_t*, kIvOffset), job.nonce.data(),
                    job.nonce.size());
        auto* aad = rte_crypto_op_ctod_offset(op, std::uint8_t*, kAadOffset);
        std::memcpy(aad, job.aad.data(), job.aadLen);
        sym->aead.aad.data = aad;
        sym->aead.aad.phys_addr = rte_crypto_op_ctophys_offset(op, kAadOffset);
        *rte_crypto_op_ctod_offset(op, OpTag*, kTagOffset) =
            OpTag{this, static_cast<std::uint8_t>(d), static_cast<std::uint8_t>(i)};
        lane_.queue(op);
    }
    batches_[index(d)] = Batch{jobs, n, {}};
    return {};
}

bool QueueRunner::complete(tls::AeadDirection d, std::size_t job, rte_crypto_op* op) {
    Batch& b = batches_[index(d)];
    tls::AeadJob& j = b.jobs[job];
    rte_mbuf* m = symOf(op)->m_src;
    const auto* data = rte_pktmbuf_mtod(m, const std::uint8_t*);
    if (op->status == RTE_CRYPTO_OP_STATUS_SUCCESS) {
        std::size_t at = 0;
        for (const auto& span : j.text) {
            if (span.len != 0) {
                std::memcpy(span.data, data + at, span.len);
                at += span.len;
            }
        }
        if (d == tls::AeadDirection::Seal) {
            std::memcpy(j.tag, data + at, tls::kAeadTag);
        }
        j.authentic = true;
    } else if (op->status == RTE_CRYPTO_OP_STATUS_AUTH_FAILED &&
               d == tls::AeadDirection::Open) {
        j.authentic = false;  // nothing of it is copied out
    } else if (b.failure.empty()) {
        b.failure = "the crypto device failed a record (operation status " +
                    std::to_string(op->status) + ")";
    }
    rte_pktmbuf_free(m);
    rte_crypto_op_free(op);
    return --b.left == 0;
}

Result<bool> QueueRunner::finished(tls::AeadDirection d) {
    const Batch& b = batches_[index(d)];
    if (b.left != 0) {
        return false;
    }
    if (!b.failure.empty()) {
        return fail(Errc::Internal, b.failure);
    }
    return true;
}

}  // namespace lastmile::drivers::cryptodev
