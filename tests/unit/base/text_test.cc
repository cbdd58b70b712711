// SPDX-License-Identifier: Apache-2.0
// Tests for join and RFC 3339 formatting and parsing.
#include "dataplane/base/text.h"

#include <gtest/gtest.h>

namespace lastmile {
namespace {

TEST(TextTest, JoinPutsTheSeparatorOnlyBetweenParts) {
    EXPECT_EQ(join({}, ", "), "");
    EXPECT_EQ(join({"a"}, ", "), "a");
    EXPECT_EQ(join({"a", "b", "c"}, "; "), "a; b; c");
}

TEST(TextTest, FormatsWholeSecondsInUtc) {
    auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'999));
    EXPECT_EQ(rfc3339(t), "2027-01-15T08:00:00Z");
}

TEST(TextTest, ParsesWhatItFormatsAndWhatKubernetesWrites) {
    EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00Z"), 1'800'000'000);
    EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00.123456Z"), 1'800'000'000);
    EXPECT_EQ(parseRfc3339("2027-01-15T10:00:00+02:00"), 1'800'000'000);
    EXPECT_EQ(parseRfc3339("2027-01-15T07:00:00-01:00"), 1'800'000'000);
}

TEST(TextTest, RefusesMalformedTimestamps) {
    for (const char* bad : {"", "yesterday", "2027-01-15", "2027-01-15T08:00:00",
                            "2027-01-15T08:00:00Zjunk", "2027-13-15T08:00:00Z",
                            "2027-01-15T08:00:00+2"}) {
        EXPECT_FALSE(parseRfc3339(bad)) << bad;
    }
}

}  // namespace
}  // namespace lastmile
