// SPDX-License-Identifier: Apache-2.0
// stderr log sink.
#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

namespace lastmile::log {
namespace {
std::atomic<Level> threshold{Level::Info};
}  // namespace

void setThreshold(Level level) noexcept { threshold.store(level, std::memory_order_relaxed); }

bool enabled(Level level) noexcept {
    return static_cast<int>(level) <= static_cast<int>(threshold.load(std::memory_order_relaxed));
}

void write(Level level, std::string_view category, std::string_view message) {
    std::string line = "<" + std::to_string(static_cast<int>(level)) + ">";
    line.append(category).append(": ").append(message).append("\n");
    // A short or failed write to stderr has nowhere better to be reported.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace lastmile::log
