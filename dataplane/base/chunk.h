// SPDX-License-Identifier: Apache-2.0
// Chunk: a fixed-size byte buffer with read and write cursors; ChunkPool recycles them per worker.
#pragma once

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

// Single-threaded: each worker owns one. Keeps a bounded number of free chunks so that a
// burst returns its memory once it is over.
class ChunkPool {
public:
    explicit ChunkPool(std::size_t maxFree = 32) : maxFree_(maxFree) {}

    ChunkPtr acquire() {
        if (free_.empty()) {
            return ChunkPtr(new Chunk);  // default-initialized: no 64 KiB memset
        }
        ChunkPtr c = std::move(free_.back());
        free_.pop_back();
        return c;
    }
    // Empties `c` and keeps it for reuse (or frees it when the pool is full).
    void release(ChunkPtr& c) {
        if (!c) {
            return;
        }
        c->clear();
        if (free_.size() < maxFree_) {
            free_.push_back(std::move(c));
        }
        c.reset();
    }
    std::size_t freeCount() const noexcept { return free_.size(); }

private:
    std::size_t maxFree_;
    std::vector<ChunkPtr> free_;
};

}  // namespace lastmile
