// SPDX-License-Identifier: Apache-2.0
// Tests for the kind registry: lookup by apiVersion/kind and by CLI resource names, schema shape.
#include "ctrl/api/kinds.h"

#include <functional>
#include <set>

#include <gtest/gtest.h>

namespace lastmile::ctrl {
namespace {

TEST(KindsTest, ServesEveryKindOnce) {
    std::set<std::string> names;
    for (const auto& k : allKinds()) {
        EXPECT_TRUE(names.insert(k.kind).second) << k.kind;
        EXPECT_TRUE(k.schema) << k.kind;
        EXPECT_FALSE(k.description.empty()) << k.kind;
    }
    EXPECT_EQ(names, (std::set<std::string>{"Gateway", "TCPRoute", "HTTPRoute", "Service",
                                            "EndpointSlice", "ConfigMap", "Secret",
                                            "BackendTLSPolicy"}));
}

TEST(KindsTest, FindsKindsByApiVersionAndKind) {
    const KindInfo* v1 = findKind("gateway.networking.k8s.io/v1", "BackendTLSPolicy");
    ASSERT_NE(v1, nullptr);
    EXPECT_EQ(findKind("gateway.networking.k8s.io/v1alpha3", "BackendTLSPolicy"), v1);
    EXPECT_EQ(v1->storageApiVersion(), "gateway.networking.k8s.io/v1");
    ASSERT_NE(findKind("v1", "Service"), nullptr);
    EXPECT_EQ(findKind("v1", "Service")->storageApiVersion(), "v1");
    EXPECT_NE(findKind("gateway.networking.k8s.io/v1alpha2", "TCPRoute"), nullptr);
    EXPECT_NE(findKind("discovery.k8s.io/v1", "EndpointSlice"), nullptr);
}

TEST(KindsTest, ServesNoUnknownVersionGroupOrKind) {
    EXPECT_EQ(findKind("gateway.networking.k8s.io/v1beta1", "BackendTLSPolicy"), nullptr);
    EXPECT_EQ(findKind("v1", "BackendTLSPolicy"), nullptr);
    EXPECT_EQ(findKind("example.com/v1", "Service"), nullptr);
    EXPECT_EQ(findKind("v1", "Pod"), nullptr);
    EXPECT_EQ(findKind("v1", "service"), nullptr);
}

TEST(KindsTest, FindsResourcesByEveryCliName) {
    const KindInfo* policy = findKind("gateway.networking.k8s.io/v1", "BackendTLSPolicy");
    for (const char* name : {"backendtlspolicies", "backendtlspolicy", "btlspolicy",
                             "BackendTLSPolicy", "BACKENDTLSPOLICIES",
                             "backendtlspolicies.gateway.networking.k8s.io",
                             "backendtlspolicies.v1alpha3.gateway.networking.k8s.io"}) {
        EXPECT_EQ(findResource(name), policy) << name;
    }
    EXPECT_EQ(findResource("svc"), findKind("v1", "Service"));
    EXPECT_EQ(findResource("cm"), findKind("v1", "ConfigMap"));
    EXPECT_EQ(findResource("gtw"), findKind("gateway.networking.k8s.io/v1", "Gateway"));
    EXPECT_EQ(findResource("endpointslices"), findKind("discovery.k8s.io/v1", "EndpointSlice"));
    EXPECT_EQ(findResource("pods"), nullptr);
    EXPECT_EQ(findResource("services.example.com"), nullptr);
}

void forEachField(const schema::Node& node, const std::string& path,
                  const std::function<void(const std::string&, const schema::Node&)>& visit) {
    for (const auto& f : node.fields) {
        std::string p = path.empty() ? f.name : path + "." + f.name;
        visit(p, *f.node);
        const schema::Node* next = f.node.get();
        while (next && (next->type == schema::Type::Array || next->type == schema::Type::Map) &&
               next->items) {
            next = next->items.get();
        }
        if (next) {
            forEachField(*next, p, visit);
        }
    }
}

TEST(KindsTest, DescribesEveryField) {
    for (const auto& k : allKinds()) {
        forEachField(*k.schema, "", [&](const std::string& path, const schema::Node& node) {
            EXPECT_FALSE(node.description.empty()) << k.kind << " " << path;
        });
    }
}

TEST(KindsTest, BoundsEveryPatternedString) {
    // Patterns are evaluated with std::regex, whose recursion grows with the input length.
    for (const auto& k : allKinds()) {
        forEachField(*k.schema, "", [&](const std::string& path, const schema::Node& node) {
            if (node.pattern) {
                EXPECT_TRUE(node.maxLength.has_value()) << k.kind << " " << path;
            }
        });
    }
}

TEST(KindsTest, NamesTypesLikeKubectl) {
    const KindInfo* policy = findResource("backendtlspolicies");
    ASSERT_NE(policy, nullptr);
    const auto* spec = policy->schema->field("spec");
    ASSERT_NE(spec, nullptr);
    EXPECT_EQ(schema::typeName(*spec->node), "Object");
    EXPECT_EQ(schema::typeName(*spec->node->field("targetRefs")->node), "[]Object");
    EXPECT_EQ(schema::typeName(*spec->node->field("options")->node), "map[string]string");
    const auto* ports = findResource("svc")->schema->field("spec")->node->field("ports");
    EXPECT_EQ(schema::typeName(*ports->node->items->field("targetPort")->node), "IntOrString");
    EXPECT_EQ(schema::typeName(*ports->node->items->field("port")->node), "integer");
}

}  // namespace
}  // namespace lastmile::ctrl
