// SPDX-License-Identifier: Apache-2.0
// The profile compiler: ProfileSpec -> SSL_CTX with trust, name verification and session cache.
#include "dataplane/tls/handshake_profile.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "base/text.h"
#include "dataplane/tls/option_names.h"
#include "dataplane/tls/pem.h"

namespace lastmile::tls {
namespace {

// RFC 6125: a certificate wildcard covers one whole left-most label; the subject CN is
// never consulted (every certificate we accept must carry its names as SANs).
constexpr unsigned int kHostFlags =
    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
// Level 2: no anonymous or NULL suites, at least 112-bit security, no SHA-1 signatures.
constexpr int kMinSecurityLevel = 2;

// What the verify and new-session callbacks need. Owned by the SSL_CTX (freed through the
// ex_data free hook), so a session that outlives its profile never sees a dangling pointer.
struct CtxState {
    std::string sni;
    std::vector<SanMatcher> sans;
    std::mutex mu;
    SslSessionPtr latest;  // guarded by mu: the newest resumable session
};

void freeCtxState(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                  void* /*argp*/) {
    delete static_cast<CtxState*>(ptr);
}

int ctxStateIndex() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeCtxState);
    return index;
}

CtxState* stateOf(const SSL_CTX* ctx) {
    const int index = ctxStateIndex();
    if (ctx == nullptr || index < 0) {
        return nullptr;
    }
    return static_cast<CtxState*>(SSL_CTX_get_ex_data(ctx, index));
}

std::string describeBackend(const BackendKey& b) {
    return b.ns + "/" + b.service + ":" + std::to_string(b.port);
}

std::string describeSans(const std::vector<SanMatcher>& sans) {
    std::vector<std::string> parts;
    for (const auto& s : sans) {
        parts.push_back((s.type == SanMatcher::Type::Uri ? "URI:" : "DNS:") + s.value);
    }
    return join(parts, ", ");
}

// An OpenSSL failure caused by the spec's content: Errc::Invalid, OpenSSL's reasons kept.
Unexpected<Error> sslInvalid(const std::string& context) {
    Error e = sslFail(context).error;
    return fail(Errc::Invalid, e.message());
}

Unexpected<Error> prefixed(const std::string& prefix, Error e) {
    return fail(e.code(), prefix + e.context());
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto la = static_cast<unsigned char>(a[i]);
        const auto lb = static_cast<unsigned char>(b[i]);
        if (std::tolower(la) != std::tolower(lb)) {
            return false;
        }
    }
    return true;
}

// Spec section 4: any listed SAN may match. Hostname entries match DNS SANs by RFC 6125 (a
// certificate wildcard covers them), except "*.x" entries, which match only a literal "*.x"
// SAN; URI entries match URI SANs exactly.
bool sanMatches(X509* cert, const std::vector<SanMatcher>& sans) {
    std::vector<std::string> dns;
    std::vector<std::string> uris;
    collectSubjectAltNames(cert, &dns, &uris);
    for (const auto& s : sans) {
        if (s.type == SanMatcher::Type::Uri) {
            for (const auto& u : uris) {
                if (u == s.value) {
                    return true;
                }
            }
        } else if (s.value.rfind("*.", 0) == 0) {
            for (const auto& d : dns) {
                if (equalsIgnoreCase(d, s.value)) {
                    return true;
                }
            }
        } else if (X509_check_host(cert, s.value.data(), s.value.size(), kHostFlags, nullptr) ==
                   1) {
            return true;
        }
    }
    return false;
}

