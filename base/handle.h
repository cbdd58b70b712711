// SPDX-License-Identifier: Apache-2.0
// Handle<T, FreeFn>: unique ownership of a C library object, deleter bound at compile time.
#pragma once

#include <memory>

namespace lastmile {

template <auto FreeFn>
struct Deleter {
    template <typename T>
    void operator()(T* p) const noexcept {
        FreeFn(p);
    }
};

// using SslCtxPtr = Handle<SSL_CTX, SSL_CTX_free>; -- one alias per type, no raw members.
template <typename T, auto FreeFn>
using Handle = std::unique_ptr<T, Deleter<FreeFn>>;

}  // namespace lastmile
