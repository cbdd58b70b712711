// SPDX-License-Identifier: Apache-2.0
// Tests for the allow-lists of TLS names a policy option may carry.
#include "dataplane/tls/option_names.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lastmile::tls {
namespace {

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// What the issue reported as Accepted, and the rest of OpenSSL's list syntax: each must be
// refused as a cipher suite name.
const std::vector<std::string> kHostileCipherEntries = {
    "ADH-AES256-GCM-SHA384@SECLEVEL=0", "aNULL@SECLEVEL=0", "ALL@SECLEVEL=0",
    "ECDHE-ECDSA-NULL-SHA@SECLEVEL=0", "eNULL@SECLEVEL=0", "ALL", "DEFAULT", "HIGH", "aNULL",
    "eNULL", "NULL", "COMPLEMENTOFALL", "COMPLEMENTOFDEFAULT", "@SECLEVEL=0",
    "!aNULL", "+aNULL", "-aNULL", "ECDHE-RSA-AES128-GCM-SHA256;ADH-AES128-SHA",
    "ECDHE-RSA-AES128-GCM-SHA256:ADH-AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256 ADH-AES128-SHA",
    "kRSA+AES", "ecdhe-rsa-aes128-gcm-sha256", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
    "",
};

TEST(OptionNamesTest, RefusesKeywordsDirectivesOperatorsAndSeparatorsAsCipherSuites) {
    for (const auto& entry : kHostileCipherEntries) {
        auto suite = allowedCipherSuite(entry);
        ASSERT_FALSE(suite) << entry;
        EXPECT_EQ(suite.error().code(), make_error_code(Errc::Invalid)) << entry;
    }
}

TEST(OptionNamesTest, RefusesSuitesWithoutServerAuthenticationByWhatTheyLack) {
    for (const char* name : {"ADH-AES256-GCM-SHA384", "AECDH-AES128-SHA", "ADH-AES128-SHA256",
                             "PSK-AES128-GCM-SHA256", "SRP-AES-128-CBC-SHA"}) {
        auto suite = allowedCipherSuite(name);
        ASSERT_FALSE(suite) << name;
        EXPECT_TRUE(contains(suite.error().context(), "does not authenticate the server"))
            << name << ": " << suite.error().context();
    }
}

TEST(OptionNamesTest, RefusesSuitesWithoutEncryptionByWhatTheyLack) {
    for (const char* name : {"ECDHE-ECDSA-NULL-SHA", "NULL-SHA256", "NULL-MD5", "AECDH-NULL-SHA",
                             "TLS_ECDHE_ECDSA_WITH_NULL_SHA", "TLS_RSA_WITH_NULL_SHA256"}) {
        auto suite = allowedCipherSuite(name);
        ASSERT_FALSE(suite) << name;
        EXPECT_TRUE(contains(suite.error().context(), "does not encrypt"))
            << name << ": " << suite.error().context();
    }
}

TEST(OptionNamesTest, AllowsAuthenticatedEncryptingSuitesInOpensslAndIanaForm) {
    struct Case {
        const char* name;
        const char* openssl;
        bool tls13;
    } cases[] = {
        {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", false},
        {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", false},
        {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305", false},
        {"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA256", false},
        {"TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", true},
        {"TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", true},
        {"TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", true},
        {"TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_SHA256", true},
    };
    for (const auto& c : cases) {
        auto suite = allowedCipherSuite(c.name);
        ASSERT_TRUE(suite) << c.name << ": " << suite.error().message();
        EXPECT_EQ(suite->opensslName, c.openssl);
        EXPECT_EQ(suite->tls13, c.tls13) << c.name;
    }
}

TEST(OptionNamesTest, RefusesUnknownTls13StyleNames) {
    for (const char* name : {"TLS_AES_512_GCM_SHA512", "TLS_FAKE_SUITE", "TLS_NULL_SHA256"}) {
        EXPECT_FALSE(allowedCipherSuite(name)) << name;
    }
}

TEST(OptionNamesTest, AllowsGroupNamesOpensslTakesAloneAndNothingElse) {
    for (const char* name : {"X25519", "P-256", "P-384", "secp384r1", "prime256v1", "ffdhe2048"}) {
        auto ok = allowedGroup(name);
        EXPECT_TRUE(ok) << name << ": " << ok.error().message();
    }
    for (const char* name : {"X25519:P-256", "X25519;P-256", "X25519 P-256", "-X25519", "?X25519",
                             "*X25519", "X25519/P-256", "DEFAULT", "notacurve", "", "P-256\n"}) {
        auto refused = allowedGroup(name);
        ASSERT_FALSE(refused) << name;
        EXPECT_EQ(refused.error().code(), make_error_code(Errc::Invalid)) << name;
    }
}

TEST(OptionNamesTest, AllowsTlsSignatureAlgorithmNamesButNotThePlusForm) {
    for (const char* name : {"ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256", "ed25519",
                             "rsa_pkcs1_sha256"}) {
        auto ok = allowedSignatureAlgorithm(name);
        EXPECT_TRUE(ok) << name << ": " << ok.error().message();
    }
    for (const char* name : {"RSA+SHA256", "ECDSA+SHA256", "rsa_pss_rsae_sha256:ed25519",
                             "ed25519;ed448", "-ed25519", "nope_sha1", "", "ed 25519"}) {
        auto refused = allowedSignatureAlgorithm(name);
        ASSERT_FALSE(refused) << name;
        EXPECT_EQ(refused.error().code(), make_error_code(Errc::Invalid)) << name;
    }
}

TEST(OptionNamesTest, AlpnProtocolIsOneToTwoHundredFiftyFivePrintableBytesWithoutCommaOrSpace) {
    for (const std::string& ok : {std::string("h2"), std::string("http/1.1"),
                                  std::string(255, 'a'), std::string("~!@#")}) {
        EXPECT_TRUE(allowedAlpnProtocol(ok)) << ok;
    }
    for (const std::string& bad :
         {std::string(), std::string(256, 'a'), std::string("h2,http/1.1"), std::string("h 2"),
          std::string("h2\n"), std::string("h2\0", 3), std::string("\xc3\xa9")}) {
        EXPECT_FALSE(allowedAlpnProtocol(bad)) << bad;
    }
}

TEST(OptionNamesTest, RefusedNamesQuotesEachRefusedEntryWithItsReasonInListOrder) {
    auto refused = refusedNames(NameKind::CipherSuite,
                                {"ECDHE-ECDSA-AES128-GCM-SHA256", "ALL@SECLEVEL=0",
                                 "TLS_AES_128_GCM_SHA256", "ADH-AES256-GCM-SHA384"});
    ASSERT_EQ(refused.size(), 2u);
    EXPECT_TRUE(contains(refused[0], "\"ALL@SECLEVEL=0\" ")) << refused[0];
    EXPECT_TRUE(contains(refused[1], "\"ADH-AES256-GCM-SHA384\" does not authenticate"))
        << refused[1];
    EXPECT_TRUE(refusedNames(NameKind::Group, {"X25519", "P-256"}).empty());
    EXPECT_EQ(refusedNames(NameKind::SignatureAlgorithm, {"RSA+SHA256"}).size(), 1u);
    EXPECT_EQ(refusedNames(NameKind::AlpnProtocol, {"h2", ""}).size(), 1u);
}

}  // namespace
}  // namespace lastmile::tls
