// SPDX-License-Identifier: Apache-2.0
// The lastmile error category and Error formatting.
#include "base/result.h"

#include <cerrno>

namespace lastmile {
namespace {

class LastmileCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "lastmile"; }
    std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
        case Errc::NotFound:
            return "not found";
        case Errc::AlreadyExists:
            return "already exists";
        case Errc::Conflict:
            return "conflict";
        case Errc::Invalid:
            return "invalid";
        case Errc::Unavailable:
            return "unavailable";
        case Errc::Internal:
            return "internal error";
        case Errc::Gone:
            return "gone";
        }
        return "unknown error";
    }
};

}  // namespace

const std::error_category& lastmileCategory() noexcept {
    static const LastmileCategory category;
    return category;
}

std::string Error::message() const {
    if (context_.empty()) {
        return code_.message();
    }
    return context_ + ": " + code_.message();
}

Unexpected<Error> failErrno(std::string context) {
    return fail(std::error_code(errno, std::system_category()), std::move(context));
}

}  // namespace lastmile
