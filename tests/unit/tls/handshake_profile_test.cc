// SPDX-License-Identifier: Apache-2.0
// Tests for HandshakeProfile: real handshakes against an in-process OpenSSL server.
#include "dataplane/tls/handshake_profile.h"

#include <dirent.h>
#include <sys/socket.h>

#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/support/test_pki.h"

namespace lastmile::tls {
namespace {

using test::IssuedCert;
using test::IssueOptions;
using test::makeServerContext;
using test::TestPki;

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// Both ends of one connection, driven alternately in this thread over a non-blocking
// socketpair until each side has finished or failed: no threads, no timing.
struct Connection {
    UniqueFd clientFd;
    UniqueFd serverFd;
    SslPtr client;
    SslPtr server;
    int clientState = 0;  // 0 in progress, 1 done, -1 failed
    int serverState = 0;

    bool ok() const { return clientState == 1 && serverState == 1; }

    static void step(SSL* ssl, int* state) {
        if (*state != 0) {
            return;
        }
        const int rc = SSL_do_handshake(ssl);
        if (rc == 1) {
            *state = 1;
            return;
        }
        const int err = SSL_get_error(ssl, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            *state = -1;
        }
    }

    void run() {
        // A TLS handshake needs a handful of flights; the bound only stops a deadlock.
        for (int i = 0; i < 100 && (clientState == 0 || serverState == 0); ++i) {
            step(client.get(), &clientState);
            step(server.get(), &serverState);
        }
        ERR_clear_error();
    }

    // One byte from the server: the client reads it and, before it, any post-handshake
    // messages such as TLS 1.3 session tickets.
    void exchange() {
        if (SSL_write(server.get(), "x", 1) != 1) {
            throw std::runtime_error("server write failed");
        }
        char c = 0;
        if (SSL_read(client.get(), &c, 1) != 1 || c != 'x') {
            throw std::runtime_error("client read failed");
        }
    }

    std::string serverCipher() const { return SSL_get_cipher_name(server.get()); }
};

class HandshakeProfileTest : public ::testing::Test {
protected:
    ProfileSpec specFor(const std::string& hostname) const {
        ProfileSpec spec;
        spec.backend = BackendKey{"default", "echo", 443};
        spec.policy = "default/echo-tls";
        spec.sni = hostname;
        spec.caBundlePem = pki_.caPem();
        return spec;
    }

    static std::shared_ptr<const HandshakeProfile> compileOrThrow(const ProfileSpec& spec) {
        auto profile = HandshakeProfile::compile(spec);
        if (!profile) {
            throw std::runtime_error("compile failed: " + profile.error().message());
        }
        return *profile;
    }

    static Connection connect(const HandshakeProfile& profile, SSL_CTX* serverCtx) {
        auto session = profile.newSession();
        if (!session) {
            throw std::runtime_error("newSession failed");
        }
        return connect(std::move(*session), serverCtx);
    }

    static Connection connect(SslPtr client, SSL_CTX* serverCtx) {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
            throw std::runtime_error("socketpair failed");
        }
        Connection c;
        c.clientFd.reset(fds[0]);
        c.serverFd.reset(fds[1]);
        if (SSL_set_fd(client.get(), c.clientFd.get()) != 1) {
            throw std::runtime_error("client SSL setup failed");
        }
        SSL_set_connect_state(client.get());
        c.client = std::move(client);
        c.server.reset(SSL_new(serverCtx));
        if (!c.server || SSL_set_fd(c.server.get(), c.serverFd.get()) != 1) {
            throw std::runtime_error("server SSL setup failed");
        }
        SSL_set_accept_state(c.server.get());
        c.run();
        return c;
    }

    // Handshake of a profile for `spec` with a server presenting `leaf`.
    Connection handshake(const ProfileSpec& spec, const IssuedCert& leaf) {
        auto profile = compileOrThrow(spec);
        auto server = makeServerContext(leaf);
        return connect(*profile, server.get());
    }

