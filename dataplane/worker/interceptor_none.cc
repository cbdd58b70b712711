// SPDX-License-Identifier: Apache-2.0
// Interceptor for a build without the bpf feature: the key is accepted, no mode is usable.
#include "dataplane/worker/interceptor.h"

#include "base/log.h"

namespace lastmile::dataplane {

namespace {

constexpr const char* kWithout = "this lastmiled was built without BPF interception";

}  // namespace

struct Interceptor::Impl {};

Interceptor::Interceptor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Interceptor::~Interceptor() = default;

std::unique_ptr<Interceptor> Interceptor::start(const InterceptionOptions&) {
    LM_LOG(Warning, "dataplane", "interception is configured, but " << kWithout);
    return std::unique_ptr<Interceptor>(new Interceptor(std::make_unique<Impl>()));
}

Status Interceptor::usable(InterceptMode) const {
    return fail(std::make_error_code(std::errc::function_not_supported), kWithout);
}

std::uint32_t Interceptor::backendMark() const { return 0; }

Status Interceptor::prepareListener(int) const { return {}; }

Result<std::vector<InterceptMode>> Interceptor::add(const net::SocketAddress&,
                                                    const net::SocketAddress&, int) {
    return fail(std::make_error_code(std::errc::function_not_supported), kWithout);
}

void Interceptor::remove(const net::SocketAddress&, const std::vector<InterceptMode>&) {}

std::optional<InterceptMode> Interceptor::interceptedBy(int) const { return std::nullopt; }

std::vector<InterceptAttachment> Interceptor::attachments() const { return {}; }

InterceptCounters Interceptor::counters(InterceptMode) const { return {}; }

}  // namespace lastmile::dataplane
