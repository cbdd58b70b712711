// SPDX-License-Identifier: Apache-2.0
// PEM block walking and certificate field extraction.
#include "dataplane/tls/pem.h"

#include <climits>
#include <cstring>
#include <ctime>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/text.h"

namespace lastmile::tls {
namespace {

struct OpensslFree {
    void operator()(void* p) const noexcept { OPENSSL_free(p); }
};
using OpensslBytes = std::unique_ptr<unsigned char, OpensslFree>;
using OpensslChars = std::unique_ptr<char, OpensslFree>;

bool isBlank(std::string_view s) {
    for (char c : s) {
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') {
            return false;
        }
    }
    return true;
}

// The reason of the last queued error, for messages that must not depend on error codes.
std::string lastReason() {
    const unsigned long e = ERR_peek_last_error();
    const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
    return reason != nullptr ? reason : "undecodable data";
}

std::string asn1String(const ASN1_STRING* s) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
}

}  // namespace

void collectSubjectAltNames(X509* cert, std::vector<std::string>* dns,
                            std::vector<std::string>* uris) {
    GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    if (!names) {
        return;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
        if (n->type == GEN_DNS) {
            dns->push_back(asn1String(n->d.dNSName));
        } else if (n->type == GEN_URI) {
            uris->push_back(asn1String(n->d.uniformResourceIdentifier));
        }
    }
}

Result<std::vector<X509Ptr>> readPemCertificates(std::string_view pem) {
    if (isBlank(pem)) {
        return fail(Errc::Invalid, "no certificate in bundle (empty)");
    }
    if (pem.size() > static_cast<std::size_t>(INT_MAX)) {
        return fail(Errc::Invalid, "bundle too large");
    }
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) {
        return sslFail("reading PEM bundle");
    }
    std::vector<X509Ptr> certs;
    ERR_clear_error();
    for (int block = 1;; ++block) {
        char* rawName = nullptr;
        char* rawHeader = nullptr;
        unsigned char* rawData = nullptr;
        long len = 0;
        if (PEM_read_bio(bio.get(), &rawName, &rawHeader, &rawData, &len) != 1) {
            const unsigned long e = ERR_peek_last_error();
            const bool atEnd =
                ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
            std::string why = atEnd ? std::string() : lastReason();
            ERR_clear_error();
            if (!atEnd) {
                return fail(Errc::Invalid,
                            "malformed PEM block " + std::to_string(block) + ": " + why);
            }
            break;
        }
        OpensslChars name(rawName);
        OpensslChars header(rawHeader);
        OpensslBytes data(rawData);
        const bool trusted = std::strcmp(name.get(), PEM_STRING_X509_TRUSTED) == 0;
        if (!trusted && std::strcmp(name.get(), PEM_STRING_X509) != 0 &&
            std::strcmp(name.get(), PEM_STRING_X509_OLD) != 0) {
            continue;  // keys, CRLs, parameters: not trust anchors
        }
        const unsigned char* p = data.get();
        X509Ptr cert(trusted ? d2i_X509_AUX(nullptr, &p, len) : d2i_X509(nullptr, &p, len));
        if (!cert || p != data.get() + len) {
            std::string why = cert ? "trailing data after the certificate" : lastReason();
            ERR_clear_error();
            return fail(Errc::Invalid,
                        "malformed certificate in PEM block " + std::to_string(block) + ": " + why);
        }
        certs.push_back(std::move(cert));
    }
    if (certs.empty()) {
        return fail(Errc::Invalid, "no certificate in bundle");
    }
    return certs;
}

Result<EvpPkeyPtr> readPemPrivateKey(std::string_view pem) {
    if (isBlank(pem) || pem.size() > static_cast<std::size_t>(INT_MAX)) {
        return fail(Errc::Invalid, "no private key (empty)");
    }
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) {
        return sslFail("reading PEM private key");
    }
    ERR_clear_error();
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        std::string why = lastReason();
        ERR_clear_error();
        return fail(Errc::Invalid, "no readable private key: " + why);
    }
    return key;
}

std::string nameRfc2253(const X509_NAME* name) {
    std::string out;
    if (BioPtr bio(BIO_new(BIO_s_mem())); bio) {
        if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) >= 0) {
            char* p = nullptr;
            const long n = BIO_get_mem_data(bio.get(), &p);
            if (n > 0 && p != nullptr) {
                out.assign(p, static_cast<std::size_t>(n));
            }
        }
    }
    return out;
}

std::string rfc3339(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
        return {};
    }
    return lastmile::rfc3339(tm);
}

CertificateInfo describeCertificate(X509* cert) {
    CertificateInfo info;
    info.subject = nameRfc2253(X509_get_subject_name(cert));
    info.notAfter = rfc3339(X509_get0_notAfter(cert));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdLen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdLen) == 1) {
        static constexpr char kHex[] = "0123456789ABCDEF";
        for (unsigned int i = 0; i < mdLen; ++i) {
            if (i != 0) {
                info.sha256 += ':';
            }
            info.sha256 += kHex[md[i] >> 4];
            info.sha256 += kHex[md[i] & 0xF];
        }
    }
    collectSubjectAltNames(cert, &info.dnsNames, &info.uris);
    ERR_clear_error();
    return info;
}

std::string describeSubjectAltNames(X509* cert) {
    std::vector<std::string> dns;
    std::vector<std::string> uris;
    collectSubjectAltNames(cert, &dns, &uris);
    std::string out;
    for (const auto& d : dns) {
        out += (out.empty() ? "DNS:" : ", DNS:") + d;
    }
    for (const auto& u : uris) {
        out += (out.empty() ? "URI:" : ", URI:") + u;
    }
    return out.empty() ? "no subjectAltName" : out;
}

}  // namespace lastmile::tls