    TestPki pki_;
};

// --- hostname verification (no subjectAltNames) ---

TEST_F(HandshakeProfileTest, AcceptsCertificateMatchingHostnameAndSendsItAsSni) {
    auto c = handshake(specFor("echo.default.svc"), pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_EQ(verifyFailureReason(c.client.get()), "");
    const char* sni = SSL_get_servername(c.server.get(), TLSEXT_NAMETYPE_host_name);
    ASSERT_NE(sni, nullptr);
    EXPECT_STREQ(sni, "echo.default.svc");
}

TEST_F(HandshakeProfileTest, RejectsCertificateForOtherHostnameNamingBothNames) {
    auto c = handshake(specFor("a.example"), pki_.issueServer("b.example"));
    EXPECT_EQ(c.clientState, -1);
    EXPECT_NE(c.serverState, 1);
    EXPECT_EQ(SSL_get_verify_result(c.client.get()), X509_V_ERR_HOSTNAME_MISMATCH);
    const std::string reason = verifyFailureReason(c.client.get());
    EXPECT_TRUE(contains(reason, "hostname mismatch")) << reason;
    EXPECT_TRUE(contains(reason, "\"a.example\"")) << reason;
    EXPECT_TRUE(contains(reason, "DNS:b.example")) << reason;
}

TEST_F(HandshakeProfileTest, AcceptsWildcardCertificateForHostname) {
    auto c = handshake(specFor("a.example.com"), pki_.issueServer("*.example.com"));
    EXPECT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
}

TEST_F(HandshakeProfileTest, RejectsWildcardCertificateForDeeperHostname) {
    auto c = handshake(specFor("a.b.example.com"), pki_.issueServer("*.example.com"));
    EXPECT_EQ(c.clientState, -1);
    EXPECT_EQ(SSL_get_verify_result(c.client.get()), X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_F(HandshakeProfileTest, IgnoresTheSubjectCommonName) {
    IssueOptions o;
    o.commonName = "echo.default.svc";
    auto c = handshake(specFor("echo.default.svc"), pki_.issueServer("other.default.svc", o));
    EXPECT_EQ(c.clientState, -1);
    EXPECT_EQ(SSL_get_verify_result(c.client.get()), X509_V_ERR_HOSTNAME_MISMATCH);
}

// --- chain verification ---

TEST_F(HandshakeProfileTest, RejectsCertificateFromUntrustedCa) {
    TestPki other;
    IssueOptions o;
    o.issuer = &other;
    auto c = handshake(specFor("echo.default.svc"), pki_.issueServer("echo.default.svc", o));
    EXPECT_EQ(c.clientState, -1);
    const std::string reason = verifyFailureReason(c.client.get());
    EXPECT_TRUE(contains(reason, "CA not trusted")) << reason;
    EXPECT_TRUE(contains(reason, other.caName())) << reason;
}

TEST_F(HandshakeProfileTest, TrustsEveryCaOfAConcatenatedBundle) {
    TestPki other;
    ProfileSpec spec = specFor("echo.default.svc");
    spec.caBundlePem = other.caPem() + pki_.caPem();
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    EXPECT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
}

// --- re-verifying an open session's peer under a new profile ---

TEST_F(HandshakeProfileTest, PeerChainIsReverifiedUnderANewProfilesTrustAndNames) {
    auto c = handshake(specFor("echo.default.svc"), pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(c.client.get());
    ASSERT_NE(chain, nullptr);
    TestPki other;

    EXPECT_TRUE(compileOrThrow(specFor("echo.default.svc"))->verifiesChain(chain));
    ProfileSpec both = specFor("echo.default.svc");
    both.caBundlePem = other.caPem() + pki_.caPem();
    EXPECT_TRUE(compileOrThrow(both)->verifiesChain(chain)) << "a bundle that still has the CA";
    ProfileSpec rotated = specFor("echo.default.svc");
    rotated.caBundlePem = other.caPem();
    EXPECT_FALSE(compileOrThrow(rotated)->verifiesChain(chain)) << "a CA that did not sign it";
    EXPECT_FALSE(compileOrThrow(specFor("other.default.svc"))->verifiesChain(chain))
        << "a hostname the certificate does not have";
    ProfileSpec sans = specFor("other.default.svc");
    sans.subjectAltNames = {{SanMatcher::Type::Hostname, "echo.default.svc"}};
    EXPECT_TRUE(compileOrThrow(sans)->verifiesChain(chain)) << "a matching SAN entry";
    sans.subjectAltNames = {{SanMatcher::Type::Uri, "spiffe://cluster.local/ns/x/sa/y"}};
    EXPECT_FALSE(compileOrThrow(sans)->verifiesChain(chain)) << "a SAN list it does not match";
    EXPECT_FALSE(HandshakeProfile::failClosed(specFor("echo.default.svc"), "no valid CA")
                     ->verifiesChain(chain));
    EXPECT_FALSE(compileOrThrow(specFor("echo.default.svc"))->verifiesChain(nullptr));
}

TEST_F(HandshakeProfileTest, RejectsExpiredCertificate) {
    IssueOptions o;
    o.notBeforeOffset = std::chrono::hours(-48);
    o.notAfterOffset = std::chrono::hours(-24);
    auto c = handshake(specFor("echo.default.svc"), pki_.issueServer("echo.default.svc", o));
    EXPECT_EQ(c.clientState, -1);
    EXPECT_EQ(SSL_get_verify_result(c.client.get()), X509_V_ERR_CERT_HAS_EXPIRED);
    const std::string reason = verifyFailureReason(c.client.get());
    EXPECT_TRUE(contains(reason, "expired")) << reason;
}

TEST_F(HandshakeProfileTest, RejectsNotYetValidCertificate) {
    IssueOptions o;
    o.notBeforeOffset = std::chrono::hours(24);
    o.notAfterOffset = std::chrono::hours(48);
    auto c = handshake(specFor("echo.default.svc"), pki_.issueServer("echo.default.svc", o));
    EXPECT_EQ(c.clientState, -1);
    EXPECT_EQ(SSL_get_verify_result(c.client.get()), X509_V_ERR_CERT_NOT_YET_VALID);
    const std::string reason = verifyFailureReason(c.client.get());
    EXPECT_TRUE(contains(reason, "not yet valid")) << reason;
}

// --- subjectAltNames ---

TEST_F(HandshakeProfileTest, AcceptsSanHostnameMatchAndStillSendsHostnameAsSni) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Hostname, "backend.internal"}};
    auto c = handshake(spec, pki_.issueServer("backend.internal"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    const char* sni = SSL_get_servername(c.server.get(), TLSEXT_NAMETYPE_host_name);
    ASSERT_NE(sni, nullptr);
    EXPECT_STREQ(sni, "echo.default.svc");
}

TEST_F(HandshakeProfileTest, DoesNotAuthenticateTheHostnameOnceSansAreSet) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Hostname, "backend.internal"}};
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    EXPECT_EQ(c.clientState, -1);
    const std::string reason = verifyFailureReason(c.client.get());
    EXPECT_TRUE(contains(reason, "subjectAltName mismatch")) << reason;
    EXPECT_TRUE(contains(reason, "DNS:backend.internal")) << reason;
    EXPECT_TRUE(contains(reason, "DNS:echo.default.svc")) << reason;
}

TEST_F(HandshakeProfileTest, SanHostnameEntryAcceptsWildcardCertificate) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Hostname, "a.example.com"}};
    auto c = handshake(spec, pki_.issueServer("*.example.com"));
    EXPECT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
}