// Runs after OpenSSL's own checks. Only the final depth-0 call with ok == 1 (chain, times
// and purpose all verified) decides the SAN match; every failure OpenSSL found stays a failure.
int verifyCallback(int ok, X509_STORE_CTX* store) {
    if (ok != 1 || X509_STORE_CTX_get_error_depth(store) != 0) {
        return ok;
    }
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    const CtxState* state = ssl != nullptr ? stateOf(SSL_get_SSL_CTX(ssl)) : nullptr;
    if (state == nullptr) {
        // Not one of ours: refuse rather than guess.
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (state->sans.empty()) {
        return 1;  // the hostname was checked by OpenSSL (SSL_set1_host)
    }
    X509* leaf = X509_STORE_CTX_get_current_cert(store);
    if (leaf != nullptr && sanMatches(leaf, state->sans)) {
        return 1;
    }
    X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
}

// Returning 1 keeps the reference OpenSSL handed us.
int onNewSession(SSL* ssl, SSL_SESSION* session) {
    CtxState* state = stateOf(SSL_get_SSL_CTX(ssl));
    if (state == nullptr || SSL_SESSION_is_resumable(session) != 1) {
        return 0;
    }
    std::lock_guard lock(state->mu);
    state->latest.reset(session);
    return 1;
}

bool isHashedCertName(const std::string& name) {
    // c_rehash layout: 8 hex digits, '.', a sequence number.
    if (name.size() < 10 || name[8] != '.') {
        return false;
    }
    for (std::size_t i = 0; i < name.size(); ++i) {
        const auto c = static_cast<unsigned char>(name[i]);
        if (i < 8 ? !std::isxdigit(c) : (i > 8 && !std::isdigit(c))) {
            return false;
        }
    }
    return true;
}

bool dirHoldsCertificates(const std::string& dirs) {
    std::size_t start = 0;
    while (start <= dirs.size()) {
        const std::size_t end = std::min(dirs.find(':', start), dirs.size());
        const std::string dir = dirs.substr(start, end - start);
        start = end + 1;
        if (dir.empty()) {
            continue;
        }
        std::error_code ec;
        for (std::filesystem::directory_iterator it(dir, ec), last; !ec && it != last;
             it.increment(ec)) {
            if (isHashedCertName(it->path().filename().string())) {
                return true;
            }
        }
    }
    return false;
}

const char* envOr(const char* envName, const char* fallback) {
    const char* v = std::getenv(envName);
    return v != nullptr && *v != '\0' ? v : fallback;
}

Status loadSystemTrust(SSL_CTX* ctx) {
    // Missing default files are not an error to OpenSSL, so the store is checked afterwards.
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return sslInvalid("no system trust store: loading the default verify paths");
    }
    ERR_clear_error();
    const int loaded = sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx)));
    const std::string dir = envOr(X509_get_default_cert_dir_env(), X509_get_default_cert_dir());
    if (loaded > 0 || dirHoldsCertificates(dir)) {
        return {};
    }
    const std::string file = envOr(X509_get_default_cert_file_env(), X509_get_default_cert_file());
    return fail(Errc::Invalid,
                "no system trust store: " + file + " and " + dir + " hold no certificate");
}

Result<std::vector<CertificateInfo>> loadBundle(SSL_CTX* ctx, std::string_view pem) {
    auto certs = readPemCertificates(pem);
    if (!certs) {
        return prefixed("CA bundle: ", std::move(certs).error());
    }
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    std::vector<CertificateInfo> anchors;
    for (const auto& cert : *certs) {
        if (X509_STORE_add_cert(store, cert.get()) != 1) {
            return sslFail("adding a CA certificate to the trust store");
        }
        anchors.push_back(describeCertificate(cert.get()));
    }
    return anchors;
}

int protocolOf(TlsVersion v) {
    return v == TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}
const char* nameOf(TlsVersion v) {
    return v == TlsVersion::Tls13 ? "1.3" : "1.2";
}

Status applyVersions(SSL_CTX* ctx, const ProfileSpec& spec) {
    if (spec.minVersion > spec.maxVersion) {
        return fail(Errc::Invalid, std::string("min-tls-version ") + nameOf(spec.minVersion) +
                                       " is above max-tls-version " + nameOf(spec.maxVersion));
    }
    if (SSL_CTX_set_min_proto_version(ctx, protocolOf(spec.minVersion)) != 1) {
        return sslFail("setting the minimum TLS version");
    }
    if (SSL_CTX_set_max_proto_version(ctx, protocolOf(spec.maxVersion)) != 1) {
        return sslFail("setting the maximum TLS version");
    }
    return {};
}

// Every name is checked against its allow-list first (option_names.h): the lists reach
// OpenSSL's parsers, which would also take keywords and directives.
Status refuseNames(NameKind kind, const std::vector<std::string>& names, const char* what) {
    auto refused = refusedNames(kind, names);
    if (!refused.empty()) {
        return fail(Errc::Invalid, std::string(what) + ": " + join(refused, "; "));
    }
    return {};
}

