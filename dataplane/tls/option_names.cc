// SPDX-License-Identifier: Apache-2.0
// The allow-lists of option_names.h, derived from what the linked OpenSSL offers.
#include "dataplane/tls/option_names.h"

#include <algorithm>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dataplane/tls/openssl_handles.h"

namespace lastmile::tls {
namespace {

// Every TLS 1.3 suite OpenSSL 3.0 implements; the default list leaves out the CCM ones.
constexpr const char* kTls13Suites =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
    "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256";
constexpr int kMinSecurityLevel = 2;
// Longer than any group or signature algorithm name OpenSSL has.
constexpr std::size_t kMaxAlgorithmName = 64;
constexpr std::size_t kMaxAlpnLen = 255;  // one length byte on the wire

struct KnownSuite {
    std::string opensslName;
    std::string ianaName;
    bool tls13 = false;
    const char* refusal = nullptr;  // null: allowed
};

const char* refusalOf(const SSL_CIPHER* cipher, bool offered) {
    if (SSL_CIPHER_get_cipher_nid(cipher) == NID_undef) {
        return "does not encrypt (NULL cipher)";
    }
    switch (SSL_CIPHER_get_auth_nid(cipher)) {
    case NID_auth_rsa:
    case NID_auth_ecdsa:
    case NID_auth_dss:
    case NID_auth_any:  // TLS 1.3: always a certificate here, since no PSK is configured
        break;
    default:
        return "does not authenticate the server with a certificate";
    }
    if (!offered) {
        return "is not offered to a TLS 1.2/1.3 client at security level 2";
    }
    return nullptr;
}

// Every suite this OpenSSL knows, so that a weak one is refused for what it is rather than
// as an unknown name; "offered" is what a level-2 client with every suite enabled would send.
std::vector<KnownSuite> buildSuites() {
    std::vector<KnownSuite> out;
    SslCtxPtr every(SSL_CTX_new(TLS_client_method()));
    SslCtxPtr level2(SSL_CTX_new(TLS_client_method()));
    if (!every || !level2 ||
        SSL_CTX_set_cipher_list(every.get(), "ALL:COMPLEMENTOFALL") != 1 ||
        SSL_CTX_set_ciphersuites(every.get(), kTls13Suites) != 1 ||
        SSL_CTX_set_cipher_list(level2.get(), "ALL:COMPLEMENTOFALL") != 1 ||
        SSL_CTX_set_ciphersuites(level2.get(), kTls13Suites) != 1 ||
        SSL_CTX_set_min_proto_version(level2.get(), TLS1_2_VERSION) != 1) {
        ERR_clear_error();
        return out;  // no suite is allowed: every cipher option fails closed
    }
    SSL_CTX_set_security_level(level2.get(), kMinSecurityLevel);
    SslPtr client(SSL_new(level2.get()));
    STACK_OF(SSL_CIPHER)* offered = client ? SSL_get1_supported_ciphers(client.get()) : nullptr;
    STACK_OF(SSL_CIPHER)* all = SSL_CTX_get_ciphers(every.get());
    for (int i = 0; i < sk_SSL_CIPHER_num(all); ++i) {
        const SSL_CIPHER* c = sk_SSL_CIPHER_value(all, i);
        const char* standard = SSL_CIPHER_standard_name(c);
        const bool isOffered = offered != nullptr && sk_SSL_CIPHER_find(offered, c) >= 0;
        out.push_back(KnownSuite{SSL_CIPHER_get_name(c), standard != nullptr ? standard : "",
                                 std::string_view(SSL_CIPHER_get_version(c)) == "TLSv1.3",
                                 refusalOf(c, isOffered)});
    }
    sk_SSL_CIPHER_free(offered);
    ERR_clear_error();
    return out;
}

const std::vector<KnownSuite>& knownSuites() {
    static const std::vector<KnownSuite> suites = buildSuites();
    return suites;
}

bool isAlnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Letters and digits first, then also the characters in `more`: no operator, separator or
// directive of OpenSSL's list syntax can pass.
bool isPlainName(std::string_view name, std::string_view more) {
    return !name.empty() && name.size() <= kMaxAlgorithmName && isAlnum(name.front()) &&
           std::all_of(name.begin(), name.end(), [&](char c) {
               return isAlnum(c) || more.find(c) != std::string_view::npos;
           });
}

using ListSetter = int (*)(SSL_CTX*, const char*);

// The OpenSSL setters are macros over SSL_CTX_ctrl (long); these are their function forms.
int setGroups(SSL_CTX* ctx, const char* list) {
    return static_cast<int>(SSL_CTX_set1_groups_list(ctx, list));
}
int setSignatureAlgorithms(SSL_CTX* ctx, const char* list) {
    return static_cast<int>(SSL_CTX_set1_sigalgs_list(ctx, list));
}

// Whether OpenSSL takes `name` as a whole list by itself, on a scratch context.
Status acceptedAlone(std::string_view name, ListSetter set, const char* what) {
    SslCtxPtr scratch(SSL_CTX_new(TLS_client_method()));
    if (!scratch) {
        return sslFail("creating a scratch SSL_CTX");
    }
    const std::string copy(name);
    if (set(scratch.get(), copy.c_str()) != 1) {
        ERR_clear_error();
        return fail(Errc::Invalid, std::string("is not ") + what + " this OpenSSL offers");
    }
    return {};
}

}  // namespace

Result<CipherSuiteName> allowedCipherSuite(std::string_view name) {
    for (const auto& s : knownSuites()) {
        if (name != s.opensslName && name != s.ianaName) {
            continue;
        }
        if (s.refusal != nullptr) {
            return fail(Errc::Invalid, s.refusal);
        }
        return CipherSuiteName{s.opensslName, s.tls13};
    }
    return fail(Errc::Invalid,
                "is not a cipher suite this OpenSSL offers (one exact OpenSSL or IANA name per "
                "entry: no keywords, operators, @ directives or other separators)");
}

Status allowedGroup(std::string_view name) {
    if (!isPlainName(name, "-_")) {
        return fail(Errc::Invalid, "is not a group name (letters, digits, '-' and '_' only)");
    }
    return acceptedAlone(name, setGroups, "a group");
}

Status allowedSignatureAlgorithm(std::string_view name) {
    if (!isPlainName(name, "_")) {
        return fail(Errc::Invalid,
                    "is not a signature algorithm name (letters, digits and '_' only, such as "
                    "ecdsa_secp256r1_sha256)");
    }
    return acceptedAlone(name, setSignatureAlgorithms, "a signature algorithm");
}

Status allowedAlpnProtocol(std::string_view name) {
    const bool printable = std::all_of(name.begin(), name.end(), [](char c) {
        return c > ' ' && c <= '~' && c != ',';
    });
    if (name.empty() || name.size() > kMaxAlpnLen || !printable) {
        return fail(Errc::Invalid,
                    "is not an ALPN protocol (1..255 bytes of printable ASCII without space or "
                    "comma)");
    }
    return {};
}

std::vector<std::string> refusedNames(NameKind kind, const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& name : names) {
        Status checked;
        switch (kind) {
        case NameKind::CipherSuite:
            if (auto suite = allowedCipherSuite(name); !suite) {
                checked = fail(std::move(suite).error());
            }
            break;
        case NameKind::Group:
            checked = allowedGroup(name);
            break;
        case NameKind::SignatureAlgorithm:
            checked = allowedSignatureAlgorithm(name);
            break;
        case NameKind::AlpnProtocol:
            checked = allowedAlpnProtocol(name);
            break;
        }
        if (!checked) {
            out.push_back("\"" + name + "\" " + checked.error().context());
        }
    }
    return out;
}

}  // namespace lastmile::tls