TEST_F(HandshakeProfileTest, AcceptsMatchingSpiffeUri) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Uri, "spiffe://cluster.local/ns/default/sa/echo"}};
    IssueOptions o;
    o.uris = {"spiffe://cluster.local/ns/default/sa/echo"};
    auto c = handshake(spec, pki_.issueServer("unrelated.example", o));
    EXPECT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
}

TEST_F(HandshakeProfileTest, RejectsOtherSpiffeUriListingExpectedAndActualSans) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Uri, "spiffe://cluster.local/ns/default/sa/echo"}};
    IssueOptions o;
    o.uris = {"spiffe://cluster.local/ns/default/sa/other"};
    auto c = handshake(spec, pki_.issueServer("echo.default.svc", o));
    EXPECT_EQ(c.clientState, -1);
    const std::string reason = verifyFailureReason(c.client.get());
    EXPECT_TRUE(contains(reason, "[URI:spiffe://cluster.local/ns/default/sa/echo]")) << reason;
    EXPECT_TRUE(contains(reason, "URI:spiffe://cluster.local/ns/default/sa/other")) << reason;
}

TEST_F(HandshakeProfileTest, UriEntryDoesNotMatchADnsSanWithTheSameText) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Uri, "backend.internal"}};
    auto c = handshake(spec, pki_.issueServer("backend.internal"));
    EXPECT_EQ(c.clientState, -1);
}

TEST_F(HandshakeProfileTest, AcceptsWhenAnyOfSeveralSansMatches) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Hostname, "nope.example"},
                            {SanMatcher::Type::Uri, "spiffe://td/ns/a/sa/b"},
                            {SanMatcher::Type::Hostname, "backend.internal"}};
    auto byHostname = handshake(spec, pki_.issueServer("backend.internal"));
    EXPECT_TRUE(byHostname.ok()) << verifyFailureReason(byHostname.client.get());

    IssueOptions o;
    o.uris = {"spiffe://td/ns/a/sa/b"};
    auto byUri = handshake(spec, pki_.issueServer(std::vector<std::string>{}, o));
    EXPECT_TRUE(byUri.ok()) << verifyFailureReason(byUri.client.get());

    auto none = handshake(spec, pki_.issueServer("elsewhere.example"));
    EXPECT_EQ(none.clientState, -1);
}

TEST_F(HandshakeProfileTest, WildcardSanEntryMatchesOnlyALiteralWildcardSan) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Hostname, "*.example.com"}};
    auto literal = handshake(spec, pki_.issueServer("*.example.com"));
    EXPECT_TRUE(literal.ok()) << verifyFailureReason(literal.client.get());

    auto concrete = handshake(spec, pki_.issueServer("a.example.com"));
    EXPECT_EQ(concrete.clientState, -1);
    EXPECT_EQ(SSL_get_verify_result(concrete.client.get()), X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_F(HandshakeProfileTest, SanMatchStillRequiresATrustedChain) {
    TestPki other;
    ProfileSpec spec = specFor("echo.default.svc");
    spec.subjectAltNames = {{SanMatcher::Type::Hostname, "backend.internal"}};
    IssueOptions o;
    o.issuer = &other;
    auto c = handshake(spec, pki_.issueServer("backend.internal", o));
    EXPECT_EQ(c.clientState, -1);
    EXPECT_TRUE(contains(verifyFailureReason(c.client.get()), "CA not trusted"));
}

// --- versions, ciphers, groups, ALPN ---

TEST_F(HandshakeProfileTest, MinimumTls13RefusesATls12OnlyServer) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.minVersion = TlsVersion::Tls13;
    auto profile = compileOrThrow(spec);
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));
    SSL_CTX_set_max_proto_version(server.get(), TLS1_2_VERSION);
    auto c = connect(*profile, server.get());
    EXPECT_EQ(c.clientState, -1);
    EXPECT_EQ(c.serverState, -1);
    EXPECT_EQ(verifyFailureReason(c.client.get()), "");  // not a certificate problem
}

