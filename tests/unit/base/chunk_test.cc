// SPDX-License-Identifier: Apache-2.0
// Tests for ChunkPool's accounting against the shared BufferBudget.
#include "base/chunk.h"

#include <gtest/gtest.h>

namespace lastmile {
namespace {

constexpr std::size_t kChunk = sizeof(Chunk);

// One connection's receive buffers: client -> backend and backend -> client.
struct Pair {
    ChunkPtr up, down;
};

TEST(ChunkPoolTest, ReceiveBuffersStopAtTheBudgetAndComeBackWhenReleased) {
    BufferBudget budget(4 * kChunk);
    ChunkPool pool(budget);
    Pair a, b, c;
    a.up = pool.tryAcquireReceive(a.down);
    b.up = pool.tryAcquireReceive(b.down);
    ASSERT_TRUE(a.up && b.up);
    EXPECT_EQ(budget.used(), 4 * kChunk) << "each first buffer holds budget for its pair";
    EXPECT_FALSE(pool.tryAcquireReceive(c.down)) << "over the budget";
    pool.releaseReceive(a.up, a.down);
    EXPECT_FALSE(a.up);
    c.down = pool.tryAcquireReceive(c.up);
    EXPECT_TRUE(c.down) << "memory given back is taken again";
    EXPECT_LE(budget.used(), 4 * kChunk);
}

// Connections each holding one receive buffer and waiting for their second would wait for
// each other forever (hold-and-wait); a connection that got one buffer always gets its other.
TEST(ChunkPoolTest, AConnectionHoldingOneReceiveBufferAlwaysGetsItsSecond) {
    BufferBudget budget(5 * kChunk);
    ChunkPool pool(budget, 0);
    Pair pairs[3];
    for (Pair& p : pairs) {
        p.up = pool.tryAcquireReceive(p.down);
    }
    ASSERT_TRUE(pairs[0].up && pairs[1].up);
    EXPECT_FALSE(pairs[2].up) << "no budget left for a whole pair: the third waits";
    for (int i = 0; i < 2; ++i) {
        pairs[i].down = pool.tryAcquireReceive(pairs[i].up);
        EXPECT_TRUE(pairs[i].down) << "connection " << i << " holding one buffer gets its second";
    }
    EXPECT_LE(budget.used(), budget.limit());

    // Giving back one direction keeps its budget: a waiting connection cannot take it.
    pool.releaseReceive(pairs[0].up, pairs[0].down);
    EXPECT_FALSE(pool.tryAcquireReceive(pairs[2].down));
    pairs[0].up = pool.tryAcquireReceive(pairs[0].down);
    EXPECT_TRUE(pairs[0].up) << "the direction given back is taken again";

    // A connection giving back both lets the waiting one in as a whole.
    pool.releaseReceive(pairs[0].up, pairs[0].down);
    pool.releaseReceive(pairs[0].down, pairs[0].up);
    pairs[2].up = pool.tryAcquireReceive(pairs[2].down);
    ASSERT_TRUE(pairs[2].up);
    pairs[2].down = pool.tryAcquireReceive(pairs[2].up);
    EXPECT_TRUE(pairs[2].down);
    EXPECT_LE(budget.used(), budget.limit());

    for (Pair& p : pairs) {
        pool.releaseReceive(p.up, p.down);
        pool.releaseReceive(p.down, p.up);
    }
    EXPECT_EQ(budget.used(), 0u) << "finished connections give all of their budget back";
}

TEST(ChunkPoolTest, FreeChunksAreGivenUpBeforeAPairWaits) {
    BufferBudget budget(4 * kChunk);
    ChunkPool first(budget);
    ChunkPool second(budget);
    ChunkPtr burst[] = {first.acquire(), first.acquire(), first.acquire()};
    for (ChunkPtr& c : burst) {
        first.release(c);
    }
    ASSERT_EQ(first.freeCount(), 3u);
    Pair a, b;
    a.up = second.tryAcquireReceive(a.down);
    EXPECT_FALSE(a.up) << "the other worker's free chunks still hold the budget";
    b.up = first.tryAcquireReceive(b.down);
    EXPECT_TRUE(b.up) << "this worker frees its own";
    EXPECT_EQ(budget.used(), 3 * kChunk) << "b's buffer, b's reserve and one free chunk";
    b.down = first.tryAcquireReceive(b.up);
    EXPECT_TRUE(b.down);
    EXPECT_LE(budget.used(), budget.limit());
}

TEST(ChunkPoolTest, BuffersForAdmittedBytesAreCountedButNeverRefused) {
    BufferBudget budget(2 * kChunk);
    ChunkPool pool(budget);
    Pair in;
    in.up = pool.tryAcquireReceive(in.down);
    ChunkPtr out = pool.acquire();
    ASSERT_TRUE(in.up && out);
    EXPECT_EQ(budget.used(), 3 * kChunk);
    pool.release(out);
    pool.releaseReceive(in.up, in.down);
    pool.trim();  // sets the low water mark
    pool.trim();  // frees what stayed unused since
    EXPECT_EQ(pool.freeCount(), 0u);
    EXPECT_EQ(budget.used(), 0u);
}

TEST(ChunkPoolTest, TrimKeepsWhatWasUsedSinceTheLastTrimAndThePoolsShareTheBudget) {
    BufferBudget budget(64 * kChunk);
    ChunkPool first(budget);
    ChunkPool second(budget);
    ChunkPtr a = first.acquire();
    ChunkPtr b = second.acquire();
    EXPECT_EQ(budget.used(), 2 * kChunk);
    first.release(a);
    first.trim();
    ChunkPtr again = first.acquire();  // used in this period: kept by the next trim
    first.release(again);
    first.trim();
    EXPECT_EQ(first.freeCount(), 1u);
    first.trim();
    EXPECT_EQ(first.freeCount(), 0u);
    EXPECT_EQ(budget.used(), kChunk) << "second's chunk";
}

}  // namespace
}  // namespace lastmile
