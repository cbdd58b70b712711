// SPDX-License-Identifier: Apache-2.0
// Tests for lastmile.dev/ option parsing (spec section 5).
#include "ctrl/reconcile/policy_options.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace lastmile::ctrl {
namespace {

OptionsOutcome apply(const char* json, tls::ProfileSpec& spec) {
    return applyPolicyOptions(Json::parse(json), spec);
}

TEST(PolicyOptionsTest, AppliesEveryKnownKey) {
    tls::ProfileSpec spec;
    auto out = apply(R"({
        "lastmile.dev/min-tls-version": "1.3",
        "lastmile.dev/max-tls-version": "1.3",
        "lastmile.dev/cipher-suites": "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384",
        "lastmile.dev/ecdh-curves": "X25519,P-256",
        "lastmile.dev/signature-algorithms": "ecdsa_secp256r1_sha256",
        "lastmile.dev/alpn-protocols": " h2 , http/1.1",
        "lastmile.dev/session-resumption": "false",
        "lastmile.dev/offload": "kernel",
        "lastmile.dev/warm-pool": "8"
    })",
                     spec);
    EXPECT_TRUE(out.invalid.empty());
    EXPECT_TRUE(out.ignored.empty());
    EXPECT_EQ(spec.minVersion, tls::TlsVersion::Tls13);
    EXPECT_EQ(spec.maxVersion, tls::TlsVersion::Tls13);
    EXPECT_EQ(spec.cipherSuites,
              (std::vector<std::string>{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}));
    EXPECT_EQ(spec.ecdhCurves, (std::vector<std::string>{"X25519", "P-256"}));
    EXPECT_EQ(spec.signatureAlgorithms, (std::vector<std::string>{"ecdsa_secp256r1_sha256"}));
    EXPECT_EQ(spec.alpnProtocols, (std::vector<std::string>{"h2", "http/1.1"}));
    EXPECT_FALSE(spec.sessionResumption);
    EXPECT_EQ(spec.offload, tls::Offload::Kernel);
    EXPECT_EQ(spec.warmPool, 8U);
}

TEST(PolicyOptionsTest, WarmPoolTakesZeroToSixtyFour) {
    struct Case {
        const char* value;
        std::optional<std::uint32_t> want;  // nullopt: invalid
    } cases[] = {
        {"0", 0U},          {"64", 64U},       {" 4 ", 4U},         {"65", std::nullopt},
        {"-1", std::nullopt}, {"+4", std::nullopt}, {"4x", std::nullopt}, {"", std::nullopt},
        {"1.5", std::nullopt}, {"99999999999", std::nullopt}, {"four", std::nullopt},
    };
    for (const auto& c : cases) {
        tls::ProfileSpec spec;
        Json options = Json::object();
        options["lastmile.dev/warm-pool"] = c.value;
        auto out = applyPolicyOptions(options, spec);
        if (c.want) {
            EXPECT_TRUE(out.invalid.empty()) << c.value;
            EXPECT_EQ(spec.warmPool, *c.want) << c.value;
        } else {
            ASSERT_EQ(out.invalid.size(), 1u) << c.value;
            EXPECT_EQ(out.invalid[0].rfind("spec.options[lastmile.dev/warm-pool]: \"" +
                                               std::string(c.value) + "\"",
                                           0),
                      0u)
                << out.invalid[0];
            EXPECT_EQ(spec.warmPool, 0U) << c.value;
        }
    }
}

TEST(PolicyOptionsTest, WarmPoolIsPartOfTheSpecsIdentity) {
    tls::ProfileSpec a;
    tls::ProfileSpec b;
    b.warmPool = 2;
    EXPECT_NE(a, b);
}

TEST(PolicyOptionsTest, NullOptionsKeepDefaults) {
    tls::ProfileSpec spec;
    auto out = applyPolicyOptions(Json(), spec);
    EXPECT_TRUE(out.invalid.empty());
    EXPECT_EQ(spec, tls::ProfileSpec{});
}

