// SPDX-License-Identifier: Apache-2.0
// A policy's record-engine preference (`lastmile.dev/offload`), and its spelling.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lastmile::drivers {

// Which engines a profile's sessions may go to; never a reason to weaken verification. `auto`
// lets every engine try in the configured order; a named engine (nic, kernel, cryptodev) is
// tried alone before the openssl floor; `userspace` keeps sessions on the floor.
enum class Offload : std::uint8_t { Auto, Nic, Kernel, Cryptodev, Userspace };

inline constexpr Offload kOffloads[] = {Offload::Auto, Offload::Nic, Offload::Kernel,
                                        Offload::Cryptodev, Offload::Userspace};

constexpr std::string_view offloadName(Offload o) noexcept {
    switch (o) {
        case Offload::Auto:
            return "auto";
        case Offload::Nic:
            return "nic";
        case Offload::Kernel:
            return "kernel";
        case Offload::Cryptodev:
            return "cryptodev";
        case Offload::Userspace:
            return "userspace";
    }
    return "auto";
}

constexpr std::optional<Offload> parseOffload(std::string_view text) noexcept {
    for (Offload o : kOffloads) {
        if (offloadName(o) == text) {
            return o;
        }
    }
    return std::nullopt;
}

}  // namespace lastmile::drivers
