// SPDX-License-Identifier: Apache-2.0
// TestPki implementation on OpenSSL 3 APIs.
#include "tests/support/test_pki.h"

#include <cstdio>
#include <stdexcept>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace lastmile::test {
namespace {

using BignumPtr = Handle<BIGNUM, BN_free>;
using ExtensionPtr = Handle<X509_EXTENSION, X509_EXTENSION_free>;

[[noreturn]] void throwSsl(const std::string& what) {
    char buf[256] = {};
    const unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    throw std::runtime_error("TestPki: " + what + ": " + buf);
}

void check(int rc, const char* what) {
    if (rc != 1) {
        throwSsl(what);
    }
}

tls::EvpPkeyPtr newKey() {
    tls::EvpPkeyPtr key(EVP_EC_gen("P-256"));
    if (!key) {
        throwSsl("generating a P-256 key");
    }
    return key;
}

std::string randomHex(int bytes) {
    unsigned char buf[16];
    check(RAND_bytes(buf, bytes), "RAND_bytes");
    std::string out;
    for (int i = 0; i < bytes; ++i) {
        char hex[3];
        std::snprintf(hex, sizeof hex, "%02x", buf[i]);
        out += hex;
    }
    return out;
}

void setSerial(X509* cert) {
    BignumPtr bn(BN_new());
    if (!bn) {
        throwSsl("BN_new");
    }
    check(BN_rand(bn.get(), 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), "BN_rand");
    if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
        throwSsl("setting the serial number");
    }
}

void addExt(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext) {
        throwSsl(std::string("building extension ") + value);
    }
    check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

void addGeneralName(GENERAL_NAMES* names, int type, const std::string& value) {
    GENERAL_NAME* name = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (name == nullptr || s == nullptr ||
        ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) != 1) {
        GENERAL_NAME_free(name);
        ASN1_IA5STRING_free(s);
        throwSsl("building a subjectAltName");
    }
    GENERAL_NAME_set0_value(name, type, s);
    if (sk_GENERAL_NAME_push(names, name) == 0) {
        GENERAL_NAME_free(name);
        throwSsl("adding a subjectAltName");
    }
}

void addIpAddress(GENERAL_NAMES* names, const std::string& address) {
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(address.c_str());
    GENERAL_NAME* name = GENERAL_NAME_new();
    if (ip == nullptr || name == nullptr) {
        ASN1_OCTET_STRING_free(ip);
        GENERAL_NAME_free(name);
        throwSsl("building the IP subjectAltName " + address);
    }
    GENERAL_NAME_set0_value(name, GEN_IPADD, ip);
    if (sk_GENERAL_NAME_push(names, name) == 0) {
        GENERAL_NAME_free(name);
        throwSsl("adding a subjectAltName");
    }
}

std::string certToPem(X509* cert) {
    tls::BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
        throwSsl("writing a certificate");
    }
    char* p = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &p);
    return std::string(p, static_cast<std::size_t>(n));
}

std::string keyToPem(EVP_PKEY* key) {
    tls::BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        throwSsl("writing a private key");
    }
    char* p = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &p);
    return std::string(p, static_cast<std::size_t>(n));
}

void setName(X509_NAME* name, const std::string& cn) {
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>("lastmile"), -1, -1, 0),
          "setting O");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0),
          "setting CN");
}

void setValidity(X509* cert, std::time_t at, long notBefore, long notAfter) {
    if (X509_time_adj_ex(X509_getm_notBefore(cert), 0, notBefore, &at) == nullptr ||
        X509_time_adj_ex(X509_getm_notAfter(cert), 0, notAfter, &at) == nullptr) {
        throwSsl("setting validity");
    }
}

}  // namespace

