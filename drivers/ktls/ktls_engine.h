// SPDX-License-Identifier: Apache-2.0
// The kernel record engine: an established session's records are built and opened by the
// kernel's TLS ULP (TLS_TX / TLS_RX), so the socket carries plaintext for the worker.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
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
};
inline constexpr std::size_t kDeclineCount = 9;
std::string_view declineLabel(Decline d) noexcept;

class KernelEngine final : public RecordEngine {
public:
    // Probes the kernel (probeKernelTls) once.
    KernelEngine();
    // With capabilities found earlier (or made up by a test).
    explicit KernelEngine(KernelTlsCapabilities caps);

    std::string_view name() const noexcept override { return "kernel"; }
    // Usable iff the ULP works and at least one cipher works both ways; detail = describe().
    EngineProbe probe() const override;
    const KernelTlsCapabilities& capabilities() const noexcept { return caps_; }

    // Moves the client session `ssl`, whose handshake just completed and which has sent and
    // received no application record, into the kernel on `fd`. Every check happens before
    // the socket is touched; on any of them, and when TCP_ULP itself is refused, the result is
    // Errc::Unavailable and the socket still carries userspace TLS (fall back to openssl).
    // Errc::Internal means TLS_TX or TLS_RX failed after the ULP was set: the socket can
    // carry neither kernel nor userspace TLS any more, so the caller must end the
    // connection. The caller must have sent everything in wire.toPeer. Nothing may sit in
    // wire.fromPeer or inside OpenSSL, except whole TLS 1.3 records holding only session
    // tickets, which OpenSSL opens here (its session cache keeps them). On success the
    // session needs neither `ssl` nor `wire`. Taken or declined, the TLS 1.3 secrets kept on
    // `ssl` are cleansed.
    Result<std::unique_ptr<RecordSession>> attach(SSL* ssl, int fd, Wire& wire) override;

    std::vector<std::pair<std::string_view, std::uint64_t>> declines() const override;
    // TLS 1.3 NewSessionTickets received in the kernel and dropped (resumption needs the
    // resumption secret, which this engine does not keep).
    std::uint64_t ticketsDropped() const noexcept {
        return ticketsDropped_.load(std::memory_order_relaxed);
    }

private:
    Unexpected<Error> decline(Decline why, Errc code, std::string reason);

    KernelTlsCapabilities caps_;
    std::array<std::atomic<std::uint64_t>, kDeclineCount> declines_{};
    // Sessions point here; the engine outlives every session it attached.
    std::atomic<std::uint64_t> ticketsDropped_{0};
};

}  // namespace lastmile::drivers::ktls
