// SPDX-License-Identifier: Apache-2.0
// Tests for Result, Error and LM_TRY.
#include "base/result.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace lastmile {
namespace {

Result<int> half(int v) {
    if (v % 2 != 0) {
        return fail(Errc::Invalid, "halving " + std::to_string(v));
    }
    return v / 2;
}

Result<int> quarter(int v) {
    auto h = half(v);
    LM_TRY(h);
    return half(*h);
}

TEST(ResultTest, CarriesValueOrError) {
    auto ok = half(8);
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, 4);
    auto bad = half(3);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), Errc::Invalid);
    EXPECT_EQ(bad.error().message(), "halving 3: invalid");
    EXPECT_EQ(bad.value_or(-1), -1);
    EXPECT_EQ(ok.value_or(-1), 4);
}

TEST(ResultTest, TryPropagatesTheFirstError) {
    EXPECT_EQ(*quarter(8), 2);
    auto bad = quarter(6);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().context(), "halving 3");
}

TEST(ResultTest, ErrnoErrorAppendsSystemTextOnce) {
    errno = ENOENT;
    Status s = failErrno("opening /nope");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(s.error().message().find("opening /nope: "), 0U);
}

}  // namespace
}  // namespace lastmile
