// SPDX-License-Identifier: Apache-2.0
// The kernel record engines: an established session's records are built and opened by the
// kernel's TLS ULP (TLS_TX / TLS_RX), so the socket carries plaintext for the worker. `kernel`
// seals in software; `nic` takes only sessions whose route leaves through a NIC with TLS
// transmit offload, whose inline crypto the kernel then uses.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "drivers/ktls/probe.h"
#include "drivers/record_engine.h"

namespace lastmile::drivers::ktls {

// Why a session was not moved into the kernel; labels are stable metric names.
enum class Decline {
    NoUlp,            // no_ulp: the kernel has no TLS ULP
    Version,          // version: not TLS 1.2 or 1.3
    Cipher,           // cipher: not AES-GCM / ChaCha20-Poly1305, or not offered by this kernel
    BufferedRecords,  // buffered_records: records already read into userspace (wire, OpenSSL)
    UnsentRecords,    // unsent_records: handshake records still in wire.toPeer
    NoSecrets,        // no_secrets: TLS 1.3 without captureTrafficSecrets on its SSL_CTX
    Keys,             // keys: an OpenSSL KDF failed
    UlpRefused,       // ulp_refused: setsockopt(TCP_ULP) failed; the socket is unchanged
    KernelRefused,    // kernel_refused: TLS_TX/TLS_RX failed after the ULP: connection lost
    NotOffloaded,     // not_offloaded (nic): the route's interface has no TLS transmit offload
};
inline constexpr std::size_t kDeclineCount = 10;
inline constexpr std::array<std::string_view, kDeclineCount> kDeclineLabels = {
    "no_ulp",     "version", "cipher",      "buffered_records", "unsent_records",
    "no_secrets", "keys",    "ulp_refused", "kernel_refused",   "not_offloaded"};

class KernelEngine final : public RecordEngine {
public:
    enum class Mode { Software, Nic };

    // Probes the kernel (probeKernelTls) once.
    KernelEngine();
    // With capabilities found earlier (or made up by a test).
    explicit KernelEngine(KernelTlsCapabilities caps, Mode mode = Mode::Software);

    // "kernel" or "nic".
    std::string_view name() const noexcept override;
    // Usable iff the ULP works and at least one cipher works both ways (nic: and some
    // interface has TLS transmit offload enabled); detail = describe().
    EngineProbe probe() const override;
    const KernelTlsCapabilities& capabilities() const noexcept { return caps_; }
    // `auto` and the engine's own name.
    bool serves(Offload preference) const noexcept override;
    // Tickets that come after the hand-off arrive in the kernel, which cannot open them.
    bool keepsTickets() const noexcept override { return false; }
    // Captures TLS 1.3 traffic secrets, from which attach derives the keys. nic: AES-GCM
    // suites come first too (what NICs seal), unless the policy ordered the suites itself.
    void prepareContext(SSL_CTX* ctx, const ContextFacts& facts) const override;
    void passOver(SSL* ssl) const noexcept override;

    // Moves the client session `ssl`, whose handshake just completed and which has sent and
    // received no application record, into the kernel on `fd`. Every check happens before
    // the socket is touched; on any of them, and when TCP_ULP itself is refused, the session
    // is declined and the socket still carries userspace TLS. Broken means TLS_TX or TLS_RX
    // failed after the ULP was set: the socket can carry neither kernel nor userspace TLS any
    // more. The caller must have sent everything in wire.toPeer. Nothing may sit in
    // wire.fromPeer or inside OpenSSL, except whole TLS 1.3 records holding only session
    // tickets, which OpenSSL opens here (its session cache keeps them). Once taken the
    // session needs neither `ssl` nor `wire`, and the TLS 1.3 secrets kept on `ssl` are
    // cleansed; a declined session keeps them for the next engine (passOver drops them).
    Attach attach(SSL* ssl, int fd, Wire& wire) override;

    std::vector<std::pair<std::string_view, std::uint64_t>> declines() const override;
    // TLS 1.3 NewSessionTickets received in the kernel and dropped (resumption needs the
    // resumption secret, which this engine does not keep).
    std::uint64_t ticketsDropped() const noexcept {
        return ticketsDropped_.load(std::memory_order_relaxed);
    }

private:
    Attach decline(Decline why, std::string reason);

    KernelTlsCapabilities caps_;
    Mode mode_;
    DeclineCounts<Decline, kDeclineCount> declines_{kDeclineLabels};
    // Sessions point here; the engine outlives every session it attached.
    std::atomic<std::uint64_t> ticketsDropped_{0};
};

}  // namespace lastmile::drivers::ktls