TestPki::TestPki() {
    caName_ = "lastmile test CA " + randomHex(6);
    caKey_ = newKey();
    caCert_.reset(X509_new());
    if (!caCert_) {
        throwSsl("X509_new");
    }
    X509* ca = caCert_.get();
    check(X509_set_version(ca, X509_VERSION_3), "X509_set_version");
    setSerial(ca);
    setName(X509_get_subject_name(ca), caName_);
    check(X509_set_issuer_name(ca, X509_get_subject_name(ca)), "X509_set_issuer_name");
    setValidity(ca, std::time(nullptr), -24 * 3600L, 365 * 24 * 3600L);
    check(X509_set_pubkey(ca, caKey_.get()), "X509_set_pubkey");
    addExt(ca, ca, NID_basic_constraints, "critical,CA:TRUE");
    addExt(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
    addExt(ca, ca, NID_subject_key_identifier, "hash");
    if (X509_sign(ca, caKey_.get(), EVP_sha256()) == 0) {
        throwSsl("signing the CA");
    }
    caPem_ = certToPem(ca);
}

TestPki::~TestPki() = default;

IssuedCert TestPki::issueServer(const std::vector<std::string>& dnsNames,
                                const IssueOptions& options) const {
    return issue(true, dnsNames, options);
}

IssuedCert TestPki::issueClient(const std::string& cn, const IssueOptions& options) const {
    IssueOptions o = options;
    if (o.commonName.empty()) {
        o.commonName = cn;
    }
    return issue(false, {}, o);
}

IssuedCert TestPki::issue(bool server, const std::vector<std::string>& dnsNames,
                          const IssueOptions& options) const {
    if (options.issuer != nullptr && options.issuer != this) {
        IssueOptions o = options;
        o.issuer = nullptr;
        return options.issuer->issue(server, dnsNames, o);
    }
    std::vector<std::string> dns = dnsNames;
    dns.insert(dns.end(), options.dnsNames.begin(), options.dnsNames.end());
    std::string cn = options.commonName;
    if (cn.empty()) {
        cn = dns.empty() ? "lastmile test leaf" : dns.front();
    }

    tls::EvpPkeyPtr key = newKey();
    tls::X509Ptr cert(X509_new());
    if (!cert) {
        throwSsl("X509_new");
    }
    X509* x = cert.get();
    check(X509_set_version(x, X509_VERSION_3), "X509_set_version");
    setSerial(x);
    setName(X509_get_subject_name(x), cn);
    check(X509_set_issuer_name(x, X509_get_subject_name(caCert_.get())), "X509_set_issuer_name");
    setValidity(x, options.at.value_or(std::time(nullptr)),
                static_cast<long>(options.notBeforeOffset.count()),
                static_cast<long>(options.notAfterOffset.count()));
    check(X509_set_pubkey(x, key.get()), "X509_set_pubkey");
    addExt(x, caCert_.get(), NID_basic_constraints, "critical,CA:FALSE");
    addExt(x, caCert_.get(), NID_key_usage, "critical,digitalSignature");
    const char* usage = !server                 ? "clientAuth"
                        : options.alsoClientAuth ? "serverAuth,clientAuth"
                                                 : "serverAuth";
    addExt(x, caCert_.get(), NID_ext_key_usage, usage);
    addExt(x, caCert_.get(), NID_subject_key_identifier, "hash");
    addExt(x, caCert_.get(), NID_authority_key_identifier, "keyid:always");
    if (!dns.empty() || !options.uris.empty() || !options.ipAddresses.empty()) {
        tls::GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
        if (!names) {
            throwSsl("sk_GENERAL_NAME_new_null");
        }
        for (const auto& d : dns) {
            addGeneralName(names.get(), GEN_DNS, d);
        }
        for (const auto& u : options.uris) {
            addGeneralName(names.get(), GEN_URI, u);
        }
        for (const auto& ip : options.ipAddresses) {
            addIpAddress(names.get(), ip);
        }
        check(X509_add1_ext_i2d(x, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
              "adding subjectAltName");
    }
    if (X509_sign(x, caKey_.get(), EVP_sha256()) == 0) {
        throwSsl("signing a leaf");
    }
    IssuedCert out;
    out.certPem = certToPem(x);
    out.keyPem = keyToPem(key.get());
    out.chainPem = out.certPem + caPem_;
    return out;
}

tls::SslCtxPtr makeServerContext(const IssuedCert& leaf) {
    tls::SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
        throwSsl("SSL_CTX_new");
    }
    tls::BioPtr certBio(
        BIO_new_mem_buf(leaf.chainPem.data(), static_cast<int>(leaf.chainPem.size())));
    tls::X509Ptr cert(PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
        throwSsl("reading the server certificate");
    }
    check(SSL_CTX_use_certificate(ctx.get(), cert.get()), "SSL_CTX_use_certificate");
    for (;;) {
        tls::X509Ptr extra(PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr));
        if (!extra) {
            ERR_clear_error();
            break;
        }
        check(static_cast<int>(SSL_CTX_add1_chain_cert(ctx.get(), extra.get())),
              "SSL_CTX_add1_chain_cert");
    }
    tls::BioPtr keyBio(BIO_new_mem_buf(leaf.keyPem.data(), static_cast<int>(leaf.keyPem.size())));
    tls::EvpPkeyPtr key(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        throwSsl("reading the server key");
    }
    check(SSL_CTX_use_PrivateKey(ctx.get(), key.get()), "SSL_CTX_use_PrivateKey");
    check(SSL_CTX_check_private_key(ctx.get()), "SSL_CTX_check_private_key");
    return ctx;
}

}  // namespace lastmile::test
