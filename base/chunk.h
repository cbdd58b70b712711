// SPDX-License-Identifier: Apache-2.0
// Chunk: a fixed-size byte buffer with read and write cursors; ChunkPool recycles them per worker.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace lastmile {

class Chunk {
public:
    // Sixteen full TLS records (16 KiB of plaintext plus at most 256 bytes of framing each)
    // fit, so a chunk of plaintext seals into one chunk of records. Bulk transfers move a
    // chunk per receive and per send: the larger it is, the fewer ring operations per GB.
    static constexpr std::size_t kCapacity = 256 * 1024 + 16 * 256;
    // Room a sealer needs before it starts another record.
    static constexpr std::size_t kRecordRoom = 16 * 1024 + 256;

    std::uint8_t* data() noexcept { return bytes_ + begin_; }
    const std::uint8_t* data() const noexcept { return bytes_ + begin_; }
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }

    // Where the next bytes go and how many fit; commit() makes them readable.
    std::uint8_t* tail() noexcept { return bytes_ + end_; }
    std::size_t room() const noexcept { return kCapacity - end_; }
    void commit(std::size_t n) noexcept { end_ += n; }

    // Drops `n` read bytes. The write cursor stays where it is: a receive may be filling the
    // tail; compact() reclaims the space once nothing is in flight.
    void consume(std::size_t n) noexcept { begin_ += n; }
    void clear() noexcept { begin_ = end_ = 0; }
    // Moves the unread bytes to the front so room() is all the free space. Only while no
    // send reads from the chunk and no receive writes into it.
    void compact() noexcept {
        if (begin_ == end_) {
            clear();
        } else if (begin_ != 0) {
            std::memmove(bytes_, bytes_ + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
    }
    // Copies what fits after the last byte. Never moves existing bytes: a send may be
    // reading them.
    std::size_t append(const void* src, std::size_t n) noexcept {
        n = n < room() ? n : room();
        std::memcpy(tail(), src, n);
        commit(n);
        return n;
    }

private:
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::uint8_t bytes_[kCapacity];
};

using ChunkPtr = std::unique_ptr<Chunk>;

// The buffer memory every pool of a process may hold (allocated chunks, in use or kept
// free), shared by the workers' pools. Thread-safe.
class BufferBudget {
public:
    explicit BufferBudget(std::size_t limit) : limit_(limit) {}

    // Takes `n` bytes unless that would pass the limit.
    bool tryTake(std::size_t n) noexcept {
        std::size_t used = used_.load(std::memory_order_relaxed);
        do {
            if (used + n > limit_) {
                return false;
            }
        } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
        return true;
    }
    void take(std::size_t n) noexcept { used_.fetch_add(n, std::memory_order_relaxed); }
    void give(std::size_t n) noexcept { used_.fetch_sub(n, std::memory_order_relaxed); }

    std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
    std::size_t limit() const noexcept { return limit_; }
    // Past three quarters: pools stop keeping free chunks, so other workers can take them.
    bool tight() const noexcept { return used() > limit_ / 4 * 3; }

private:
    const std::size_t limit_;
    std::atomic<std::size_t> used_{0};
};

// Single-threaded: each worker owns one. Keeps a bounded number of free chunks so that a
// burst returns its memory once it is over. Every chunk it allocated counts against the
// budget until it is freed.
class ChunkPool {
public:
    explicit ChunkPool(BufferBudget& budget, std::size_t maxFree = 32)
        : budget_(budget), maxFree_(maxFree) {}
    ~ChunkPool() { budget_.give(free_.size() * sizeof(Chunk)); }
    ChunkPool(const ChunkPool&) = delete;
    ChunkPool& operator=(const ChunkPool&) = delete;

    // Receive buffers are admitted to the budget per connection in pairs, one per direction.
    // A connection holding one receive buffer can need the other before it can give the
    // first back (an echo backend stops reading while its answers are not read); were the
    // second refused, connections each holding one would wait for each other forever. So
    // the first buffer of a pair takes budget for both, and the pair keeps budget for both
    // until it holds neither: `other` is the connection's receive buffer for the other
    // direction. Null when the budget is spent (the read waits; the caller asks again
    // once memory came back).
    ChunkPtr tryAcquireReceive(const ChunkPtr& other) {
        if (!other && !reservePair()) {
            return nullptr;
        }
        if (!free_.empty()) {
            budget_.give(sizeof(Chunk));  // a free chunk is budget already: the reserve goes back
        }
        return take();
    }
    // Gives back a receive buffer taken with tryAcquireReceive(). While the pair still holds
    // `other`, it keeps this direction's budget (the memory is kept only if the budget has
    // room for it besides).
    void releaseReceive(ChunkPtr& c, const ChunkPtr& other) {
        if (!c) {
            return;
        }
        if (!other) {
            release(c);
            budget_.give(sizeof(Chunk));
        } else if (budget_.tryTake(sizeof(Chunk))) {
            release(c);
        } else {
            c.reset();
        }
    }
    // A chunk for bytes already admitted (records sealed from plaintext, plaintext opened from
    // records, a short error answer): counted, but never refused, since refusing it could
    // leave the bytes that need it stuck. Bounded by what the receives were allowed to take.
    ChunkPtr acquire() {
        if (free_.empty()) {
            budget_.take(sizeof(Chunk));
        }
        return take();
    }
    // Empties `c` and keeps it for reuse (or frees it when the pool is full or the budget
    // is tight).
    void release(ChunkPtr& c) {
        if (!c) {
            return;
        }
        c->clear();
        if (free_.size() < maxFree_ && !budget_.tight()) {
            free_.push_back(std::move(c));
        } else {
            c.reset();
            budget_.give(sizeof(Chunk));
        }
    }
    std::size_t freeCount() const noexcept { return free_.size(); }
    // Frees the chunks that stayed unused since the last call: called periodically, the pool
    // keeps what bursts use and gives the rest back to the budget.
    void trim() {
        for (; lowWater_ > 0 && !free_.empty(); --lowWater_) {
            free_.pop_back();
            budget_.give(sizeof(Chunk));
        }
        lowWater_ = free_.size();
    }

private:
    // Budget for two chunks. Chunks kept free are budget too: they are freed before a pair
    // waits.
    bool reservePair() {
        while (!budget_.tryTake(2 * sizeof(Chunk))) {
            if (free_.empty()) {
                return false;
            }
            free_.pop_back();
            budget_.give(sizeof(Chunk));
        }
        lowWater_ = std::min(lowWater_, free_.size());
        return true;
    }
    ChunkPtr take() {
        if (free_.empty()) {
            return ChunkPtr(new Chunk);  // default-initialized: no 256 KiB memset
        }
        ChunkPtr c = std::move(free_.back());
        free_.pop_back();
        lowWater_ = std::min(lowWater_, free_.size());
        return c;
    }

    BufferBudget& budget_;
    std::size_t maxFree_;
    std::vector<ChunkPtr> free_;
    std::size_t lowWater_ = 0;  // fewest free chunks since the last trim()
};

}  // namespace lastmile
