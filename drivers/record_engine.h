// SPDX-License-Identifier: Apache-2.0
// Record engines: what carries an established TLS session's records once the handshake is done.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/chunk.h"
#include "base/result.h"
#include "drivers/offload.h"

namespace lastmile::drivers {

// The connection's buffers of TLS records, owned by the worker. Engines that do the record
// layer in userspace read received records from `fromPeer` and append records to send to
// `toPeer`; the worker points these at its chunks before every call and moves the bytes.
struct Wire {
    Chunk* fromPeer = nullptr;
    Chunk* toPeer = nullptr;
    void* owner = nullptr;  // the worker's connection, handed back by EngineLane::poll
};

struct OpenResult {
    std::size_t plaintext = 0;  // bytes appended to the plaintext chunk
    bool closeNotify = false;   // the peer ended its side cleanly; nothing more will come
};

// Where a session's records are built and taken apart.
enum class Framing {
    // In userspace: records pass through the Wire chunks by seal() and open().
    Userspace,
    // In the kernel: the backend socket itself takes and gives plaintext, so the worker
    // moves bytes to and from it directly (splice, recv). seal() is never called; open()
    // is called only when a receive stopped at a record that is not application data
    // (the kernel's EIO), and handles that one record.
    Kernel,
};

// One session on one engine. Calls come from the owning worker thread only.
class RecordSession {
public:
    virtual ~RecordSession() = default;
    virtual std::string_view engine() const noexcept = 0;
    virtual Framing framing() const noexcept { return Framing::Userspace; }

    // Seals plaintext from `plain` (consumed) into records appended to the wire while it has
    // room for a whole record. Returns the plaintext bytes consumed.
    virtual Result<std::size_t> seal(Chunk& plain) = 0;
    // Opens the received records into `plain` while it has room. Records that carry no
    // application data (TLS 1.3 tickets, key updates) are handled here.
    virtual Result<OpenResult> open(Chunk& plain) = 0;
    // Plaintext already opened from the received records but not handed out yet (open()
    // stopped for room): the worker calls open() again before it judges the stream ended.
    virtual bool hasBufferedPlaintext() const noexcept { return false; }
    // Sends close_notify: appended to the wire (userspace framing) or written to the
    // socket as an alert record (kernel framing). False: not yet (no room in the wire or the
    // socket, or records before it are still on a device); call again once there may be.
    virtual Result<bool> closeNotify() = 0;
    // The connection is idle (nothing buffered either way): give back what can be rebuilt.
    virtual void releaseIdleMemory() {}

    // Engines whose device works asynchronously (EngineLane): records were handed to the
    // device and are not placed in the chunks yet. Until this is false the connection's
    // chunks stay where they are (not compacted, released or swapped); seal(), open() and
    // closeNotify() place them when called after the lane reported progress.
    virtual bool unsettled() const noexcept { return false; }
    // The device is writing into the session's buffers: the session must not be destroyed.
    virtual bool onDevice() const noexcept { return false; }
};

// A worker's own queue to an engine's device, opened on the worker's thread before it
// attaches sessions there. Sessions queue operations on it as they seal and open; the worker
// sends them with one flush() after each batch of its own completions, and collects what the
// device finished with poll() while busy(): a call per batch of records, none per byte.
class EngineLane {
public:
    virtual ~EngineLane() = default;
    virtual void flush() = 0;
    // Appends the wires of the sessions that can move on: a batch of theirs finished, or
    // the device, full when they asked, took operations back.
    virtual void poll(std::vector<Wire*>& progressed) = 0;
    // Operations queued or on the device.
    virtual bool busy() const noexcept = 0;
};

// A device an engine drives (a NIC with inline TLS, a crypto device) and what it offers.
struct EngineDevice {
    std::string name;  // "eth0", "crypto_aesni_gcm0"
    std::vector<std::pair<std::string, bool>> features;  // "tx" -> true, "aes_256_gcm" -> true
};

// Whether an engine can work on this host, found once at start.
struct EngineProbe {
    bool usable = false;
    std::string detail;  // what was found, or why it cannot be used
    // What the host offers the engine, for metrics and describe ("ulp", "rekey", ...).
    std::vector<std::pair<std::string, bool>> features;
    std::vector<EngineDevice> devices;
};

// What an engine may need to know about a profile when it prepares the profile's SSL_CTX.
struct ContextFacts {
    bool ciphersChosen = false;  // the policy named its suites: their order is the policy's
};

// How RecordEngine::attach ended.
struct Attach {
    enum class Outcome {
        Taken,     // `session` carries the records from now on
        Declined,  // the socket and `ssl` are as they were: the next engine may try
        Broken,    // the socket was changed and can carry no TLS any more: end the connection
    };
    Outcome outcome = Outcome::Declined;
    std::unique_ptr<RecordSession> session;  // Taken only
    std::string reason;                      // Declined and Broken: why, for the log

