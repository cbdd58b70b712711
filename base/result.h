// SPDX-License-Identifier: Apache-2.0
// Result<T>: value-or-Error return type, an API subset of std::expected (see STYLE.md §1).
#pragma once

#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <optional>
#include <variant>

namespace lastmile {

// Errors of lastmile's own making; system and OpenSSL errors keep their own categories.
enum class Errc {
    NotFound = 1,   // the object or file asked for does not exist
    AlreadyExists,  // create of an object that is already there
    Conflict,       // stale resourceVersion or concurrent change
    Invalid,        // input failed validation
    Unavailable,    // a dependency (peer, daemon, store) cannot be reached
    Internal,       // broken invariant that could be reported instead of aborting
    Gone,           // a revision a watch resumes from is no longer kept: relist
};

const std::error_category& lastmileCategory() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), lastmileCategory()};
}

// What failed (the code) and what we were doing (the context). message() joins both once.
class Error {
public:
    Error(std::error_code code, std::string context) : code_(code), context_(std::move(context)) {}

    const std::error_code& code() const noexcept { return code_; }
    const std::string& context() const noexcept { return context_; }
    std::string message() const;

private:
    std::error_code code_;
    std::string context_;
};

template <typename E>
struct Unexpected {
    E error;
};

inline Unexpected<Error> fail(std::error_code code, std::string context) {
    return {Error(code, std::move(context))};
}
inline Unexpected<Error> fail(Errc code, std::string context) {
    return {Error(make_error_code(code), std::move(context))};
}
inline Unexpected<Error> fail(Error e) { return {std::move(e)}; }
// Reads errno: call it right after the failing syscall.
Unexpected<Error> failErrno(std::string context);

template <typename T>
class [[nodiscard]] Result {
public:
    using value_type = T;

    template <typename U = T,
              typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                          !std::is_same_v<std::decay_t<U>, Result>>>
    Result(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}
    Result(Unexpected<Error> e) : v_(std::in_place_index<1>, std::move(e.error)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    template <typename U>
    T value_or(U&& fallback) const& {
        return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
    }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    using value_type = void;

    Result() = default;
    Result(Unexpected<Error> e) : err_(std::in_place, std::move(e.error)) {}

    bool has_value() const noexcept { return !err_.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }
    void value() const {}

    const Error& error() const& { return *err_; }
    Error&& error() && { return std::move(*err_); }

private:
    std::optional<Error> err_;
};

using Status = Result<void>;

}  // namespace lastmile

template <>
struct std::is_error_code_enum<lastmile::Errc> : std::true_type {};

// Propagates the error of a Result-returning expression; the only control-flow macro.
#define LM_TRY(expr)                                              \
    do {                                                          \
        auto&& lmTryResult_ = (expr);                             \
        if (!lmTryResult_) {                                      \
            return ::lastmile::fail(std::move(lmTryResult_).error()); \
        }                                                         \
    } while (0)
