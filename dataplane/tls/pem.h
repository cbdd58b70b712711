// SPDX-License-Identifier: Apache-2.0
// PEM parsing shared by the bundle inspector and the profile compiler (internal to lm_tls).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "dataplane/tls/certificate_info.h"
#include "dataplane/tls/openssl_handles.h"

namespace lastmile::tls {

// Every certificate of `pem`, in order. Blocks of other types (keys, CRLs) are skipped.
// Errc::Invalid when the input has no certificate or a block cannot be decoded; the context
// names the 1-based block number.
Result<std::vector<X509Ptr>> readPemCertificates(std::string_view pem);

// One private key in PEM (PKCS#8 or traditional); Errc::Invalid when there is none.
Result<EvpPkeyPtr> readPemPrivateKey(std::string_view pem);

// The fields `describe` and status messages show.
CertificateInfo describeCertificate(X509* cert);

// The DNS and URI subjectAltName entries of `cert`, in certificate order.
void collectSubjectAltNames(X509* cert, std::vector<std::string>* dns,
                            std::vector<std::string>* uris);

// RFC 2253 form of a name, e.g. "CN=leaf,O=lastmile".
std::string nameRfc2253(const X509_NAME* name);

// RFC 3339 UTC form of an ASN.1 time, e.g. "2027-01-01T00:00:00Z"; empty if unreadable.
std::string rfc3339(const ASN1_TIME* t);

// "DNS:a.example, URI:spiffe://x": the subjectAltName entries of `cert`, or "no subjectAltName".
std::string describeSubjectAltNames(X509* cert);

}  // namespace lastmile::tls
