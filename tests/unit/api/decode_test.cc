// SPDX-License-Identifier: Apache-2.0
// Tests for manifest decoding (YAML 1.2 core schema, positions, Lists) and YAML rendering.
#include "ctrl/api/decode.h"

#include <gtest/gtest.h>

namespace lastmile::ctrl {
namespace {

Json decodeOne(const std::string& text) {
    auto docs = decodeManifests(text, "t.yaml");
    if (!docs) {
        throw std::runtime_error(docs.error().message());
    }
    if (docs->size() != 1) {
        throw std::runtime_error("expected one document");
    }
    return (*docs)[0].object;
}

std::string errorOf(const std::string& text) {
    auto docs = decodeManifests(text, "in.yaml");
    if (docs) {
        return "<no error>";
    }
    EXPECT_EQ(docs.error().code(), make_error_code(Errc::Invalid));
    return docs.error().context();
}

TEST(DecodeTest, ResolvesPlainScalarsByTheCoreSchema) {
    Json o = decodeOne(R"(
int: 80
neg: -3
hex: 0x1F
oct: 0o17
float: 1.5
exp: 1e3
t: true
f: False
n1: null
n2: ~
n3:
str: hello
ver: 1.2.3
yes: yes
on: on
)");
    EXPECT_EQ(o["int"], 80);
    EXPECT_TRUE(o["int"].is_number_integer());
    EXPECT_EQ(o["neg"], -3);
    EXPECT_EQ(o["hex"], 31);
    EXPECT_EQ(o["oct"], 15);
    EXPECT_TRUE(o["float"].is_number_float());
    EXPECT_DOUBLE_EQ(o["float"].get<double>(), 1.5);
    EXPECT_DOUBLE_EQ(o["exp"].get<double>(), 1000.0);
    EXPECT_EQ(o["t"], true);
    EXPECT_EQ(o["f"], false);
    EXPECT_TRUE(o["n1"].is_null());
    EXPECT_TRUE(o["n2"].is_null());
    EXPECT_TRUE(o["n3"].is_null());
    EXPECT_EQ(o["str"], "hello");
    EXPECT_EQ(o["ver"], "1.2.3");
    // YAML 1.1 booleans are strings under the 1.2 core schema.
    EXPECT_EQ(o["yes"], "yes");
    EXPECT_EQ(o["on"], "on");
}

TEST(DecodeTest, KeepsTheMagnitudeOfIntegersBeyondSixtyFourBits) {
    Json o = decodeOne(R"(
dec: 100000000000000000000
hex: 0x100000000000000000
oct: 0o4000000000000000000000
)");
    ASSERT_TRUE(o["oct"].is_number_float()) << o.dump();
    EXPECT_DOUBLE_EQ(o["dec"].get<double>(), 1e20);
    EXPECT_DOUBLE_EQ(o["hex"].get<double>(), 0x1p68);
    EXPECT_DOUBLE_EQ(o["oct"].get<double>(), 0x1p65);
}

TEST(DecodeTest, KeepsQuotedScalarsAsStrings) {
    Json o = decodeOne("a: \"80\"\nb: 'true'\nc: \"\"\nd: !!str 12\ne: !!int \"7\"\n");
    EXPECT_EQ(o["a"], "80");
    EXPECT_EQ(o["b"], "true");
    EXPECT_EQ(o["c"], "");
    EXPECT_EQ(o["d"], "12");
    EXPECT_EQ(o["e"], 7);
}

TEST(DecodeTest, DecodesEveryDocumentWithItsStartLine) {
    auto docs = decodeManifests("a: 1\n---\n---\n# comment\nb: 2\n...\n", "x");
    ASSERT_TRUE(docs) << docs.error().message();
    ASSERT_EQ(docs->size(), 2u);
    EXPECT_EQ((*docs)[0].object["a"], 1);
    EXPECT_EQ((*docs)[0].line, 1);
    EXPECT_EQ((*docs)[1].object["b"], 2);
    EXPECT_EQ((*docs)[1].line, 5);
}

TEST(DecodeTest, DecodesJson) {
    Json o = decodeOne(R"({"apiVersion": "v1", "kind": "Service", "n": 8, "s": "8", "l": [1, true]})");
    EXPECT_EQ(o["n"], 8);
    EXPECT_EQ(o["s"], "8");
    EXPECT_EQ(o["l"], Json::array({1, true}));
}

TEST(DecodeTest, FlattensLists) {
    auto docs = decodeManifests(R"(apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: b}
)",
                                "x");
    ASSERT_TRUE(docs) << docs.error().message();
    ASSERT_EQ(docs->size(), 2u);
    EXPECT_EQ((*docs)[0].object["metadata"]["name"], "a");
    EXPECT_EQ((*docs)[1].object["metadata"]["name"], "b");
    EXPECT_EQ((*docs)[1].line, 7);
}

TEST(DecodeTest, KeepsFieldOrder) {
    Json o = decodeOne("z: 1\na: 2\nm: 3\n");
    std::vector<std::string> keys;
    for (const auto& [k, v] : o.items()) {
        keys.push_back(k);
    }
    EXPECT_EQ(keys, (std::vector<std::string>{"z", "a", "m"}));
}

TEST(DecodeTest, ReportsMalformedYamlWithLineAndColumn) {
    std::string e = errorOf("a: 1\nb: [1, 2\nc: 3\n");
    EXPECT_EQ(e.rfind("in.yaml:", 0), 0u) << e;
    EXPECT_NE(e.find("in.yaml:3:"), std::string::npos) << e;
}

// yaml-cpp ends an unterminated quoted scalar at the end of input instead of failing; the
// decoder must not turn `hostname: "backend` into the string "backend ".
TEST(DecodeTest, RejectsAnUnterminatedQuotedScalarAtItsPosition) {
    std::string e = errorOf("a: 1\nb: \"unterminated\n");
    EXPECT_NE(e.find("in.yaml:2:4: "), std::string::npos) << e;
    e = errorOf("a: 'it''s\n");
    EXPECT_NE(e.find("in.yaml:1:4: "), std::string::npos) << e;
    e = errorOf("a: \"x\\\"\n");
    EXPECT_NE(e.find("in.yaml:1:4: "), std::string::npos) << e;
    e = errorOf("\xef\xbb\xbf" "a: \"x\n");
    EXPECT_NE(e.find("in.yaml:1:4: "), std::string::npos) << e;
}

TEST(DecodeTest, AcceptsClosedQuotesWithEscapesAndAByteOrderMark) {
    Json o = decodeOne("\xef\xbb\xbf{\"a\": \"x\\\"y\", 'b': 'it''s', c: \"\"}\n");
    EXPECT_EQ(o["a"], "x\"y");
    EXPECT_EQ(o["b"], "it's");
    EXPECT_EQ(o["c"], "");
}

TEST(DecodeTest, ReportsBadIndentationPosition) {
    std::string e = errorOf("a:\n  b: 1\n c: 2\n");
    EXPECT_EQ(e.rfind("in.yaml:3:", 0), 0u) << e;
}

TEST(DecodeTest, RejectsDuplicateKeysWithTheirPosition) {
    std::string e = errorOf("metadata:\n  name: a\n  name: b\n");
    EXPECT_EQ(e, "in.yaml:3:3: duplicate key \"name\"");
}

TEST(DecodeTest, RejectsNonMappingDocuments) {
    EXPECT_EQ(errorOf("- a\n- b\n").rfind("in.yaml:1:1:", 0), 0u);
    EXPECT_EQ(errorOf("a: 1\n---\njust text\n").rfind("in.yaml:3:1:", 0), 0u);
}

TEST(DecodeTest, FailsInsteadOfLoopingOnATokenTheParserCannotPlace) {
    // yaml-cpp 0.7's LoadAll never returns on these (found by tests/fuzz/manifest_fuzz).
    EXPECT_NE(errorOf("{},:}"), "<no error>");
    EXPECT_NE(errorOf(","), "<no error>");
    EXPECT_NE(errorOf("a: 1\n,\n"), "<no error>");
}

TEST(DecodeTest, RejectsNonScalarKeys) {
    EXPECT_NE(errorOf("? [a, b]\n: c\n").find("keys must be scalars"), std::string::npos);
}

TEST(DecodeTest, ResolvesAliases) {
    Json o = decodeOne("a: &x {k: 1}\nb: *x\nc: &s key\n*s : 2\n");
    EXPECT_EQ(o["b"], Json({{"k", 1}}));
    EXPECT_EQ(o["key"], 2);
}

TEST(DecodeTest, SkipsEmptyInput) {
    auto docs = decodeManifests("", "x");
    ASSERT_TRUE(docs);
    EXPECT_TRUE(docs->empty());
    docs = decodeManifests("# only a comment\n", "x");
    ASSERT_TRUE(docs);
    EXPECT_TRUE(docs->empty());
}

TEST(DecodeTest, BoundsAliasExpansion) {
    std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    std::string prev = "a";
    for (char c = 'b'; c <= 'i'; ++c) {
        std::string name(1, c);
        bomb += name + ": &" + name + " [";
        for (int i = 0; i < 10; ++i) {
            bomb += (i ? ", *" : "*") + prev;
        }
        bomb += "]\n";
        prev = name;
    }
    EXPECT_NE(errorOf(bomb).find("too many"), std::string::npos);
}

TEST(DecodeTest, BoundsNesting) {
    std::string deep(500, '[');
    deep = "a: " + deep + std::string(500, ']') + "\n";
    EXPECT_NE(errorOf(deep), "<no error>");
}

// `levels` collections nested under key `a` of the root mapping: flow sequences, or block
// mappings when `block`.
std::string nestedYaml(int levels, bool block) {
    if (!block) {
        return "a: " + std::string(levels, '[') + std::string(levels, ']') + "\n";
    }
    std::string text = "a:\n";
    for (int i = 1; i <= levels; ++i) {
        text += std::string(2 * i, ' ') + "b:\n";
    }
    return text + std::string(2 * (levels + 1), ' ') + "c\n";
}

TEST(DecodeTest, AcceptsSixtyFourLevelsAndRefusesSixtyFive) {
    // The root mapping is level 1.
    for (bool block : {false, true}) {
        EXPECT_EQ(errorOf(nestedYaml(63, block)), "<no error>") << block;
        EXPECT_NE(errorOf(nestedYaml(64, block)).find("nests deeper than 64 levels"),
                  std::string::npos)
            << block;
    }
}

TEST(DecodeTest, RefusesAHundredThousandNestedCollections) {
    // Block style indents each level further, so its text grows with the square of the depth.
    for (const auto& deep : {nestedYaml(100'000, false), nestedYaml(1'000, true),
                             "a: " + std::string(100'000, '['), "a: " + std::string(100'000, '{')}) {
        EXPECT_NE(errorOf(deep), "<no error>");
    }
}

TEST(DecodeJsonTest, AcceptsSixtyFourLevelsAndRefusesSixtyFive) {
    auto ok = decodeJson(std::string(64, '[') + std::string(64, ']'));
    ASSERT_TRUE(ok) << ok.error().message();
    auto deep = decodeJson(std::string(65, '[') + std::string(65, ']'));
    ASSERT_FALSE(deep);
    EXPECT_EQ(deep.error().code(), Errc::Invalid);
    EXPECT_EQ(deep.error().context(), "nested deeper than 64 levels");
}

std::string repeat(const std::string& s, int times) {
    std::string out;
    for (int i = 0; i < times; ++i) {
        out += s;
    }
    return out;
}

TEST(DecodeJsonTest, RefusesDeepBodiesWhetherWellFormedOrNot) {
    const std::string open(100'000, '[');
    for (const auto& body : {"{\"a\":" + open + std::string(100'000, ']') + "}", "{\"a\":" + open,
                             repeat("{\"a\":", 50'000)}) {
        auto r = decodeJson(body);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().context(), "nested deeper than 64 levels");
    }
}

TEST(DecodeJsonTest, RefusesMalformedAndNonUtf8Text) {
    for (const std::string body : {"{nope", "", "{\"a\": \"\xff\xfe\"}", "[1, 2"}) {
        auto r = decodeJson(body);
        ASSERT_FALSE(r) << body;
        EXPECT_EQ(r.error().context(), "not valid JSON") << body;
    }
}

TEST(ToYamlTest, RendersBlockStyle) {
    Json o = {{"apiVersion", "v1"}, {"kind", "Service"}, {"spec", {{"ports", Json::array({{{"port", 80}}})}}}};
    EXPECT_EQ(toYaml(o), "apiVersion: v1\nkind: Service\nspec:\n  ports:\n    - port: 80\n");
}

TEST(ToYamlTest, QuotesStringsThatWouldChangeType) {
    Json o = {{"a", "80"}, {"b", "true"}, {"c", "null"}, {"d", ""}, {"e", "1.5"}, {"f", "plain"}};
    std::string y = toYaml(o);
    EXPECT_NE(y.find("a: \"80\""), std::string::npos) << y;
    EXPECT_NE(y.find("b: \"true\""), std::string::npos) << y;
    EXPECT_NE(y.find("c: \"null\""), std::string::npos) << y;
    EXPECT_NE(y.find("d: \"\""), std::string::npos) << y;
    EXPECT_NE(y.find("f: plain"), std::string::npos) << y;
    EXPECT_NE(toYaml(Json{{"g", "yes"}}).find("g: \"yes\""), std::string::npos);
}

TEST(ToYamlTest, WritesMultiLineStringsAsLiteralBlocks) {
    Json o = {{"data", {{"ca.crt", "-----BEGIN-----\nabc\n-----END-----\n"}}}};
    std::string y = toYaml(o);
    EXPECT_NE(y.find("ca.crt: |"), std::string::npos) << y;
}

TEST(ToYamlTest, RoundTripsThroughDecode) {
    Json o = {{"s", "80"},
              {"n", 80},
              {"neg", -1},
              {"f", 2.5},
              {"b", false},
              {"z", nullptr},
              {"pem", "line1\nline2\n"},
              {"noNewline", "a\nb"},
              {"twoNewlines", "a\n\n"},
              {"leading", "  x\ny\n"},
              {"colon", "a: b"},
              {"hash", "# not a comment"},
              {"dash", "- x"},
              {"empty", Json::object()},
              {"list", Json::array()},
              {"nested", {{"k.with.dots", Json::array({"x", 1, Json{{"y", "on"}}})}}},
              {"80", "numeric key"},
              {"unicode", "caf\xc3\xa9"},
              {"control", std::string("a\x01") + "b"}};
    int i = 0;
    for (const char* special : {"*x", "&a", "!tag", "%x", "@x", "`x", "{a}", "[a]", "a #b", "x:",
                                " leading", "trailing ", "'", "\"", "?", "-", "|", ">", "~",
                                "0x1F", ".inf", "1e3", "0o17", "+1", ".5", "yes", "Off", "a\tb",
                                "\n", "x\n\n", "- a\nb\n"}) {
        o["special" + std::to_string(i++)] = special;
        o[special] = i;
    }
    auto docs = decodeManifests(toYaml(o), "roundtrip");
    ASSERT_TRUE(docs) << docs.error().message() << "\n" << toYaml(o);
    ASSERT_EQ(docs->size(), 1u);
    EXPECT_EQ((*docs)[0].object, o) << toYaml(o);
}

}  // namespace
}  // namespace lastmile::ctrl
