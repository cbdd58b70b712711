// SPDX-License-Identifier: Apache-2.0
// The OpenSSL error category and the error-queue drain behind sslFail().
#include "dataplane/tls/openssl_handles.h"

#include <openssl/err.h>

#include <array>

namespace lastmile::tls {
namespace {

class OpensslCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "openssl"; }
    std::string message(int code) const override {
        std::array<char, 256> buf{};
        ERR_error_string_n(static_cast<unsigned long>(static_cast<unsigned int>(code)), buf.data(),
                           buf.size());
        return buf.data();
    }
};

}  // namespace

void freeCertChain(STACK_OF(X509)* chain) noexcept { sk_X509_pop_free(chain, X509_free); }

const std::error_category& opensslCategory() noexcept {
    static const OpensslCategory category;
    return category;
}

Unexpected<Error> sslFail(std::string context) {
    unsigned long first = 0;
    std::string extra;
    const char* data = nullptr;
    int flags = 0;
    // The first code becomes the error_code (its text is appended by Error::message()); the
    // rest of the queue, and any detail strings, are kept in the context.
    for (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags); e != 0;
         e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
        const bool hasData = data != nullptr && *data != '\0' && (flags & ERR_TXT_STRING) != 0;
        if (first == 0) {
            first = e;
            if (hasData) {
                extra += std::string(" [") + data + "]";
            }
            continue;
        }
        const char* reason = ERR_reason_error_string(e);
        extra += "; ";
        extra += reason != nullptr ? reason : "unknown reason";
        if (hasData) {
            extra += std::string(" [") + data + "]";
        }
    }
    if (first == 0) {
        // Nothing on the queue: the call failed without saying why.
        return fail(Errc::Internal, std::move(context) + " (no OpenSSL error reported)");
    }
    return fail(std::error_code(static_cast<int>(first), opensslCategory()),
                std::move(context) + extra);
}

}  // namespace lastmile::tls
