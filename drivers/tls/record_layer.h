// SPDX-License-Identifier: Apache-2.0
// RecordLayer: TLS 1.2 and 1.3 AES-GCM records built and taken apart in userspace, for engines
// whose AEAD runs elsewhere (a DPDK crypto device): framing, nonces, sequence numbers,
// alerts, close_notify, session tickets and KeyUpdate both ways.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "base/chunk.h"
#include "base/result.h"
#include "drivers/record_engine.h"
#include "drivers/tls/keys.h"

namespace lastmile::drivers::tls {

inline constexpr std::size_t kRecordHeader = 5;
inline constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;
inline constexpr std::size_t kAeadTag = 16;

// One record's AEAD, in place. The text is one or two spans (a TLS 1.3 record's inner
// content type may sit apart from its content); the tag follows wherever it is.
struct AeadJob {
    struct Span {
        std::uint8_t* data = nullptr;
        std::size_t len = 0;
    };
    std::array<Span, 2> text{};  // plaintext (seal) or ciphertext (open); text[1] may be empty
    std::uint8_t* tag = nullptr;  // kAeadTag bytes: written by seal, checked by open
    std::array<std::uint8_t, 12> nonce{};
    std::array<std::uint8_t, 13> aad{};
    std::size_t aadLen = 0;
    bool authentic = false;  // open: the tag matched (set by the runner)
};

enum class AeadDirection { Seal, Open };

// What carries out the AEAD of a session's records: a crypto device's queue, or OpenSSL in
// tests. One per session; called from the session's worker thread only.
class AeadRunner {
public:
    virtual ~AeadRunner() = default;
    // Installs one direction's key (AES-128-GCM or AES-256-GCM by its length): at the start
    // and after each KeyUpdate.
    virtual Status setKey(AeadDirection direction, std::span<const std::uint8_t> key) = 0;
    // Runs every job, in order, before it returns. An error means the device failed, not that
    // a record did not authenticate (that is job.authentic): the connection must end.
    virtual Status run(AeadDirection direction, std::span<AeadJob> jobs) = 0;
};

class RecordLayer {
public:
    // `keys` from deriveClientKeys, AES-GCM only (Errc::Invalid otherwise). Sealing rekeys
    // (KeyUpdate) after `rekeyAfter` records, below AES-GCM's per-key limit.
    static Result<std::unique_ptr<RecordLayer>> create(const SessionKeys& keys,
                                                       std::unique_ptr<AeadRunner> runner,
                                                       std::uint64_t rekeyAfter = kRekeyAfter);

    // Seals plaintext into application-data records appended to `toPeer` while it has room;
    // returns the plaintext consumed. A KeyUpdate owed to the peer goes first. May compact
    // `toPeer` (nothing may be reading it), as open() may compact `plain`.
    Result<std::size_t> seal(Chunk& plain, Chunk& toPeer);
    // Opens the whole records at the front of `fromPeer` into `plain` while it has room and
    // consumes them. Tickets are dropped (counted), a KeyUpdate rekeys (and, if the peer asks,
    // owes one back), close_notify ends the stream; any other alert, a record that does not
    // authenticate or does not parse is an error.
    Result<OpenResult> open(Chunk& fromPeer, Chunk& plain);
    // Appends a close_notify alert to `toPeer` (Errc::Unavailable: no room yet).
    Status closeNotify(Chunk& toPeer);

    std::uint64_t ticketsDropped() const noexcept { return ticketsDropped_; }
    std::uint64_t keyUpdatesReceived() const noexcept { return keyUpdatesReceived_; }
    std::uint64_t keyUpdatesSent() const noexcept { return keyUpdatesSent_; }

    // RFC 8446 §5.5: AES-GCM may protect at most 2^24.5 records under one key.
    static constexpr std::uint64_t kRekeyAfter = std::uint64_t{1} << 24;

private:
    RecordLayer(const SessionKeys& keys, std::unique_ptr<AeadRunner> runner,
                std::uint64_t rekeyAfter)
        : keys_(keys), runner_(std::move(runner)), rekeyAfter_(rekeyAfter) {}

    bool tls13() const noexcept { return keys_.version == TLS1_3_VERSION; }
    // Bytes a record adds around its content.
    std::size_t overhead() const noexcept;
    // Lays out one record of `type` around `len` content bytes at toPeer's tail, copying the
    // content from `content`, and fills `job`; commit happens after the AEAD ran.
    std::size_t frame(std::uint8_t type, const std::uint8_t* content, std::size_t len,
                      std::uint8_t* out, AeadJob& job);
    // Seals one record holding `content` (a control message) and commits it.
    Status sealControl(std::uint8_t type, std::span<const std::uint8_t> content, Chunk& toPeer);
    // Sends our KeyUpdate and moves to the next sending keys.
    Status updateSendingKeys(Chunk& toPeer, bool requestPeerUpdate);
    // The post-handshake messages of one decrypted handshake record. Sets rekeyed when a
    // KeyUpdate changed the receiving keys (later records of the batch are stale).
    Status onHandshake(std::span<const std::uint8_t> messages, bool& rekeyed);

    SessionKeys keys_;
    std::unique_ptr<AeadRunner> runner_;
    std::uint64_t rekeyAfter_;
    std::uint64_t sealedUnderKey_ = 0;
    bool keyUpdateOwed_ = false;  // the peer asked for ours: sent before the next record
    std::uint64_t ticketsDropped_ = 0;
    std::uint64_t keyUpdatesReceived_ = 0;
    std::uint64_t keyUpdatesSent_ = 0;
};

}  // namespace lastmile::drivers::tls