TEST(PolicyOptionsTest, RejectsUnprefixedKeyNamingIt) {
    tls::ProfileSpec spec;
    auto out = apply(R"({"min-tls-version": "1.3"})", spec);
    ASSERT_EQ(out.invalid.size(), 1u);
    EXPECT_EQ(out.invalid[0].rfind("spec.options[min-tls-version]: ", 0), 0u) << out.invalid[0];
}

TEST(PolicyOptionsTest, RejectsUnknownLastmileKeyNamingKeyAndValue) {
    tls::ProfileSpec spec;
    auto out = apply(R"({"lastmile.dev/turbo": "yes"})", spec);
    ASSERT_EQ(out.invalid.size(), 1u);
    EXPECT_NE(out.invalid[0].find("lastmile.dev/turbo"), std::string::npos);
    EXPECT_NE(out.invalid[0].find("yes"), std::string::npos);
}

TEST(PolicyOptionsTest, RejectsBadValuesOfKnownKeys) {
    const char* cases[] = {
        R"({"lastmile.dev/min-tls-version": "1.1"})",
        R"({"lastmile.dev/max-tls-version": "tls13"})",
        R"({"lastmile.dev/cipher-suites": "A,,B"})",
        R"({"lastmile.dev/alpn-protocols": ""})",
        R"({"lastmile.dev/session-resumption": "yes"})",
        R"({"lastmile.dev/offload": "gpu"})",
        R"({"lastmile.dev/min-tls-version": "1.3", "lastmile.dev/max-tls-version": "1.2"})",
    };
    for (const char* c : cases) {
        tls::ProfileSpec spec;
        auto out = apply(c, spec);
        EXPECT_EQ(out.invalid.size(), 1u) << c;
    }
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// Security issue item 1: each of these reached OpenSSL's cipher-list parser and was Accepted;
// several enable suites without a certificate or without encryption.
TEST(PolicyOptionsTest, RefusesCipherListSyntaxNamingTheFieldPathAndTheEntry) {
    const char* hostile[] = {
        "ADH-AES256-GCM-SHA384@SECLEVEL=0", "aNULL@SECLEVEL=0", "ALL@SECLEVEL=0",
        "ECDHE-ECDSA-NULL-SHA@SECLEVEL=0", "eNULL@SECLEVEL=0",
        "ECDHE-ECDSA-AES128-GCM-SHA256;ADH-AES128-SHA", "ECDHE-ECDSA-AES128-GCM-SHA256:eNULL",
        "ALL", "DEFAULT", "HIGH", "aNULL", "eNULL", "COMPLEMENTOFALL", "!aNULL", "+aNULL",
        "-ALL", "@SECLEVEL=0", "ECDHE-ECDSA-AES128-GCM-SHA256 ADH-AES128-SHA",
    };
    for (const char* entry : hostile) {
        for (const std::string& value :
             {std::string(entry), "TLS_AES_128_GCM_SHA256, " + std::string(entry)}) {
            tls::ProfileSpec spec;
            Json options = Json::object();
            options["lastmile.dev/cipher-suites"] = value;
            auto out = applyPolicyOptions(options, spec);
            ASSERT_EQ(out.invalid.size(), 1u) << value;
            EXPECT_EQ(out.invalid[0].rfind("spec.options[lastmile.dev/cipher-suites]: ", 0), 0u)
                << out.invalid[0];
            EXPECT_TRUE(contains(out.invalid[0], "\"" + std::string(entry) + "\""))
                << out.invalid[0];
            EXPECT_FALSE(contains(out.invalid[0], "TLS_AES_128_GCM_SHA256")) << out.invalid[0];
            EXPECT_TRUE(spec.cipherSuites.empty()) << value;
        }
    }
}

TEST(PolicyOptionsTest, RefusesSuitesWithoutAuthenticationOrEncryptionByNameAndReason) {
    tls::ProfileSpec spec;
    Json options = Json::object();
    options["lastmile.dev/cipher-suites"] =
        "ECDHE-ECDSA-AES128-GCM-SHA256, ADH-AES256-GCM-SHA384, TLS_AES_128_GCM_SHA256, "
        "ECDHE-ECDSA-NULL-SHA, TLS_RSA_WITH_NULL_SHA256, PSK-AES128-GCM-SHA256";
    auto out = applyPolicyOptions(options, spec);
    ASSERT_EQ(out.invalid.size(), 1u);
    const std::string& m = out.invalid[0];
    EXPECT_TRUE(contains(m, "\"ADH-AES256-GCM-SHA384\" does not authenticate the server")) << m;
    EXPECT_TRUE(contains(m, "\"PSK-AES128-GCM-SHA256\" does not authenticate the server")) << m;
    EXPECT_TRUE(contains(m, "\"ECDHE-ECDSA-NULL-SHA\" does not encrypt")) << m;
    EXPECT_TRUE(contains(m, "\"TLS_RSA_WITH_NULL_SHA256\" does not encrypt")) << m;
    EXPECT_TRUE(spec.cipherSuites.empty());
}

TEST(PolicyOptionsTest, AcceptsExactSuiteNamesInOpensslAndIanaForm) {
    tls::ProfileSpec spec;
    Json options = Json::object();
    options["lastmile.dev/cipher-suites"] =
        "ECDHE-ECDSA-AES128-GCM-SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_AES_256_GCM_SHA384";
    auto out = applyPolicyOptions(options, spec);
    EXPECT_TRUE(out.invalid.empty()) << out.invalid[0];
    EXPECT_EQ(spec.cipherSuites,
              (std::vector<std::string>{"ECDHE-ECDSA-AES128-GCM-SHA256",
                                        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                                        "TLS_AES_256_GCM_SHA384"}));
}

TEST(PolicyOptionsTest, CurvesSignatureAlgorithmsAndAlpnTakeExactNamesOnly) {
    struct Case {
        const char* key;
        const char* value;
        const char* refused;  // nullptr: accepted
    } cases[] = {
        {"lastmile.dev/ecdh-curves", "X25519, P-256, secp384r1, ffdhe2048", nullptr},
        {"lastmile.dev/ecdh-curves", "X25519:P-256", "X25519:P-256"},
        {"lastmile.dev/ecdh-curves", "X25519;P-256", "X25519;P-256"},
        {"lastmile.dev/ecdh-curves", "X25519, -P-256", "-P-256"},
        {"lastmile.dev/ecdh-curves", "X25519, notacurve", "notacurve"},
        {"lastmile.dev/signature-algorithms", "ecdsa_secp256r1_sha256,rsa_pss_rsae_sha256,ed25519",
         nullptr},
        {"lastmile.dev/signature-algorithms", "RSA+SHA256", "RSA+SHA256"},
        {"lastmile.dev/signature-algorithms", "ed25519:ed448", "ed25519:ed448"},
        {"lastmile.dev/signature-algorithms", "ed25519, nope_sha1", "nope_sha1"},
        {"lastmile.dev/alpn-protocols", "h2, http/1.1", nullptr},
        {"lastmile.dev/alpn-protocols", "h2, h 2", "h 2"},
        {"lastmile.dev/alpn-protocols", "h2;http/1.1", nullptr},  // one odd but printable name
    };
    for (const auto& c : cases) {
        tls::ProfileSpec spec;
        Json options = Json::object();
        options[c.key] = c.value;
        auto out = applyPolicyOptions(options, spec);
        if (c.refused == nullptr) {
            EXPECT_TRUE(out.invalid.empty()) << c.value << ": " << out.invalid[0];
            continue;
        }
        ASSERT_EQ(out.invalid.size(), 1u) << c.value;
        EXPECT_EQ(out.invalid[0].rfind("spec.options[" + std::string(c.key) + "]: ", 0), 0u)
            << out.invalid[0];
        EXPECT_TRUE(contains(out.invalid[0], "\"" + std::string(c.refused) + "\""))
            << out.invalid[0];
        EXPECT_EQ(spec, tls::ProfileSpec{}) << c.value;
    }
}

// Spaces around a value or a list entry are dropped for every option; inside, values are exact.
TEST(PolicyOptionsTest, EveryOptionToleratesSurroundingSpacesAndNothingElse) {
    struct Case {
        const char* key;
        const char* value;
        bool valid;
    } cases[] = {
        {"lastmile.dev/min-tls-version", " 1.3 ", true},
        {"lastmile.dev/min-tls-version", "1.3;", false},
        {"lastmile.dev/min-tls-version", "TLSv1.3", false},
        {"lastmile.dev/max-tls-version", "1.2\t", true},
        {"lastmile.dev/max-tls-version", "1 .2", false},
        {"lastmile.dev/session-resumption", " false", true},
        {"lastmile.dev/session-resumption", "False", false},
        {"lastmile.dev/session-resumption", "false,true", false},
        {"lastmile.dev/offload", "userspace ", true},
        {"lastmile.dev/offload", "user space", false},
        {"lastmile.dev/offload", "kernel,nic", false},
        {"lastmile.dev/warm-pool", " 4 ", true},
        {"lastmile.dev/warm-pool", "4 4", false},
        {"lastmile.dev/cipher-suites", " TLS_AES_128_GCM_SHA256 ", true},
        {"lastmile.dev/cipher-suites", "TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384", false},
        {"lastmile.dev/ecdh-curves", " X25519 , P-256 ", true},
        {"lastmile.dev/ecdh-curves", "X 25519", false},
    };
    for (const auto& c : cases) {
        tls::ProfileSpec spec;
        Json options = Json::object();
        options[c.key] = c.value;
        auto out = applyPolicyOptions(options, spec);
        EXPECT_EQ(out.invalid.empty(), c.valid) << c.key << "=" << c.value;
        if (!c.valid && !out.invalid.empty()) {
            EXPECT_EQ(out.invalid[0].rfind("spec.options[" + std::string(c.key) + "]: ", 0), 0u)
                << out.invalid[0];
        }
    }
}

// Section 5 lists every lastmile.dev/ key; any other one is unknown, even if it looks plausible.
TEST(PolicyOptionsTest, RejectsLastmileKeysTheContractDoesNotList) {
    for (const char* c : {R"({"lastmile.dev/warm-pools": "4"})", R"({"lastmile.dev/": "x"})"}) {
        tls::ProfileSpec spec;
        auto out = apply(c, spec);
        ASSERT_EQ(out.invalid.size(), 1u) << c;
        EXPECT_NE(out.invalid[0].find("lastmile.dev/"), std::string::npos) << c;
        EXPECT_TRUE(out.ignored.empty()) << c;
    }
}

// A key is only "of another domain" when it has one: an empty or malformed prefix (including
// a differently-cased lastmile.dev, which would otherwise silently drop a security setting)
// is un-prefixed, hence Invalid.
TEST(PolicyOptionsTest, RejectsKeysWithoutAValidDomainPrefix) {
    for (const char* c :
         {R"({"/min-tls-version": "1.3"})", R"({"Lastmile.dev/min-tls-version": "1.3"})",
          R"({"exa mple.com/x": "1"})", R"({"example.com/": "1"})"}) {
        tls::ProfileSpec spec;
        auto out = apply(c, spec);
        EXPECT_EQ(out.invalid.size(), 1u) << c;
        EXPECT_TRUE(out.ignored.empty()) << c;
    }
}

TEST(PolicyOptionsTest, NonStringValueWithInvalidUtf8DoesNotThrow) {
    Json options = Json::object();
    options["lastmile.dev/offload"] = Json::array({std::string("\xff\xfe")});
    tls::ProfileSpec spec;
    OptionsOutcome out;
    EXPECT_NO_THROW(out = applyPolicyOptions(options, spec));
    EXPECT_EQ(out.invalid.size(), 1u);
}

TEST(PolicyOptionsTest, IgnoresKeysOfOtherDomainsAndListsThem) {
    tls::ProfileSpec spec;
    auto out = apply(R"({"example.com/foo": "bar", "other.io/x": "1"})", spec);
    EXPECT_TRUE(out.invalid.empty());
    EXPECT_EQ(out.ignored, (std::vector<std::string>{"example.com/foo", "other.io/x"}));
    EXPECT_EQ(spec, tls::ProfileSpec{});
}

}  // namespace
}  // namespace lastmile::ctrl
