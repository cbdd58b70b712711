// SPDX-License-Identifier: Apache-2.0
// A BIO over the worker's wire chunks, so OpenSSL never touches a socket: io_uring does the I/O.
#pragma once

#include <openssl/ssl.h>

#include "base/result.h"
#include "drivers/record_engine.h"

namespace lastmile::drivers::openssl {

// Makes `ssl` read received records from wire.fromPeer and write records to wire.toPeer.
// A missing or empty source reads as "retry later", a full sink as a short write; `wire`
// must outlive the session's use of it.
Status attachWire(SSL* ssl, Wire& wire);

}  // namespace lastmile::drivers::openssl