TEST_F(HandshakeProfileTest, MaximumTls12NegotiatesTls12) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.maxVersion = TlsVersion::Tls12;
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_EQ(SSL_version(c.server.get()), TLS1_2_VERSION);
}

TEST_F(HandshakeProfileTest, RejectsMinimumAboveMaximum) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.minVersion = TlsVersion::Tls13;
    spec.maxVersion = TlsVersion::Tls12;
    auto profile = HandshakeProfile::compile(spec);
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
}

TEST_F(HandshakeProfileTest, RestrictsTls12CipherSuitesByOpensslName) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.maxVersion = TlsVersion::Tls12;
    spec.cipherSuites = {"ECDHE-ECDSA-CHACHA20-POLY1305"};
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_EQ(c.serverCipher(), "ECDHE-ECDSA-CHACHA20-POLY1305");
}

TEST_F(HandshakeProfileTest, RestrictsTls12CipherSuitesByIanaName) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.maxVersion = TlsVersion::Tls12;
    spec.cipherSuites = {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"};
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_EQ(c.serverCipher(), "ECDHE-ECDSA-AES128-GCM-SHA256");
}

TEST_F(HandshakeProfileTest, RestrictsTls13CipherSuites) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.cipherSuites = {"TLS_CHACHA20_POLY1305_SHA256"};
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_EQ(SSL_version(c.server.get()), TLS1_3_VERSION);
    EXPECT_EQ(c.serverCipher(), "TLS_CHACHA20_POLY1305_SHA256");
}

TEST_F(HandshakeProfileTest, RejectsUnknownCipherSuitesNamingEach) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.cipherSuites = {"ECDHE-ECDSA-AES128-GCM-SHA256", "BOGUS-CIPHER", "TLS_FAKE_SUITE",
                         "TLS_ECDHE_FAKE_WITH_NOTHING"};
    auto profile = HandshakeProfile::compile(spec);
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
    const std::string& ctx = profile.error().context();
    EXPECT_TRUE(contains(ctx, "BOGUS-CIPHER")) << ctx;
    EXPECT_TRUE(contains(ctx, "TLS_FAKE_SUITE")) << ctx;
    EXPECT_TRUE(contains(ctx, "TLS_ECDHE_FAKE_WITH_NOTHING")) << ctx;
    EXPECT_FALSE(contains(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256")) << ctx;
}

// Security issue item 1: OpenSSL's cipher-list syntax reached the context and could enable
// suites without a certificate or without encryption.
TEST_F(HandshakeProfileTest, RefusesCipherEntriesThatCouldSwitchOffAuthenticationOrEncryption) {
    for (const char* entry :
         {"ADH-AES256-GCM-SHA384@SECLEVEL=0", "aNULL@SECLEVEL=0", "ALL@SECLEVEL=0",
          "ECDHE-ECDSA-NULL-SHA@SECLEVEL=0", "eNULL@SECLEVEL=0", "ADH-AES256-GCM-SHA384",
          "ECDHE-ECDSA-NULL-SHA", "ALL", "DEFAULT", "!aNULL", "+ALL", "-ALL",
          "ECDHE-ECDSA-AES128-GCM-SHA256;ADH-AES128-SHA", "ECDHE-ECDSA-AES128-GCM-SHA256:eNULL"}) {
        ProfileSpec spec = specFor("echo.default.svc");
        spec.cipherSuites = {"ECDHE-ECDSA-AES128-GCM-SHA256", entry};
        auto profile = HandshakeProfile::compile(spec);
        ASSERT_FALSE(profile) << entry;
        EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid)) << entry;
        EXPECT_TRUE(contains(profile.error().context(), std::string("\"") + entry + "\""))
            << profile.error().context();
    }
}

TEST_F(HandshakeProfileTest, RefusesListSyntaxInCurvesSignatureAlgorithmsAndAlpn) {
    for (const char* curve : {"X25519:P-256", "-X25519", "DEFAULT"}) {
        ProfileSpec spec = specFor("echo.default.svc");
        spec.ecdhCurves = {curve};
        EXPECT_FALSE(HandshakeProfile::compile(spec)) << curve;
    }
    for (const char* sigalg : {"RSA+SHA256", "ed25519:ed448"}) {
        ProfileSpec spec = specFor("echo.default.svc");
        spec.signatureAlgorithms = {sigalg};
        EXPECT_FALSE(HandshakeProfile::compile(spec)) << sigalg;
    }
    for (const char* alpn : {"h2,http/1.1", "h 2"}) {
        ProfileSpec spec = specFor("echo.default.svc");
        spec.alpnProtocols = {alpn};
        EXPECT_FALSE(HandshakeProfile::compile(spec)) << alpn;
    }
}