Status applyCiphers(SSL_CTX* ctx, const std::vector<std::string>& names) {
    if (names.empty()) {
        return {};
    }
    LM_TRY(refuseNames(NameKind::CipherSuite, names, "cipher suite(s)"));
    std::vector<std::string> tls12;
    std::vector<std::string> tls13;
    for (const auto& name : names) {
        auto suite = allowedCipherSuite(name);
        if (!suite) {
            return fail(std::move(suite).error());
        }
        (suite->tls13 ? tls13 : tls12).push_back(suite->opensslName);
    }
    // A version whose suites are not listed keeps OpenSSL's defaults.
    if (!tls12.empty() && SSL_CTX_set_cipher_list(ctx, join(tls12, ":").c_str()) != 1) {
        return sslInvalid("setting TLS 1.2 cipher suites " + join(tls12, ":"));
    }
    if (!tls13.empty() && SSL_CTX_set_ciphersuites(ctx, join(tls13, ":").c_str()) != 1) {
        return sslInvalid("setting TLS 1.3 cipher suites " + join(tls13, ":"));
    }
    return {};
}

using ListSetter = int (*)(SSL_CTX*, const char*);

Status applyList(SSL_CTX* ctx, const std::vector<std::string>& names, NameKind kind,
                 const char* what, ListSetter set) {
    if (names.empty()) {
        return {};
    }
    LM_TRY(refuseNames(kind, names, what));
    const std::string list = join(names, ":");
    if (set(ctx, list.c_str()) != 1) {
        return sslInvalid(std::string("setting ") + what + " " + list);
    }
    return {};
}

Status applyAlpn(SSL_CTX* ctx, const std::vector<std::string>& protocols) {
    if (protocols.empty()) {
        return {};
    }
    LM_TRY(refuseNames(NameKind::AlpnProtocol, protocols, "ALPN protocol(s)"));
    std::vector<unsigned char> wire;
    for (const auto& p : protocols) {
        wire.push_back(static_cast<unsigned char>(p.size()));
        wire.insert(wire.end(), p.begin(), p.end());
    }
    // Inverted convention: 0 is success.
    if (SSL_CTX_set_alpn_protos(ctx, wire.data(), static_cast<unsigned int>(wire.size())) != 0) {
        return sslFail("setting ALPN protocols");
    }
    return {};
}

Status applyClientCertificate(SSL_CTX* ctx, const ClientCertificate& cc) {
    auto chain = readPemCertificates(cc.certChainPem);
    if (!chain) {
        return prefixed("client certificate: ", std::move(chain).error());
    }
    auto key = readPemPrivateKey(cc.keyPem);
    if (!key) {
        return prefixed("client certificate key: ", std::move(key).error());
    }
    X509* leaf = chain->front().get();
    if (X509_check_private_key(leaf, key->get()) != 1) {
        ERR_clear_error();
        return fail(Errc::Invalid, "client certificate and key do not match");
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
        return sslInvalid("client certificate");
    }
    for (std::size_t i = 1; i < chain->size(); ++i) {
        if (SSL_CTX_add1_chain_cert(ctx, (*chain)[i].get()) != 1) {
            return sslInvalid("client certificate chain");
        }
    }
    if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
        return sslInvalid("client certificate key");
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return sslInvalid("client certificate and key");
    }
    return {};
}

X509* peerLeaf(const SSL* ssl) {
    // On a verification failure the session has no peer yet, but the received chain (leaf
    // first on the client side) is kept.
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
    if (chain != nullptr && sk_X509_num(chain) > 0) {
        return sk_X509_value(chain, 0);
    }
    return SSL_get0_peer_certificate(ssl);
}

}  // namespace

struct HandshakeProfile::SessionCache {
    CtxState* state = nullptr;  // owned by ctx_'s ex_data; null for fail-closed profiles
};

HandshakeProfile::HandshakeProfile(ProfileSpec spec, SslCtxPtr ctx,
                                   std::vector<CertificateInfo> anchors)
    : spec_(std::move(spec)),
      ctx_(std::move(ctx)),
      anchors_(std::move(anchors)),
      sessions_(std::make_unique<SessionCache>(SessionCache{stateOf(ctx_.get())})) {}

HandshakeProfile::~HandshakeProfile() = default;

std::shared_ptr<const HandshakeProfile> HandshakeProfile::failClosed(ProfileSpec spec,
                                                                     std::string reason) {
    spec.failClosedReason = reason.empty() ? "policy cannot be honoured" : std::move(reason);
    return std::shared_ptr<const HandshakeProfile>(
        new HandshakeProfile(std::move(spec), SslCtxPtr(), {}));
}

