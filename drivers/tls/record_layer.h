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
// A chunk holds sixteen whole records: one batch of AEADs per chunk's worth.
inline constexpr std::size_t kBatch = 16;

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

// What carries out the AEAD of a session's records: a crypto device, or OpenSSL in tests.
// One per session; called from the session's worker thread only. A runner may finish a batch
// within start() (CPU crypto) or later, on a device queue the worker polls.
class AeadRunner {
public:
    virtual ~AeadRunner() = default;
    // Installs one direction's key (AES-128-GCM or AES-256-GCM by its length): at the start
    // and after each KeyUpdate, never while that direction has a batch unfinished.
    virtual Status setKey(AeadDirection direction, std::span<const std::uint8_t> key) = 0;
    // Starts every job of a batch, in order. Until finished() says so, the jobs and the bytes
    // they point to stay where they are. Errc::Unavailable: the device takes nothing more
    // now, nothing was started, try again once the device reported progress. Any other
    // error: the device failed, and the connection must end.
    virtual Status start(AeadDirection direction, std::span<AeadJob> jobs) = 0;
    // Whether every job of the batch last started in `direction` is done; a record that did
    // not authenticate is done too (job.authentic says which). An error is a device failure.
    virtual Result<bool> finished(AeadDirection /*direction*/) { return true; }
    // Jobs are on the device, writing into the session's buffers.
    virtual bool busy() const noexcept { return false; }
};

class RecordLayer {
public:
    // `keys` from deriveClientKeys, AES-GCM only (Errc::Invalid otherwise). Sealing rekeys
    // (KeyUpdate) after `rekeyAfter` records, below AES-GCM's per-key limit.
    static Result<std::unique_ptr<RecordLayer>> create(const SessionKeys& keys,
                                                       std::unique_ptr<AeadRunner> runner,
                                                       std::uint64_t rekeyAfter = kRekeyAfter);

    // Seals plaintext into application-data records appended to `toPeer` while it has
    // room; returns the plaintext consumed. A KeyUpdate owed to the peer goes first. May
    // compact `toPeer` (nothing may be reading it), as open() may compact `plain`.
    //
    // With a runner that finishes later, a batch of records is committed to `toPeer` (and its
    // plaintext consumed from `plain`) by the first call after the device finished it, and
    // open() likewise hands out the plaintext of its records and consumes them: until then
    // (unsettled()) the chunks must stay where they are.
    Result<std::size_t> seal(Chunk& plain, Chunk& toPeer);
    // Opens the whole records at the front of `fromPeer` into `plain` while it has room and
    // consumes them. Tickets are dropped (counted), a KeyUpdate rekeys (and, if the peer asks,
    // owes one back), close_notify ends the stream; any other alert, a record that does not
    // authenticate or does not parse is an error.
    Result<OpenResult> open(Chunk& fromPeer, Chunk& plain);
    // Appends a close_notify alert to `toPeer`. False: not yet (no room, records before it
    // still on the device, or the alert itself is): call again; it is sent once.
    Result<bool> closeNotify(Chunk& toPeer);

    // A batch was started and its records are not placed in the chunks yet.
    bool unsettled() const noexcept { return sealing_.n != 0 || opening_.n != 0; }
    // The runner's device is writing into the chunks: the session must live on.
    bool onDevice() const noexcept { return runner_->busy(); }

    std::uint64_t ticketsDropped() const noexcept { return ticketsDropped_; }
    std::uint64_t keyUpdatesReceived() const noexcept { return keyUpdatesReceived_; }
    std::uint64_t keyUpdatesSent() const noexcept { return keyUpdatesSent_; }

    // RFC 8446 §5.5: AES-GCM may protect at most 2^24.5 records under one key.
    static constexpr std::uint64_t kRekeyAfter = std::uint64_t{1} << 24;

private:
    RecordLayer(const SessionKeys& keys, std::unique_ptr<AeadRunner> runner,
                std::uint64_t rekeyAfter)
        : keys_(keys), runner_(std::move(runner)), rekeyAfter_(rekeyAfter) {}

    // What a seal batch carries besides application data.
    enum class Control { None, KeyUpdate, CloseNotify };
    // Records started on the runner and not yet committed: at most one batch each way.
    struct SealBatch {
        std::array<AeadJob, kBatch> jobs;
        std::size_t n = 0;         // 0: none started
        std::size_t produced = 0;  // record bytes laid out at toPeer's tail
        std::size_t consumed = 0;  // plaintext they carry, still at the front of `plain`
        Control control = Control::None;
    };
    struct OpenBatch {
        std::array<AeadJob, kBatch> jobs;
        // A TLS 1.3 record's last byte (its inner type, or padding) is opened apart from its
        // content, so that, without padding, one record's content ends where the next
        // one's begins in `plain`.
        std::array<std::uint8_t, kBatch> innerType{};
        std::array<std::uint8_t, kBatch> outerType{};
        std::array<std::size_t, kBatch> textLen{};
        std::array<std::size_t, kBatch> recordLen{};
        std::size_t n = 0;  // 0: none started
    };

    bool tls13() const noexcept { return keys_.version == TLS1_3_VERSION; }
    // Bytes a record adds around its content.
    std::size_t overhead() const noexcept;
    // Lays out record `seq` of `type` around `len` content bytes at `out`, copying the
    // content from `content`, and fills `job`.
    std::size_t frame(std::uint8_t type, const std::uint8_t* content, std::size_t len,
                      std::uint8_t* out, std::uint64_t seq, AeadJob& job);
    // Starts one record holding `content` (a control message) as a batch of its own.
    Status startControl(Control control, std::uint8_t type,
                        std::span<const std::uint8_t> content, Chunk& toPeer);
    // Commits the started seal batch to `toPeer` once the runner finished it (false: not
    // yet). The caller consumes the plaintext it carried. A KeyUpdate's record moves us to
    // the next sending keys.
    Result<bool> settleSeal(Chunk& toPeer);
    // Hands out the started open batch's content once the runner finished it (false: not
    // yet) and consumes its records.
    Result<bool> settleOpen(Chunk& fromPeer, Chunk& plain, OpenResult& result);
    // The post-handshake messages of one decrypted handshake record. Sets rekeyed when a
    // KeyUpdate changed the receiving keys (later records of the batch are stale).
    Status onHandshake(std::span<const std::uint8_t> messages, bool& rekeyed);

    SessionKeys keys_;
    std::unique_ptr<AeadRunner> runner_;
    std::uint64_t rekeyAfter_;
    std::uint64_t sealedUnderKey_ = 0;
    bool keyUpdateOwed_ = false;  // the peer asked for ours: sent before the next record
    bool closeNotifySent_ = false;
    SealBatch sealing_;
    OpenBatch opening_;
    std::uint64_t ticketsDropped_ = 0;
    std::uint64_t keyUpdatesReceived_ = 0;
    std::uint64_t keyUpdatesSent_ = 0;
};

}  // namespace lastmile::drivers::tls