    static Attach taken(std::unique_ptr<RecordSession> session) {
        return {Outcome::Taken, std::move(session), {}};
    }
    static Attach declined(std::string reason) {
        return {Outcome::Declined, nullptr, std::move(reason)};
    }
    static Attach broken(std::string reason) {
        return {Outcome::Broken, nullptr, std::move(reason)};
    }
};

// Sessions an engine declined, per reason, for RecordEngine::declines(). `labels` are the
// stable metric names, indexed like the engine's own reason enum. Thread-safe.
template <typename Reason, std::size_t N>
class DeclineCounts {
public:
    explicit constexpr DeclineCounts(const std::array<std::string_view, N>& labels)
        : labels_(labels) {}
    void add(Reason why) noexcept {
        counts_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
    }
    std::vector<std::pair<std::string_view, std::uint64_t>> snapshot() const {
        std::vector<std::pair<std::string_view, std::uint64_t>> out;
        for (std::size_t i = 0; i < N; ++i) {
            out.emplace_back(labels_[i], counts_[i].load(std::memory_order_relaxed));
        }
        return out;
    }

private:
    std::array<std::string_view, N> labels_;
    std::array<std::atomic<std::uint64_t>, N> counts_{};
};

// One way of carrying records. Engines are built once (drivers/engines.h) and shared by every
// worker; everything here is called from many threads at once.
class RecordEngine {
public:
    virtual ~RecordEngine() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual EngineProbe probe() const = 0;

    // Whether a profile with this `offload` preference may send its sessions here.
    virtual bool serves(Offload preference) const noexcept = 0;
    // TLS 1.3 NewSessionTickets that arrive after the hand-off still reach OpenSSL's session
    // cache, so a session here can feed resumption. Sessions that could collect tickets for
    // the next connections are kept on engines that keep them.
    virtual bool keepsTickets() const noexcept = 0;
    // Called on every profile's SSL_CTX whose preference this engine serves, when the profile
    // is compiled, before any session uses it: what the engine needs from the handshake (the
    // kernel engine captures TLS 1.3 traffic secrets). The compiler raises the security level
    // afterwards, so nothing done here can lower it.
    virtual void prepareContext(SSL_CTX* /*ctx*/, const ContextFacts& /*facts*/) const {}
    // The session `ssl` went to another engine: drops what prepareContext made it keep.
    virtual void passOver(SSL* /*ssl*/) const noexcept {}

    // Called by each worker on its own thread before it attaches sessions; an engine that
    // keeps per-thread state for its device returns the lane the worker then drives.
    virtual std::unique_ptr<EngineLane> openLane() { return nullptr; }

    // Takes over the established session `ssl` on the backend socket `fd`, whose records
    // move through `wire` (which must outlive the session). A kernel-framed session no longer
    // needs `ssl` once taken: the worker frees it.
    virtual Attach attach(SSL* ssl, int fd, Wire& wire) = 0;
    // Sessions this engine declined so far, per reason: stable snake_case labels (metric
    // names) and counts.
    virtual std::vector<std::pair<std::string_view, std::uint64_t>> declines() const { return {}; }
};

}  // namespace lastmile::drivers
