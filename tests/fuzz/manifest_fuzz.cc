// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: arbitrary bytes through decodeManifests, admit, toYaml and the policy option
// parser must never crash, and the parser must store only names the compiler's allow-lists take.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ctrl/api/admission.h"
#include "ctrl/api/decode.h"
#include "ctrl/reconcile/policy_options.h"
#include "dataplane/tls/option_names.h"

namespace {

// The option parser and compile() check lists with the same allow-lists; a name the parser
// stored but the allow-list refuses would mean a list reached OpenSSL unchecked.
void applyOptions(const lastmile::ctrl::Json& policy) {
    using lastmile::tls::NameKind;
    lastmile::tls::ProfileSpec spec;
    const auto options = policy.value(lastmile::ctrl::Json::json_pointer("/spec/options"),
                                      lastmile::ctrl::Json());
    (void)lastmile::ctrl::applyPolicyOptions(options, spec);
    if (!lastmile::tls::refusedNames(NameKind::CipherSuite, spec.cipherSuites).empty() ||
        !lastmile::tls::refusedNames(NameKind::Group, spec.ecdhCurves).empty() ||
        !lastmile::tls::refusedNames(NameKind::SignatureAlgorithm, spec.signatureAlgorithms)
             .empty() ||
        !lastmile::tls::refusedNames(NameKind::AlpnProtocol, spec.alpnProtocols).empty()) {
        __builtin_trap();
    }
}

}  // namespace

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
            if (admission.object.value("kind", "") == "BackendTLSPolicy") {
                applyOptions(admission.object);
            }
        }
    }
    return 0;
}
