// SPDX-License-Identifier: Apache-2.0
// Tests for ChunkPool's accounting against the shared BufferBudget.
#include "dataplane/base/chunk.h"

#include <gtest/gtest.h>

namespace lastmile {
namespace {

constexpr std::size_t kChunk = sizeof(Chunk);

TEST(ChunkPoolTest, ReceiveBuffersStopAtTheBudgetAndComeBackWhenReleased) {
    BufferBudget budget(3 * kChunk);
    ChunkPool pool(budget);
    ChunkPtr a = pool.tryAcquire();
    ChunkPtr b = pool.tryAcquire();
    ChunkPtr c = pool.tryAcquire();
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(budget.used(), 3 * kChunk);
    EXPECT_FALSE(pool.tryAcquire()) << "over the budget";
    pool.release(a);
    EXPECT_FALSE(a);
    ChunkPtr d = pool.tryAcquire();
    EXPECT_TRUE(d) << "memory given back is taken again";
    EXPECT_LE(budget.used(), 3 * kChunk);
}

TEST(ChunkPoolTest, BuffersForAdmittedBytesAreCountedButNeverRefused) {
    BufferBudget budget(kChunk);
    ChunkPool pool(budget);
    ChunkPtr in = pool.tryAcquire();
    ChunkPtr out = pool.acquire();
    ASSERT_TRUE(in && out);
    EXPECT_EQ(budget.used(), 2 * kChunk);
    pool.release(out);
    pool.release(in);
    pool.trim();  // sets the low water mark
    pool.trim();  // frees what stayed unused since
    EXPECT_EQ(pool.freeCount(), 0u);
    EXPECT_EQ(budget.used(), 0u);
}

TEST(ChunkPoolTest, TrimKeepsWhatWasUsedSinceTheLastTrimAndThePoolsShareTheBudget) {
    BufferBudget budget(64 * kChunk);
    ChunkPool first(budget);
    ChunkPool second(budget);
    ChunkPtr a = first.tryAcquire();
    ChunkPtr b = second.tryAcquire();
    EXPECT_EQ(budget.used(), 2 * kChunk);
    first.release(a);
    first.trim();
    ChunkPtr again = first.tryAcquire();  // used in this period: kept by the next trim
    first.release(again);
    first.trim();
    EXPECT_EQ(first.freeCount(), 1u);
    first.trim();
    EXPECT_EQ(first.freeCount(), 0u);
    EXPECT_EQ(budget.used(), kChunk) << "second's chunk";
}

}  // namespace
}  // namespace lastmile
