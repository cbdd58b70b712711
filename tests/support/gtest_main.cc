// SPDX-License-Identifier: Apache-2.0
// Shared gtest main: exits 77 when every test skipped, so meson reports SKIP, not OK.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    int rc = RUN_ALL_TESTS();
    const auto* unit = ::testing::UnitTest::GetInstance();
    if (rc == 0 && unit->test_to_run_count() > 0 &&
        unit->skipped_test_count() == unit->test_to_run_count()) {
        return 77;
    }
    return rc;
}