// A server that offers only `cipherList` over TLS 1.2 (TLS 1.3 has neither kind), at
// security level 0 so that anonymous and NULL suites are allowed on its side.
SslCtxPtr weakServer(SslCtxPtr server, const char* cipherList) {
    if (SSL_CTX_set_max_proto_version(server.get(), TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(server.get(), cipherList) != 1 ||
        SSL_CTX_set_dh_auto(server.get(), 1) != 1) {
        throw std::runtime_error(std::string("weak server setup failed: ") + cipherList);
    }
    SSL_CTX_set_security_level(server.get(), 0);
    return server;
}

TEST_F(HandshakeProfileTest, NeverCompletesAHandshakeWithAnAnonymousOrNullOnlyServer) {
    for (const char* list : {"aNULL:@SECLEVEL=0", "eNULL:@SECLEVEL=0"}) {
        auto profile = compileOrThrow(specFor("echo.default.svc"));
        auto server = weakServer(makeServerContext(pki_.issueServer("echo.default.svc")), list);
        auto c = connect(*profile, server.get());
        EXPECT_NE(c.clientState, 1) << list;
        EXPECT_FALSE(peerVerified(c.client.get())) << list;
    }
}

// Stands in for a future bug in an engine's context preparation.
class LoweringEngine final : public drivers::RecordEngine {
public:
    std::string_view name() const noexcept override { return "lowering"; }
    drivers::EngineProbe probe() const override { return {true, "test", {}, {}}; }
    bool serves(drivers::Offload) const noexcept override { return true; }
    bool keepsTickets() const noexcept override { return true; }
    void prepareContext(SSL_CTX* ctx, const drivers::ContextFacts&) const override {
        SSL_CTX_set_security_level(ctx, 0);
    }
    drivers::Attach attach(SSL*, int, drivers::Wire&) override {
        return drivers::Attach::declined("test");
    }
};

// Defence in depth: even a context an engine lowered leaves compile() at level 2 or above.
TEST_F(HandshakeProfileTest, CompiledProfilesRunAtSecurityLevelTwoOrAbove) {
    std::vector<std::unique_ptr<drivers::RecordEngine>> list;
    list.push_back(std::make_unique<LoweringEngine>());
    const drivers::EngineSet engines = drivers::EngineSet::of(std::move(list));
    ProfileSpec plain = specFor("echo.default.svc");
    ProfileSpec everyOption = specFor("echo.default.svc");
    everyOption.maxVersion = TlsVersion::Tls12;
    everyOption.cipherSuites = {"ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256"};
    everyOption.ecdhCurves = {"X25519", "P-256"};
    everyOption.signatureAlgorithms = {"ecdsa_secp256r1_sha256"};
    everyOption.alpnProtocols = {"h2"};
    everyOption.sessionResumption = false;
    std::vector<int> levels;
    for (const auto& spec : {plain, everyOption}) {
        auto profile = HandshakeProfile::compile(spec, &engines);
        ASSERT_TRUE(profile) << profile.error().message();
        auto session = (*profile)->newSession();
        ASSERT_TRUE(session) << session.error().message();
        levels.push_back(SSL_get_security_level(session->get()));
    }
    auto anonymous = HandshakeProfile::compile(plain, &engines);
    ASSERT_TRUE(anonymous);
    for (int level : levels) {
        EXPECT_GE(level, 2);
    }
    auto server = weakServer(makeServerContext(pki_.issueServer("echo.default.svc")),
                             "aNULL:@SECLEVEL=0");
    EXPECT_NE(connect(**anonymous, server.get()).clientState, 1);
}

TEST_F(HandshakeProfileTest, PeerIsVerifiedOnlyWithACertificateThatVerified) {
    auto c = handshake(specFor("echo.default.svc"), pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_TRUE(peerVerified(c.client.get()));
    EXPECT_EQ(verifyFailureReason(c.client.get()), "");
    EXPECT_FALSE(peerVerified(nullptr));

    // A client that bypassed compile(): the handshake completes without a certificate, and
    // OpenSSL's verify result still says X509_V_OK.
    SslCtxPtr weakClient(SSL_CTX_new(TLS_client_method()));
    ASSERT_EQ(SSL_CTX_set_cipher_list(weakClient.get(), "aNULL:@SECLEVEL=0"), 1);
    SSL_CTX_set_verify(weakClient.get(), SSL_VERIFY_PEER, nullptr);
    auto server = weakServer(makeServerContext(pki_.issueServer("echo.default.svc")),
                             "aNULL:@SECLEVEL=0");
    auto anon = connect(SslPtr(SSL_new(weakClient.get())), server.get());
    ASSERT_TRUE(anon.ok());
    EXPECT_EQ(SSL_get_verify_result(anon.client.get()), X509_V_OK);
    EXPECT_FALSE(peerVerified(anon.client.get()));
    EXPECT_TRUE(contains(verifyFailureReason(anon.client.get()), "no certificate"))
        << verifyFailureReason(anon.client.get());
}

TEST_F(HandshakeProfileTest, RestrictsEcdhCurves) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.ecdhCurves = {"secp384r1"};
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_EQ(SSL_get_negotiated_group(c.server.get()), NID_secp384r1);
}

TEST_F(HandshakeProfileTest, RejectsUnknownCurveAndSignatureAlgorithmNamingThem) {
    ProfileSpec curves = specFor("echo.default.svc");
    curves.ecdhCurves = {"X25519", "notacurve"};
    auto a = HandshakeProfile::compile(curves);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(a.error().context(), "notacurve")) << a.error().message();

    ProfileSpec sigalgs = specFor("echo.default.svc");
    sigalgs.signatureAlgorithms = {"ECDSA+SHA256", "NOPE+SHA1"};
    auto b = HandshakeProfile::compile(sigalgs);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(b.error().context(), "NOPE+SHA1")) << b.error().message();
}

