// SPDX-License-Identifier: Apache-2.0
// Leveled logging to stderr with sd-daemon(3) "<N>" prefixes, so journald keeps the level.
#pragma once

#include <sstream>
#include <string_view>

namespace lastmile::log {

// Values are the syslog priorities journald reads from the "<N>" prefix.
enum class Level { Error = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

// Messages above this level are dropped; default Info.
void setThreshold(Level level) noexcept;
bool enabled(Level level) noexcept;
// One whole line per call, written with a single write(2) so threads do not interleave.
void write(Level level, std::string_view category, std::string_view message);

}  // namespace lastmile::log

// LM_LOG(Warning, "store", "opened " << path): the stream is built only when enabled.
#define LM_LOG(level, category, stream)                                               \
    do {                                                                              \
        if (::lastmile::log::enabled(::lastmile::log::Level::level)) {                \
            std::ostringstream lmLogStream_;                                          \
            lmLogStream_ << stream;                                                   \
            ::lastmile::log::write(::lastmile::log::Level::level, category,           \
                                   lmLogStream_.str());                               \
        }                                                                             \
    } while (0)