Result<std::shared_ptr<const HandshakeProfile>> HandshakeProfile::compile(
    const ProfileSpec& spec, const drivers::EngineSet* engines) {
    if (!spec.failClosedReason.empty()) {
        return failClosed(spec, spec.failClosedReason);
    }
    if (spec.subjectAltNames.empty() && spec.sni.empty()) {
        return fail(Errc::Invalid, "no hostname to verify the backend certificate against");
    }
    for (const auto& s : spec.subjectAltNames) {
        if (s.value.empty()) {
            return fail(Errc::Invalid, "empty subjectAltNames entry");
        }
    }
    if (ctxStateIndex() < 0) {
        return sslFail("allocating the SSL_CTX ex_data index");
    }
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        return sslFail("creating the SSL_CTX for " + describeBackend(spec.backend));
    }

    std::vector<CertificateInfo> anchors;
    if (spec.systemTrust) {
        if (!spec.caBundlePem.empty()) {
            return fail(Errc::Invalid, "both the system trust store and a CA bundle are set");
        }
        LM_TRY(loadSystemTrust(ctx.get()));
    } else {
        auto loaded = loadBundle(ctx.get(), spec.caBundlePem);
        if (!loaded) {
            return fail(std::move(loaded).error());
        }
        anchors = std::move(*loaded);
    }

    LM_TRY(applyVersions(ctx.get(), spec));
    LM_TRY(applyCiphers(ctx.get(), spec.cipherSuites));
    LM_TRY(applyList(ctx.get(), spec.ecdhCurves, NameKind::Group, "ECDH curve(s)",
                     [](SSL_CTX* c, const char* l) {
                         return static_cast<int>(SSL_CTX_set1_groups_list(c, l));
                     }));
    LM_TRY(applyList(ctx.get(), spec.signatureAlgorithms, NameKind::SignatureAlgorithm,
                     "signature algorithm(s)", [](SSL_CTX* c, const char* l) {
                         return static_cast<int>(SSL_CTX_set1_sigalgs_list(c, l));
                     }));
    LM_TRY(applyAlpn(ctx.get(), spec.alpnProtocols));
    if (spec.clientCertificate) {
        LM_TRY(applyClientCertificate(ctx.get(), *spec.clientCertificate));
    }

    if (spec.sessionResumption) {
        // OpenSSL's internal store is keyed by session id; the profile keeps the newest
        // session itself and offers it on the next connection to the same backend.
        SSL_CTX_set_session_cache_mode(ctx.get(),
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx.get(), onNewSession);
    } else {
        SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    }

    // Verification is never skipped (spec section 4, STYLE.md section 4).
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, verifyCallback);
    X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx.get()), kHostFlags);

    auto state = std::make_unique<CtxState>();
    state->sni = spec.sni;
    state->sans = spec.subjectAltNames;
    if (SSL_CTX_set_ex_data(ctx.get(), ctxStateIndex(), state.get()) != 1) {
        return sslFail("attaching verification state to the SSL_CTX");
    }
    static_cast<void>(state.release());  // now owned by the SSL_CTX
    if (engines != nullptr) {
        engines->prepareContext(ctx.get(), spec.offload,
                                drivers::ContextFacts{!spec.cipherSuites.empty()});
    }
    // Last, so that nothing applied before can lower it: anonymous, NULL and weak suites stay
    // out whatever an option or an engine did (defence in depth: the allow-lists already refuse
    // them by name).
    SSL_CTX_set_security_level(ctx.get(),
                               std::max(kMinSecurityLevel, SSL_CTX_get_security_level(ctx.get())));

    return std::shared_ptr<const HandshakeProfile>(
        new HandshakeProfile(spec, std::move(ctx), std::move(anchors)));
}

Result<SslPtr> HandshakeProfile::newSession() const {
    if (!ctx_) {
        return fail(Errc::Invalid, "backend " + describeBackend(spec_.backend) +
                                       " fails closed: " + spec_.failClosedReason);
    }
    SslPtr ssl(SSL_new(ctx_.get()));
    if (!ssl) {
        return sslFail("creating a TLS session for " + describeBackend(spec_.backend));
    }
    if (!spec_.sni.empty() && SSL_set_tlsext_host_name(ssl.get(), spec_.sni.c_str()) != 1) {
        return sslFail("setting SNI " + spec_.sni);
    }
    // Without subjectAltNames OpenSSL checks the hostname itself; with them the verify
    // callback matches the list and the hostname is SNI only.
    if (spec_.subjectAltNames.empty() && SSL_set1_host(ssl.get(), spec_.sni.c_str()) != 1) {
        return sslFail("setting the verification hostname " + spec_.sni);
    }
    if (spec_.sessionResumption && sessions_->state != nullptr) {
        // A copy: OpenSSL marks a TLS 1.3 session used up once a handshake resumed it, and
        // one freed mid-connection as not resumable, while the new tickets that would
        // replace it are not always read (a kernel-framed session drops them). With copies
        // every connection resumes from the newest ticket; a backend that refuses a reused
        // ticket gets a full handshake, whose tickets then refresh the cache.
        std::lock_guard lock(sessions_->state->mu);
        if (sessions_->state->latest) {
            SslSessionPtr copy(SSL_SESSION_dup(sessions_->state->latest.get()));
            if (!copy || SSL_set_session(ssl.get(), copy.get()) != 1) {
                ERR_clear_error();  // a full handshake is always possible
            }
        }
    }
    SSL_set_connect_state(ssl.get());
    return ssl;
}

