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
            EXPECT_NE(out.invalid[0].find("lastmile.dev/warm-pool=\"" + std::string(c.value) + "\""),
                      std::string::npos)
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
    EXPECT_NE(out.invalid[0].find("min-tls-version"), std::string::npos);
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