TEST_F(HandshakeProfileTest, NegotiatesWithinTheConfiguredSignatureAlgorithms) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.signatureAlgorithms = {"ecdsa_secp256r1_sha256"};
    auto c = handshake(spec, pki_.issueServer("echo.default.svc"));
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    int nid = 0;
    ASSERT_EQ(SSL_get_signature_nid(c.server.get(), &nid), 1);
    EXPECT_EQ(nid, NID_sha256);
}

// The server records what the client offered and picks h2 when it is there.
int selectH2(SSL* /*ssl*/, const unsigned char** out, unsigned char* outLen,
             const unsigned char* in, unsigned int inLen, void* arg) {
    auto* offered = static_cast<std::vector<std::string>*>(arg);
    for (unsigned int i = 0; i < inLen;) {
        const unsigned int len = in[i];
        offered->emplace_back(reinterpret_cast<const char*>(in + i + 1), len);
        i += 1 + len;
    }
    static const unsigned char kH2[] = {'h', '2'};
    for (unsigned int i = 0; i < inLen;) {
        if (in[i] == 2 && in[i + 1] == 'h' && in[i + 2] == '2') {
            *out = kH2;
            *outLen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + in[i];
    }
    return SSL_TLSEXT_ERR_NOACK;
}

TEST_F(HandshakeProfileTest, OffersAlpnProtocolsInOrder) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.alpnProtocols = {"h2", "http/1.1"};
    auto profile = compileOrThrow(spec);
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));
    std::vector<std::string> offered;
    SSL_CTX_set_alpn_select_cb(server.get(), selectH2, &offered);
    auto c = connect(*profile, server.get());
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    EXPECT_EQ(offered, (std::vector<std::string>{"h2", "http/1.1"}));
    const unsigned char* proto = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(c.client.get(), &proto, &len);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), len), "h2");
}

TEST_F(HandshakeProfileTest, RejectsAnEmptyOrOverlongAlpnProtocol) {
    for (const std::string& bad : {std::string(), std::string(256, 'a')}) {
        ProfileSpec spec = specFor("echo.default.svc");
        spec.alpnProtocols = {"h2", bad};
        auto profile = HandshakeProfile::compile(spec);
        ASSERT_FALSE(profile);
        EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
    }
}

// --- client certificate ---

// A server that requires a client certificate issued by `ca`.
SslCtxPtr requireClientCertificate(SslCtxPtr server, const TestPki& ca) {
    BioPtr bio(BIO_new_mem_buf(ca.caPem().data(), static_cast<int>(ca.caPem().size())));
    X509Ptr caCert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!caCert || X509_STORE_add_cert(SSL_CTX_get_cert_store(server.get()), caCert.get()) != 1) {
        throw std::runtime_error("server client-CA setup failed");
    }
    SSL_CTX_set_verify(server.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    return server;
}

TEST_F(HandshakeProfileTest, PresentsClientCertificateToAServerThatRequiresOne) {
    auto client = pki_.issueClient("gateway.lastmile");
    ProfileSpec spec = specFor("echo.default.svc");
    spec.clientCertificate = ClientCertificate{client.chainPem, client.keyPem};
    auto profile = compileOrThrow(spec);
    auto server =
        requireClientCertificate(makeServerContext(pki_.issueServer("echo.default.svc")), pki_);
    auto c = connect(*profile, server.get());
    ASSERT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    X509* peer = SSL_get0_peer_certificate(c.server.get());
    ASSERT_NE(peer, nullptr);
    char cn[128] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    EXPECT_STREQ(cn, "gateway.lastmile");
}

TEST_F(HandshakeProfileTest, WithoutClientCertificateAServerThatRequiresOneRefuses) {
    auto profile = compileOrThrow(specFor("echo.default.svc"));
    auto server =
        requireClientCertificate(makeServerContext(pki_.issueServer("echo.default.svc")), pki_);
    auto c = connect(*profile, server.get());
    EXPECT_EQ(c.serverState, -1);
}