bool peerVerified(const SSL* ssl) {
    return ssl != nullptr && SSL_get0_peer_certificate(ssl) != nullptr &&
           SSL_get_verify_result(ssl) == X509_V_OK;
}

bool HandshakeProfile::verifiesChain(STACK_OF(X509)* chain) const {
    if (!ctx_ || chain == nullptr || sk_X509_num(chain) == 0) {
        return false;
    }
    X509* leaf = sk_X509_value(chain, 0);
    X509StoreCtxPtr store(X509_STORE_CTX_new());
    bool ok = store && X509_STORE_CTX_init(store.get(), SSL_CTX_get_cert_store(ctx_.get()), leaf,
                                           chain) == 1;
    // The parameters a session of this context verifies with (OpenSSL's own order: the
    // TLS-server defaults, then the context's), plus the hostname newSession() sets.
    X509_VERIFY_PARAM* param = ok ? X509_STORE_CTX_get0_param(store.get()) : nullptr;
    ok = ok && X509_STORE_CTX_set_default(store.get(), "ssl_server") == 1 &&
         X509_VERIFY_PARAM_set1(param, SSL_CTX_get0_param(ctx_.get())) == 1;
    if (ok && spec_.subjectAltNames.empty()) {
        ok = X509_VERIFY_PARAM_set1_host(param, spec_.sni.data(), spec_.sni.size()) == 1;
    }
    ok = ok && X509_verify_cert(store.get()) == 1 &&
         (spec_.subjectAltNames.empty() || sanMatches(leaf, spec_.subjectAltNames));
    ERR_clear_error();
    return ok;
}

std::string verifyFailureReason(const SSL* ssl) {
    if (ssl == nullptr) {
        return {};
    }
    const long result = SSL_get_verify_result(ssl);
    if (result == X509_V_OK) {
        // OpenSSL verifies only a certificate it received: an anonymous suite leaves X509_V_OK.
        if (SSL_is_init_finished(ssl) == 1 && SSL_get0_peer_certificate(ssl) == nullptr) {
            return "certificate verify failed: the backend presented no certificate";
        }
        return {};
    }
    X509* leaf = peerLeaf(ssl);
    const CtxState* state = stateOf(SSL_get_SSL_CTX(ssl));
    std::string out = "certificate verify failed: ";
    switch (result) {
    case X509_V_ERR_HOSTNAME_MISMATCH: {
        const std::string has = leaf != nullptr ? describeSubjectAltNames(leaf) : "no certificate";
        if (state != nullptr && !state->sans.empty()) {
            return out + "subjectAltName mismatch: expected one of SANs [" +
                   describeSans(state->sans) + "], certificate has [" + has + "]";
        }
        std::string expected;
        if (state != nullptr) {
            expected = state->sni;
        } else if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
            expected = sni;
        }
        return out + "hostname mismatch: expected \"" + expected + "\", certificate has " + has;
    }
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
        out += X509_verify_cert_error_string(result);
        out += " (CA not trusted)";
        if (leaf != nullptr) {
            out += ": certificate " + nameRfc2253(X509_get_subject_name(leaf)) + " issued by " +
                   nameRfc2253(X509_get_issuer_name(leaf));
        }
        return out;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        out += "certificate has expired";
        if (leaf != nullptr && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
            out += " (notAfter " + rfc3339(X509_get0_notAfter(leaf)) + ")";
        }
        return out;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        out += "certificate is not yet valid";
        if (leaf != nullptr && X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
            out += " (notBefore " + rfc3339(X509_get0_notBefore(leaf)) + ")";
        }
        return out;
    default:
        return out + X509_verify_cert_error_string(result);
    }
}

}  // namespace lastmile::tls
