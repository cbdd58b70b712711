// SPDX-License-Identifier: Apache-2.0
// Ring submissions of a connection, cancelling them, and the buffers they read into.
#include "dataplane/worker/worker_impl.h"

#include <sys/socket.h>

namespace lastmile::dataplane {

void Worker::Impl::recv(Connection& c, int fd, Chunk& into, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_recv(s, fd, into.tail(), into.room(), 0);
    submit(c, s, op);
}

void Worker::Impl::send(Connection& c, int fd, Chunk& from, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_send(s, fd, from.data(), from.size(), MSG_NOSIGNAL);
    (op == ClientSend ? c.clientSendFrom : c.backendSendFrom) = &from;
    submit(c, s, op);
}

void Worker::Impl::splice(Connection& c, int from, int to, std::size_t len, unsigned flags, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_splice(s, from, -1, to, -1, static_cast<unsigned>(len), flags);
    submit(c, s, op);
}

void Worker::Impl::poll(Connection& c, int fd, Op op, unsigned events) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_poll_add(s, fd, events);
    submit(c, s, op);
}

void Worker::Impl::cancel(Connection& c, Op op) {
    io_uring_sqe* s = ring_->sqe();
    io_uring_prep_cancel64(s, uring::packUserData(op, reinterpret_cast<std::uint64_t>(&c)), 0);
    io_uring_sqe_set_data64(s, uring::packUserData(Ignore, 0));
}

void Worker::Impl::cancelOps(Connection& c, int fd, unsigned ops) {
    if ((c.pending & ops & bit(Connect)) != 0) {
        cancel(c, Connect);
    }
    if ((c.pending & ops & ~bit(Connect)) != 0) {
        ::shutdown(fd, SHUT_RDWR);
    }
}

bool Worker::Impl::reserve(Connection& c, ChunkPtr& chunk) {
    if (!chunk) {
        chunk = pool_chunks_.tryAcquireReceive(&chunk == &c.upIn ? c.downIn : c.upIn);
    }
    if (!chunk && !c.starved) {
        c.starved = true;
        starved_.push_back(&c);
    }
    return chunk != nullptr;
}

void Worker::Impl::feedStarved() {
    std::vector<Connection*> waiting;
    waiting.swap(starved_);
    for (Connection* c : waiting) {
        c->starved = false;
    }
    for (Connection* c : waiting) {
        if (!c->closing && c->stage == Stage::Handshaking && !has(*c, BackendRecv)) {
            handshake(*c);
        }
        pump(*c);
    }
}

}  // namespace lastmile::dataplane
