// SPDX-License-Identifier: Apache-2.0
// The cryptodev record engine: lastmile's own TLS record layer (drivers/tls/record_layer.h)
// with the AES-GCM of every record done by a DPDK crypto device, synchronously where the
// device offers CPU crypto (a software device), else as operations on each worker's queue
// pair (a lookaside accelerator such as QAT). No DPDK header here: only
// drivers/cryptodev/*.cc see DPDK's flags and headers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "drivers/cryptodev/config.h"
#include "drivers/record_engine.h"

namespace lastmile::drivers::cryptodev {

// Why a session was not taken; labels are stable metric names.
enum class Decline {
    Version,          // version: not TLS 1.2 or 1.3
    Cipher,           // cipher: not AES-128-GCM or AES-256-GCM, or not offered by the device
    BufferedRecords,  // buffered_records: records OpenSSL already holds, or not only tickets
    UnsentRecords,    // unsent_records: handshake records still in wire.toPeer
    NoSecrets,        // no_secrets: TLS 1.3 without captured traffic secrets
    Keys,             // keys: an OpenSSL KDF failed
    DeviceSessions,   // device_sessions: the device has no session left (pool exhausted)
    QueuePairs,       // queue_pairs: the queue path, and this worker got no queue pair
};
inline constexpr std::size_t kDeclineCount = 8;
inline constexpr std::array<std::string_view, kDeclineCount> kDeclineLabels = {
    "version", "cipher", "buffered_records", "unsent_records", "no_secrets", "keys",
    "device_sessions", "queue_pairs"};

class CryptodevEngine final : public RecordEngine {
public:
    // Starts DPDK (once per process) and the first configured device that does AES-GCM.
    // Never fails: a host or configuration without a usable device gives an unusable engine
    // that says why.
    explicit CryptodevEngine(const CryptodevConfig& config);
    ~CryptodevEngine() override;

    std::string_view name() const noexcept override { return "cryptodev"; }
    EngineProbe probe() const override { return probe_; }
    bool serves(Offload preference) const noexcept override {
        return preference == Offload::Auto || preference == Offload::Cryptodev;
    }
    // Tickets are opened by the record layer, which keeps no resumption secret.
    bool keepsTickets() const noexcept override { return false; }
    // Captures TLS 1.3 traffic secrets, from which attach derives the keys.
    void prepareContext(SSL_CTX* ctx, const ContextFacts& facts) const override;
    void passOver(SSL* ssl) const noexcept override;
    // Takes a session whose handshake just completed (as the kernel engine: everything in
    // wire.toPeer sent, nothing but whole ticket records in wire.fromPeer). Never Broken:
    // every check happens before anything changes.
    Attach attach(SSL* ssl, int fd, Wire& wire) override;
    std::vector<std::pair<std::string_view, std::uint64_t>> declines() const override;
    // Registers the calling worker thread with DPDK and, on a device without CPU crypto,
    // gives it a queue pair of its own (while the device has one left).
    std::unique_ptr<EngineLane> openLane() override;

    struct Device;  // DPDK state, defined in cryptodev_engine.cc

private:
    Attach decline(Decline why, std::string reason);

    EngineProbe probe_;
    std::unique_ptr<Device> device_;  // null when unusable
    DeclineCounts<Decline, kDeclineCount> declines_{kDeclineLabels};
};

}  // namespace lastmile::drivers::cryptodev
