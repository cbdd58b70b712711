// SPDX-License-Identifier: Apache-2.0
// Owning aliases for OpenSSL objects, deleter bound at compile time (STYLE.md §5).
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

#include "base/handle.h"
#include "base/result.h"

namespace lastmile::tls {

using SslCtxPtr = Handle<SSL_CTX, SSL_CTX_free>;
using SslPtr = Handle<SSL, SSL_free>;
using SslSessionPtr = Handle<SSL_SESSION, SSL_SESSION_free>;
using BioPtr = Handle<BIO, BIO_free_all>;
using X509Ptr = Handle<X509, X509_free>;
using EvpPkeyPtr = Handle<EVP_PKEY, EVP_PKEY_free>;
using GeneralNamesPtr = Handle<GENERAL_NAMES, GENERAL_NAMES_free>;
using X509StoreCtxPtr = Handle<X509_STORE_CTX, X509_STORE_CTX_free>;

// A certificate chain, leaf first, holding a reference to each certificate.
void freeCertChain(STACK_OF(X509)* chain) noexcept;
using CertChainPtr = Handle<STACK_OF(X509), freeCertChain>;

// The OpenSSL error category: codes are ERR_get_error() values.
const std::error_category& opensslCategory() noexcept;

// Drains this thread's OpenSSL error queue into one Error (the first code, every reason
// string in the message). Call right after the failing OpenSSL call, in the same thread.
Unexpected<Error> sslFail(std::string context);

}  // namespace lastmile::tls
