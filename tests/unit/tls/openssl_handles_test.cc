// SPDX-License-Identifier: Apache-2.0
// Tests for the OpenSSL error category and sslFail().
#include "dataplane/tls/openssl_handles.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <gtest/gtest.h>

namespace lastmile::tls {
namespace {

TEST(SslFailTest, TakesTheFirstQueuedErrorAndDrainsTheQueue) {
    ERR_clear_error();
    static const char kGarbage[] = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
    BioPtr bio(BIO_new_mem_buf(kGarbage, -1));
    ASSERT_TRUE(bio);
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    ASSERT_FALSE(cert);
    const unsigned long first = ERR_peek_error();
    ASSERT_NE(first, 0UL);

    Error e = sslFail("reading a certificate").error;
    EXPECT_EQ(&e.code().category(), &opensslCategory());
    EXPECT_EQ(static_cast<unsigned long>(static_cast<unsigned int>(e.code().value())), first);
    EXPECT_EQ(e.context().rfind("reading a certificate", 0), 0U);
    EXPECT_FALSE(e.code().message().empty());
    EXPECT_EQ(ERR_peek_error(), 0UL);
}

TEST(SslFailTest, ReportsAnInternalErrorWhenOpensslQueuedNothing) {
    ERR_clear_error();
    Error e = sslFail("doing nothing").error;
    EXPECT_EQ(e.code(), make_error_code(Errc::Internal));
    EXPECT_NE(e.context().find("doing nothing"), std::string::npos);
}

TEST(OpensslCategoryTest, IsNamedOpenssl) {
    EXPECT_STREQ(opensslCategory().name(), "openssl");
}

}  // namespace
}  // namespace lastmile::tls
