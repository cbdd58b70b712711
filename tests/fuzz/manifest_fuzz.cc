// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: arbitrary bytes through decodeManifests, admit and toYaml must never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ctrl/api/admission.h"
#include "ctrl/api/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto docs = lastmile::ctrl::decodeManifests(text, "fuzz.yaml");
    if (!docs) {
        return 0;
    }
    for (const auto& doc : *docs) {
        auto admission = lastmile::ctrl::admit(doc.object);
        // Rendering is what `get -o yaml` does with an admitted object: exercise it too.
        if (admission.errors.empty()) {
            (void)lastmile::ctrl::toYaml(admission.object);
        }
    }
    return 0;
}
