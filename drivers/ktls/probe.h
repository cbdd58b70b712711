// SPDX-License-Identifier: Apache-2.0
// What kernel TLS this host offers: the ULP, ciphers per TLS version and direction, rekey, NICs.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/tls/keys.h"

namespace lastmile::drivers::ktls {

// Whether TLS_TX and TLS_RX accepted the cipher for one TLS version on a fresh socket.
struct DirectionSupport {
    bool tx = false;
    bool rx = false;
    std::string error;  // the first refusal ("TLS_RX: Invalid argument"); empty if both work
};

struct CipherSupport {
    tls::Aead cipher = tls::Aead::Aes128Gcm;
    DirectionSupport tls12;
    DirectionSupport tls13;
};

// NIC inline TLS crypto of one interface, from its ethtool feature strings
// tls-hw-tx-offload / tls-hw-rx-offload (active = enabled now, not merely available).
struct NicTlsOffload {
    std::string interface;
    bool tx = false;
    bool rx = false;
};

struct KernelTlsCapabilities {
    // setsockopt(TCP_ULP, "tls") works. When it does not, ulpError holds the kernel's reason
    // (ENOENT: the tls module is absent or the kernel was built without CONFIG_TLS).
    bool ulp = false;
    std::string ulpError;
    std::array<CipherSupport, tls::kAeadCount> ciphers{};  // indexed by tls::Aead
    // TLS 1.3 receive offload (5.1+) for at least one cipher.
    bool tls13Rx = false;
    // A second TLS_TX on a TLS 1.3 socket is accepted, i.e. the kernel can install new keys
    // after a KeyUpdate. Kernels without rekey (6.1) refuse it with EBUSY.
    bool rekey = false;
    std::string rekeyDetail;          // how rekey was found (un)supported
    std::vector<NicTlsOffload> nics;  // every interface that reports the feature strings
    std::string nicError;             // why interfaces could not be listed or queried

    const CipherSupport& of(tls::Aead c) const noexcept {
        return ciphers[static_cast<std::size_t>(c)];
    }
    // TLS_TX and TLS_RX both work for this cipher and version (TLS 1.2 if !tls13).
    bool supports(tls::Aead c, bool tls13) const noexcept;
    // The ULP works and at least one cipher works both ways in some version.
    bool usable() const noexcept;
    // One line for logs and `describe`, e.g. "ulp ok; tls1.2 AES-128-GCM,...; rekey no".
    std::string describe() const;
};

// Probes with real loopback TCP pairs (a fresh pair per cipher and version; dummy keys).
// Takes some milliseconds: call once at start. Never fails: what cannot be probed is
// reported unsupported with the reason.
KernelTlsCapabilities probeKernelTls();

}  // namespace lastmile::drivers::ktls