TEST_F(HandshakeProfileTest, RejectsClientCertificateWithAnotherKey) {
    auto a = pki_.issueClient("a");
    auto b = pki_.issueClient("b");
    ProfileSpec spec = specFor("echo.default.svc");
    spec.clientCertificate = ClientCertificate{a.chainPem, b.keyPem};
    auto profile = HandshakeProfile::compile(spec);
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(profile.error().context(), "do not match")) << profile.error().message();
}

TEST_F(HandshakeProfileTest, RejectsUnreadableClientKey) {
    auto a = pki_.issueClient("a");
    ProfileSpec spec = specFor("echo.default.svc");
    spec.clientCertificate = ClientCertificate{a.chainPem, "not a key"};
    auto profile = HandshakeProfile::compile(spec);
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
}

// --- session resumption ---

struct ResumptionCase {
    TlsVersion version;
    const char* name;
};

class ResumptionTest : public HandshakeProfileTest,
                       public ::testing::WithParamInterface<ResumptionCase> {};

TEST_P(ResumptionTest, SecondConnectionResumesTheFirstSession) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.minVersion = spec.maxVersion = GetParam().version;
    auto profile = compileOrThrow(spec);
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));

    auto first = connect(*profile, server.get());
    ASSERT_TRUE(first.ok()) << verifyFailureReason(first.client.get());
    first.exchange();
    EXPECT_EQ(SSL_session_reused(first.client.get()), 0);

    auto second = connect(*profile, server.get());
    ASSERT_TRUE(second.ok()) << verifyFailureReason(second.client.get());
    EXPECT_EQ(SSL_session_reused(second.client.get()), 1);
}

// The kernel engine never reads the tickets that follow a handshake, and OpenSSL counts a
// TLS 1.3 session used up once a handshake resumed it: the cached session must survive.
TEST_P(ResumptionTest, ConnectionsThatNeverReadNewTicketsAllResumeTheCachedSession) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.minVersion = spec.maxVersion = GetParam().version;
    auto profile = compileOrThrow(spec);
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));

    auto first = connect(*profile, server.get());
    ASSERT_TRUE(first.ok());
    first.exchange();
    for (int i = 2; i <= 4; ++i) {
        auto next = connect(*profile, server.get());  // handshake only, freed mid-session
        ASSERT_TRUE(next.ok());
        EXPECT_EQ(SSL_session_reused(next.client.get()), 1) << "connection " << i;
    }
}

TEST_P(ResumptionTest, NothingIsResumedWhenResumptionIsOff) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.minVersion = spec.maxVersion = GetParam().version;
    spec.sessionResumption = false;
    auto profile = compileOrThrow(spec);
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));

    auto first = connect(*profile, server.get());
    ASSERT_TRUE(first.ok()) << verifyFailureReason(first.client.get());
    first.exchange();

    auto second = connect(*profile, server.get());
    ASSERT_TRUE(second.ok()) << verifyFailureReason(second.client.get());
    EXPECT_EQ(SSL_session_reused(second.client.get()), 0);
}

TEST_P(ResumptionTest, ANewProfileDoesNotResumeTheOldProfilesSession) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.minVersion = spec.maxVersion = GetParam().version;
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));

    auto first = connect(*compileOrThrow(spec), server.get());
    ASSERT_TRUE(first.ok());
    first.exchange();
    auto second = connect(*compileOrThrow(spec), server.get());
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(SSL_session_reused(second.client.get()), 0);
}

INSTANTIATE_TEST_SUITE_P(Versions, ResumptionTest,
                         ::testing::Values(ResumptionCase{TlsVersion::Tls12, "Tls12"},
                                           ResumptionCase{TlsVersion::Tls13, "Tls13"}),
                         [](const auto& p) { return std::string(p.param.name); });

// --- fail-closed, trust configuration, compile errors ---

TEST_F(HandshakeProfileTest, FailClosedProfileRefusesSessions) {
    auto profile = HandshakeProfile::failClosed(specFor("echo.default.svc"), "no valid CA");
    ASSERT_TRUE(profile->isFailClosed());
    EXPECT_EQ(profile->failClosedReason(), "no valid CA");
    auto session = profile->newSession();
    ASSERT_FALSE(session);
    EXPECT_EQ(session.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(session.error().context(), "no valid CA"));
}

TEST_F(HandshakeProfileTest, FailClosedWithoutAReasonStillHasOne) {
    auto profile = HandshakeProfile::failClosed(specFor("echo.default.svc"), "");
    EXPECT_TRUE(profile->isFailClosed());
    EXPECT_FALSE(profile->failClosedReason().empty());
}

TEST_F(HandshakeProfileTest, SpecWithFailClosedReasonCompilesToAFailClosedProfile) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.caBundlePem.clear();
    spec.failClosedReason = "InvalidCACertificateRef: ConfigMap default/ca not found";
    auto profile = HandshakeProfile::compile(spec);
    ASSERT_TRUE(profile) << profile.error().message();
    EXPECT_TRUE((*profile)->isFailClosed());
    EXPECT_EQ((*profile)->failClosedReason(), spec.failClosedReason);
    EXPECT_FALSE((*profile)->newSession());
}

