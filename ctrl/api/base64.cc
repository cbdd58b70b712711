// SPDX-License-Identifier: Apache-2.0
// Base64 through OpenSSL's EVP block coder, with the strictness check OpenSSL does not make.
#include "ctrl/api/base64.h"

#include <openssl/evp.h>

#include <algorithm>

namespace lastmile::ctrl {
namespace {

bool inAlphabet(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

}  // namespace

std::string base64Encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
    // EVP_DecodeBlock skips surrounding whitespace and keeps padding bytes as zeros, so the
    // exact-form check is ours; the arithmetic is OpenSSL's.
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') {
        ++pad;
    }
    if (!std::all_of(text.begin(), text.end() - static_cast<std::ptrdiff_t>(pad), inAlphabet)) {
        return std::nullopt;
    }
    std::string out(3 * text.size() / 4, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) {
        return std::nullopt;
    }
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

}  // namespace lastmile::ctrl
