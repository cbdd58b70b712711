// SPDX-License-Identifier: Apache-2.0
// The public Worker API: the control thread posts commands to the worker thread.
#include "dataplane/worker/worker_impl.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace lastmile::dataplane {

void Worker::Impl::post(Command command) {
    {
        std::lock_guard lock(commandsMu_);
        commands_.push_back(std::move(command));
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wakeFd_.get(), &one, sizeof(one));
}

Status Worker::Impl::start() {
    wakeFd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wakeFd_.valid()) {
        return failErrno("eventfd for worker " + std::to_string(index_));
    }
    std::promise<Status> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, &ready] { run(ready); });
    return started.get();
}

Worker::Worker(unsigned index, WorkerShared& shared)
    : impl_(std::make_unique<Impl>(index, shared)) {}

Worker::~Worker() {
    if (impl_->thread_.joinable()) {
        impl_->post({Impl::CommandKind::Stop, {}, {}});
        impl_->thread_.join();
    }
}

Status Worker::start() { return impl_->start(); }

void Worker::addListener(const route::ListenerId& id, UniqueFd fd, bool intercepting) {
    impl_->post({Impl::CommandKind::AddListener, id, std::move(fd), intercepting});
}

void Worker::removeListener(const route::ListenerId& id) {
    impl_->post({Impl::CommandKind::RemoveListener, id, {}});
}

void Worker::refresh() { impl_->post({Impl::CommandKind::Refresh, {}, {}}); }

void Worker::drain() { impl_->post({Impl::CommandKind::Drain, {}, {}}); }

std::string Worker::ringSetup() const {
    std::lock_guard lock(impl_->commandsMu_);
    return impl_->ringSetup_;
}

}  // namespace lastmile::dataplane
