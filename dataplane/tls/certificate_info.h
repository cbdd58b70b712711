// SPDX-License-Identifier: Apache-2.0
// Reading PEM bundles: what a trust anchor is, for status messages and `describe`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lastmile::tls {

struct CertificateInfo {
    std::string subject;   // RFC 2253, e.g. "CN=Test CA,O=lastmile"
    std::string notAfter;  // RFC 3339 UTC, e.g. "2027-01-01T00:00:00Z"
    std::string sha256;    // fingerprint of the DER, "AB:CD:..." upper-case hex
    std::vector<std::string> dnsNames;  // subjectAltName entries
    std::vector<std::string> uris;
};

// Every certificate of a PEM bundle. Errc::Invalid when the bundle is empty, holds no
// certificate, or has a malformed PEM block (the context says which and where).
Result<std::vector<CertificateInfo>> inspectPemBundle(std::string_view pem);

}  // namespace lastmile::tls
