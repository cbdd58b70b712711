// SPDX-License-Identifier: Apache-2.0
// Tests for inspectPemBundle over bundles from the in-memory test PKI.
#include "dataplane/tls/certificate_info.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <ctime>

#include <gtest/gtest.h>

#include "tests/support/test_pki.h"

namespace lastmile::tls {
namespace {

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// "YYYY-MM-DDTHH:MM:SSZ"
bool isRfc3339Utc(const std::string& s) {
    static const std::string kShape = "dddd-dd-ddTdd:dd:ddZ";
    if (s.size() != kShape.size()) {
        return false;
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool ok = kShape[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == kShape[i];
        if (!ok) {
            return false;
        }
    }
    return true;
}

// The fingerprint computed independently from the DER, for comparison.
std::string sha256Of(const std::string& pem) {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
        throw std::runtime_error("test certificate does not parse");
    }
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert.get(), &der);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdLen = 0;
    EVP_Digest(der, static_cast<std::size_t>(len), md, &mdLen, EVP_sha256(), nullptr);
    OPENSSL_free(der);
    std::string out;
    char hex[4];
    for (unsigned int i = 0; i < mdLen; ++i) {
        std::snprintf(hex, sizeof hex, i == 0 ? "%02X" : ":%02X", md[i]);
        out += hex;
    }
    return out;
}

class InspectPemBundleTest : public ::testing::Test {
protected:
    test::TestPki pki_;
};

TEST_F(InspectPemBundleTest, DescribesTheCaCertificate) {
    auto infos = inspectPemBundle(pki_.caPem());
    ASSERT_TRUE(infos) << infos.error().message();
    ASSERT_EQ(infos->size(), 1U);
    const CertificateInfo& ca = infos->front();
    EXPECT_EQ(ca.subject, "CN=" + pki_.caName() + ",O=lastmile");
    EXPECT_TRUE(isRfc3339Utc(ca.notAfter)) << ca.notAfter;
    EXPECT_EQ(ca.sha256, sha256Of(pki_.caPem()));
    EXPECT_TRUE(ca.dnsNames.empty());
    EXPECT_TRUE(ca.uris.empty());
}

TEST_F(InspectPemBundleTest, ListsDnsAndUriSubjectAltNames) {
    test::IssueOptions o;
    o.uris = {"spiffe://cluster.local/ns/default/sa/echo"};
    auto leaf = pki_.issueServer({"echo.default.svc", "*.example.com"}, o);
    auto infos = inspectPemBundle(leaf.certPem);
    ASSERT_TRUE(infos) << infos.error().message();
    ASSERT_EQ(infos->size(), 1U);
    EXPECT_EQ(infos->front().dnsNames,
              (std::vector<std::string>{"echo.default.svc", "*.example.com"}));
    EXPECT_EQ(infos->front().uris,
              (std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/echo"}));
    EXPECT_EQ(infos->front().subject, "CN=echo.default.svc,O=lastmile");
}

TEST_F(InspectPemBundleTest, FormatsNotAfterAsRfc3339Utc) {
    test::IssueOptions o;
    o.at = std::time_t{1800000000};  // 2027-01-15T08:00:00Z
    o.notBeforeOffset = std::chrono::seconds(0);
    o.notAfterOffset = std::chrono::seconds(3600);
    auto leaf = pki_.issueServer("echo.default.svc", o);
    auto infos = inspectPemBundle(leaf.certPem);
    ASSERT_TRUE(infos) << infos.error().message();
    EXPECT_EQ(infos->front().notAfter, "2027-01-15T09:00:00Z");
}

TEST_F(InspectPemBundleTest, KeepsBundleOrderAndSkipsNonCertificateBlocks) {
    test::TestPki other;
    auto leaf = pki_.issueServer("echo.default.svc");
    const std::string bundle = "comment line\n" + pki_.caPem() + leaf.keyPem + other.caPem();
    auto infos = inspectPemBundle(bundle);
    ASSERT_TRUE(infos) << infos.error().message();
    ASSERT_EQ(infos->size(), 2U);
    EXPECT_TRUE(contains((*infos)[0].subject, pki_.caName()));
    EXPECT_TRUE(contains((*infos)[1].subject, other.caName()));
}

TEST_F(InspectPemBundleTest, RejectsAnEmptyOrBlankBundle) {
    for (const std::string pem : {"", "  \n\t\n"}) {
        auto infos = inspectPemBundle(pem);
        ASSERT_FALSE(infos);
        EXPECT_EQ(infos.error().code(), make_error_code(Errc::Invalid));
        EXPECT_TRUE(contains(infos.error().context(), "no certificate")) << infos.error().message();
    }
}

TEST_F(InspectPemBundleTest, RejectsABundleWithoutCertificates) {
    auto leaf = pki_.issueServer("echo.default.svc");
    for (const std::string& pem : {std::string("just some text\n"), leaf.keyPem}) {
        auto infos = inspectPemBundle(pem);
        ASSERT_FALSE(infos);
        EXPECT_EQ(infos.error().code(), make_error_code(Errc::Invalid));
        EXPECT_TRUE(contains(infos.error().context(), "no certificate"));
    }
}

TEST_F(InspectPemBundleTest, NamesTheGarbledBlock) {
    const std::string garbled =
        "-----BEGIN CERTIFICATE-----\nnot*base64*at*all\n-----END CERTIFICATE-----\n";
    auto infos = inspectPemBundle(pki_.caPem() + garbled);
    ASSERT_FALSE(infos);
    EXPECT_EQ(infos.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(infos.error().context(), "block 2")) << infos.error().message();
}

TEST_F(InspectPemBundleTest, RejectsABlockThatIsValidBase64ButNotACertificate) {
    const std::string notDer =
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    auto infos = inspectPemBundle(notDer);
    ASSERT_FALSE(infos);
    EXPECT_EQ(infos.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(infos.error().context(), "block 1")) << infos.error().message();
}

TEST_F(InspectPemBundleTest, RejectsATruncatedBlock) {
    const std::string pem = pki_.caPem();
    auto infos = inspectPemBundle(pem.substr(0, pem.size() / 2));
    ASSERT_FALSE(infos);
    EXPECT_EQ(infos.error().code(), make_error_code(Errc::Invalid));
    EXPECT_TRUE(contains(infos.error().context(), "block 1")) << infos.error().message();
}

}  // namespace
}  // namespace lastmile::tls
