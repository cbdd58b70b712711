// SPDX-License-Identifier: Apache-2.0
// Tests for explain: kubectl-shaped output of kinds and fields, recursive trees, unknown fields.
#include "ctrl/api/explain.h"

#include <gtest/gtest.h>

namespace lastmile::ctrl {
namespace {

const KindInfo& policy() {
    const KindInfo* k = findResource("backendtlspolicies");
    if (!k) {
        throw std::runtime_error("BackendTLSPolicy is not served");
    }
    return *k;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

TEST(ExplainTest, ExplainsAKindWithItsTopLevelFields) {
    auto out = explain(policy(), "", false);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_EQ(out->rfind("KIND:     BackendTLSPolicy\nVERSION:  gateway.networking.k8s.io/v1\n", 0), 0u)
        << *out;
    EXPECT_TRUE(contains(*out, "DESCRIPTION:\n     BackendTLSPolicy configures")) << *out;
    EXPECT_TRUE(contains(*out, "FIELDS:\n   apiVersion\t<string>\n")) << *out;
    EXPECT_TRUE(contains(*out, "   spec\t<Object> -required-\n")) << *out;
    EXPECT_TRUE(contains(*out, "   metadata\t<Object>\n")) << *out;
}

TEST(ExplainTest, ExplainsANestedFieldWithItsType) {
    auto out = explain(policy(), "spec.validation", false);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_TRUE(contains(*out, "FIELD:    validation <Object>\n")) << *out;
    EXPECT_TRUE(contains(*out, "   hostname\t<string> -required-\n")) << *out;
    EXPECT_TRUE(contains(*out, "   caCertificateRefs\t<[]Object>\n")) << *out;
    EXPECT_TRUE(contains(*out, "   wellKnownCACertificates\t<string>\n")) << *out;
}

TEST(ExplainTest, ExplainsALeafField) {
    auto out = explain(policy(), "spec.validation.hostname", false);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_TRUE(contains(*out, "FIELD:    hostname <string>\n")) << *out;
    EXPECT_TRUE(contains(*out, "SNI")) << *out;
    EXPECT_FALSE(contains(*out, "FIELDS:")) << *out;
}

TEST(ExplainTest, DescendsThroughArrays) {
    auto out = explain(policy(), "spec.targetRefs.sectionName", false);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_TRUE(contains(*out, "FIELD:    sectionName <string>")) << *out;
}

TEST(ExplainTest, ListsEnumValues) {
    auto out = explain(policy(), "spec.validation.subjectAltNames.type", false);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_TRUE(contains(*out, "\"Hostname\", \"URI\"")) << *out;
}

TEST(ExplainTest, ToleratesTheResourceNameInThePath) {
    auto out = explain(policy(), "backendtlspolicies.spec", false);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_TRUE(contains(*out, "FIELD:    spec <Object>")) << *out;
}

TEST(ExplainTest, RecursiveOutputContainsEveryPolicyField) {
    auto out = explain(policy(), "", true);
    ASSERT_TRUE(out) << out.error().message();
    for (const char* line : {
             "   apiVersion\t<string>\n",
             "   kind\t<string>\n",
             "   metadata\t<Object>\n",
             "      name\t<string> -required-\n",
             "      namespace\t<string>\n",
             "      labels\t<map[string]string>\n",
             "      annotations\t<map[string]string>\n",
             "   spec\t<Object> -required-\n",
             "      targetRefs\t<[]Object> -required-\n",
             "         group\t<string> -required-\n",
             "         kind\t<string> -required-\n",
             "         name\t<string> -required-\n",
             "         sectionName\t<string>\n",
             "      validation\t<Object> -required-\n",
             "         caCertificateRefs\t<[]Object>\n",
             "         wellKnownCACertificates\t<string>\n",
             "         hostname\t<string> -required-\n",
             "         subjectAltNames\t<[]Object>\n",
             "            type\t<string> -required-\n",
             "            hostname\t<string>\n",
             "            uri\t<string>\n",
             "      options\t<map[string]string>\n",
             "   status\t<Object>\n",
             "      ancestors\t<[]Object> -required-\n",
             "         ancestorRef\t<Object> -required-\n",
             "         controllerName\t<string> -required-\n",
             "         conditions\t<[]Object>\n",
         }) {
        EXPECT_TRUE(contains(*out, line)) << "missing " << line << " in\n" << *out;
    }
}

TEST(ExplainTest, RecursiveOutputOfAFieldShowsOnlyItsSubtree) {
    auto out = explain(policy(), "spec.validation", true);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_TRUE(contains(*out, "   subjectAltNames\t<[]Object>\n      type\t<string> -required-\n")) << *out;
    EXPECT_FALSE(contains(*out, "targetRefs")) << *out;
}

TEST(ExplainTest, ExplainsEveryKind) {
    for (const auto& k : allKinds()) {
        auto out = explain(k, "", true);
        ASSERT_TRUE(out) << k.kind << ": " << out.error().message();
        EXPECT_TRUE(contains(*out, "KIND:     " + k.kind + "\n")) << *out;
    }
    auto svc = explain(*findResource("svc"), "spec.ports.targetPort", false);
    ASSERT_TRUE(svc) << svc.error().message();
    EXPECT_TRUE(contains(*svc, "VERSION:  v1\n")) << *svc;
    EXPECT_TRUE(contains(*svc, "FIELD:    targetPort <IntOrString>")) << *svc;
}

TEST(ExplainTest, UnknownFieldIsNotFoundAndNamesTheField) {
    auto out = explain(policy(), "spec.validation.sni", false);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code(), make_error_code(Errc::NotFound));
    EXPECT_TRUE(contains(out.error().context(), "\"sni\"")) << out.error().context();
    EXPECT_FALSE(explain(policy(), "spec..validation", false));
    EXPECT_FALSE(explain(policy(), "spec.validation.hostname.x", false));
}

}  // namespace
}  // namespace lastmile::ctrl
