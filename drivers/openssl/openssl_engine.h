// SPDX-License-Identifier: Apache-2.0
// The openssl record engine: SSL_read/SSL_write over the wire BIO. Always usable and serving
// every preference: the floor.
#pragma once

#include "drivers/record_engine.h"

namespace lastmile::drivers::openssl {

class OpensslEngine final : public RecordEngine {
public:
    static constexpr std::string_view kName = "openssl";
    std::string_view name() const noexcept override { return kName; }
    EngineProbe probe() const override;
    bool serves(Offload) const noexcept override { return true; }
    bool keepsTickets() const noexcept override { return true; }
    // `ssl` must already move its records through `wire` (attachWire): the handshake did.
    // Always taken.
    Attach attach(SSL* ssl, int fd, Wire& wire) override;
};

// The reason OpenSSL gave for the last failure on this thread, for logs and counters.
std::string lastSslError(SSL* ssl, int ret);

}  // namespace lastmile::drivers::openssl