TEST_F(HandshakeProfileTest, RejectsMalformedOrEmptyBundle) {
    const std::string garbled =
        "-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n";
    for (const std::string& bundle : {garbled, std::string(), std::string("no pem here\n")}) {
        ProfileSpec spec = specFor("echo.default.svc");
        spec.caBundlePem = bundle;
        auto profile = HandshakeProfile::compile(spec);
        ASSERT_FALSE(profile);
        EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
        EXPECT_TRUE(contains(profile.error().context(), "CA bundle")) << profile.error().message();
    }
}

TEST_F(HandshakeProfileTest, RejectsSpecWithoutAnyNameToVerify) {
    auto profile = HandshakeProfile::compile(specFor(""));
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
}

TEST_F(HandshakeProfileTest, DescribesTheTrustAnchorsOfTheBundle) {
    TestPki other;
    ProfileSpec spec = specFor("echo.default.svc");
    spec.caBundlePem = pki_.caPem() + other.caPem();
    auto profile = compileOrThrow(spec);
    ASSERT_EQ(profile->trustAnchors().size(), 2U);
    EXPECT_TRUE(contains(profile->trustAnchors()[0].subject, pki_.caName()));
    EXPECT_TRUE(contains(profile->trustAnchors()[1].subject, other.caName()));
    EXPECT_EQ(profile->spec(), spec);
}

bool systemStoreHasCertificates() {
    DIR* dir = ::opendir("/etc/ssl/certs");
    if (dir == nullptr) {
        return false;
    }
    bool found = false;
    while (dirent* e = ::readdir(dir)) {
        const std::string name = e->d_name;
        if (name.size() > 4 && (name.ends_with(".0") || name.ends_with(".pem"))) {
            found = true;
            break;
        }
    }
    ::closedir(dir);
    return found;
}

TEST_F(HandshakeProfileTest, SystemTrustCompilesAndDoesNotTrustTheTestCa) {
    if (!systemStoreHasCertificates()) {
        GTEST_SKIP() << "/etc/ssl/certs holds no certificates on this machine";
    }
    ProfileSpec spec = specFor("echo.default.svc");
    spec.caBundlePem.clear();
    spec.systemTrust = true;
    auto profile = compileOrThrow(spec);
    EXPECT_TRUE(profile->trustAnchors().empty());
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));
    auto c = connect(*profile, server.get());
    EXPECT_EQ(c.clientState, -1);
    EXPECT_TRUE(contains(verifyFailureReason(c.client.get()), "CA not trusted"));
}

// Points OpenSSL's default verify paths elsewhere for one test.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) {
            old_ = old;
        }
        ::setenv(name, value, 1);
    }
    ~ScopedEnv() {
        if (old_) {
            ::setenv(name_, old_->c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

TEST_F(HandshakeProfileTest, SystemTrustWithoutAnyStoreIsInvalid) {
    ScopedEnv file(X509_get_default_cert_file_env(), "/nonexistent/lastmile/cert.pem");
    ScopedEnv dir(X509_get_default_cert_dir_env(), "/nonexistent/lastmile/certs");
    ProfileSpec spec = specFor("echo.default.svc");
    spec.caBundlePem.clear();
    spec.systemTrust = true;
    auto profile = HandshakeProfile::compile(spec);
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(profile.error().context(), "no system trust store"))
        << profile.error().message();
}

TEST_F(HandshakeProfileTest, RejectsSystemTrustTogetherWithABundle) {
    ProfileSpec spec = specFor("echo.default.svc");
    spec.systemTrust = true;
    auto profile = HandshakeProfile::compile(spec);
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code(), make_error_code(Errc::Invalid));
}

TEST_F(HandshakeProfileTest, VerifyFailureReasonIsEmptyWithoutAHandshake) {
    auto profile = compileOrThrow(specFor("echo.default.svc"));
    auto session = profile->newSession();
    ASSERT_TRUE(session) << session.error().message();
    EXPECT_EQ(verifyFailureReason(session->get()), "");
    EXPECT_EQ(verifyFailureReason(nullptr), "");
}

TEST_F(HandshakeProfileTest, SessionOutlivingItsProfileStillCompletes) {
    auto profile = compileOrThrow(specFor("echo.default.svc"));
    auto server = makeServerContext(pki_.issueServer("echo.default.svc"));
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    Connection c;
    c.clientFd.reset(fds[0]);
    c.serverFd.reset(fds[1]);
    auto session = profile->newSession();
    ASSERT_TRUE(session);
    ASSERT_EQ(SSL_set_fd(session->get(), c.clientFd.get()), 1);
    c.client = std::move(*session);
    profile.reset();  // the SSL keeps the SSL_CTX and the verification state alive
    c.server.reset(SSL_new(server.get()));
    SSL_set_fd(c.server.get(), c.serverFd.get());
    SSL_set_accept_state(c.server.get());
    c.run();
    EXPECT_TRUE(c.ok()) << verifyFailureReason(c.client.get());
    c.exchange();
}

}  // namespace
}  // namespace lastmile::tls
