// SPDX-License-Identifier: Apache-2.0
// inspectPemBundle: the trust anchors of a bundle as printable facts.
#include "dataplane/tls/certificate_info.h"

#include "dataplane/tls/pem.h"

namespace lastmile::tls {

Result<std::vector<CertificateInfo>> inspectPemBundle(std::string_view pem) {
    auto certs = readPemCertificates(pem);
    if (!certs) {
        return fail(std::move(certs).error());
    }
    std::vector<CertificateInfo> out;
    out.reserve(certs->size());
    for (const auto& cert : *certs) {
        out.push_back(describeCertificate(cert.get()));
    }
    return out;
}

}  // namespace lastmile::tls
