// SPDX-License-Identifier: Apache-2.0
// The crypto device behind the cryptodev engine and the two ways a session's AEADs reach it:
// synchronously on the worker's CPU (CpuCryptoRunner), or as operations on the worker's own
// queue pair (QueueRunner, through its Lane). Private to drivers/cryptodev: DPDK headers.
#pragma once

#include <rte_crypto.h>
#include <rte_cryptodev.h>
#include <rte_mbuf.h>

#include <array>
#include <mutex>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "drivers/cryptodev/cryptodev_engine.h"
#include "drivers/tls/record_layer.h"

namespace lastmile::drivers::cryptodev {

struct CryptodevEngine::Device {
    std::uint8_t id = 0;
    std::string name;
    rte_mempool* sessions = nullptr;
    bool aes128 = false;
    bool aes256 = false;
    // The synchronous CPU path, when the device has one; otherwise the queue path, with one
    // queue pair per worker lane.
    bool cpuCrypto = false;
    std::uint16_t queuePairs = 0;
    std::mutex queuePairsMu;
    std::vector<std::uint16_t> freeQueuePairs;  // not taken by a lane

    ~Device();
};

using Device = CryptodevEngine::Device;

// A session's device sessions (one per direction), rebuilt on each KeyUpdate.
class DeviceRunner : public tls::AeadRunner {
public:
    DeviceRunner(const Device& device, bool tls13, std::uint16_t ivOffset)
        : device_(device), aadLen_(tls13 ? tls::kRecordHeader : 13), ivOffset_(ivOffset) {}
    ~DeviceRunner() override;
    DeviceRunner(const DeviceRunner&) = delete;
    DeviceRunner& operator=(const DeviceRunner&) = delete;

    Status setKey(tls::AeadDirection d, std::span<const std::uint8_t> key) override;

protected:
    void* session(tls::AeadDirection d) const { return sessions_[index(d)]; }
    static std::size_t index(tls::AeadDirection d) { return d == tls::AeadDirection::Seal ? 0 : 1; }

    const Device& device_;
    const std::size_t aadLen_;

private:
    const std::uint16_t ivOffset_;
    std::array<void*, 2> sessions_{};  // seal, open
};

// Every record of a batch in one rte_cryptodev_sym_cpu_crypto_process call on the worker's
// thread: pointers into the connection's own chunks, in place, no copy, no queue.
class CpuCryptoRunner final : public DeviceRunner {
public:
    CpuCryptoRunner(const Device& device, bool tls13) : DeviceRunner(device, tls13, 0) {}
    Status start(tls::AeadDirection d, std::span<tls::AeadJob> jobs) override;
};

class QueueRunner;

// A worker's own path to the device, opened on the worker's thread: the thread registered
// with DPDK (its per-thread mempool caches), and on the queue path a queue pair with the
// operations and DMA-able buffers the worker's sessions use. Sessions queue operations;
// flush() enqueues them in one burst, poll() dequeues what the device finished.
class Lane final : public EngineLane {
public:
    explicit Lane(Device& device);
    ~Lane() override;
    Lane(const Lane&) = delete;
    Lane& operator=(const Lane&) = delete;

    // The calling thread's lane to `device`, if it opened one.
    static Lane* of(const Device& device);

    void flush() override;
    void poll(std::vector<Wire*>& progressed) override;
    bool busy() const noexcept override { return !queued_.empty() || onDevice_ != 0; }

    // Whether this lane has a queue pair (the queue path; lanes beyond the device's queue
    // pairs have none) and which.
    std::optional<std::uint16_t> queuePair() const noexcept { return queuePair_; }
    // Operations and buffers for a batch; false when the lane has none left now.
    bool take(std::span<rte_crypto_op*> ops, std::span<rte_mbuf*> buffers);
    void queue(rte_crypto_op* op) { queued_.push_back(op); }
    // `runner` found the lane full: poll() reports it once operations came back.
    void waitForRoom(QueueRunner& runner);
    void forget(QueueRunner& runner);

private:
    Device& device_;
    bool registered_ = false;  // this lane registered the thread with DPDK
    std::optional<std::uint16_t> queuePair_;
    rte_mempool* ops_ = nullptr;
    rte_mempool* buffers_ = nullptr;
    std::vector<rte_crypto_op*> queued_;  // not yet enqueued
    std::size_t onDevice_ = 0;
    std::vector<QueueRunner*> waiting_;
};

// A batch as operations on the worker's queue pair. Each record is copied into a buffer of
// DPDK's memory (which a device can reach by DMA, unlike the connection's chunks), sealed or
// opened there, and copied back when the lane's poll() hands the operation back.
class QueueRunner final : public DeviceRunner {
public:
    QueueRunner(const Device& device, bool tls13, Lane& lane, Wire& wire);
    ~QueueRunner() override { lane_.forget(*this); }

    Status start(tls::AeadDirection d, std::span<tls::AeadJob> jobs) override;
    Result<bool> finished(tls::AeadDirection d) override;
    bool busy() const noexcept override { return batches_[0].left + batches_[1].left != 0; }

    // Lane::poll: `op`, job `job` of direction `d`, came back. True when it was the batch's
    // last: the session can move on.
    bool complete(tls::AeadDirection d, std::size_t job, rte_crypto_op* op);
    Wire& wire() const noexcept { return wire_; }

private:
    struct Batch {
        std::span<tls::AeadJob> jobs;
        std::size_t left = 0;  // operations not back yet
        std::string failure;   // the device failed one of them
    };

    Lane& lane_;
    Wire& wire_;
    std::array<Batch, 2> batches_;
};

}  // namespace lastmile::drivers::cryptodev
