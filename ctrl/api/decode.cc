// SPDX-License-Identifier: Apache-2.0
// Manifest codecs: yaml-cpp documents to JSON trees under the YAML 1.2 core schema, and back.
#include "ctrl/api/decode.h"

#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <regex>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

namespace lastmile::ctrl {

namespace {

// Bounds on what one manifest may expand to: aliases can make a small text describe an
// exponentially large tree ("billion laughs"). Depth is bounded by kMaxNesting: yaml-cpp 0.7
// descends recursively and its own DeepRecursion guard only trips at 500 levels, but it calls
// the Builder below as it enters each collection, so the Builder refusing level 65 ends the
// descent there. That is the library's own event stream, not a second YAML parser.
constexpr std::size_t kMaxNodes = 1'000'000;

struct DecodeError {
    YAML::Mark mark;
    std::string problem;
};

std::string position(const std::string& source, const YAML::Mark& mark) {
    // yaml-cpp marks are 0-based; a null mark (-1) has no position to offer.
    int line = mark.line >= 0 ? mark.line + 1 : 1;
    int column = mark.column >= 0 ? mark.column + 1 : 1;
    return source + ":" + std::to_string(line) + ":" + std::to_string(column);
}

bool isDigits(std::string_view s, int base) {
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        bool ok = base == 8 ? (c >= '0' && c <= '7')
                 : base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                              : (c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

unsigned digitValue(char c) {
    return std::isdigit(static_cast<unsigned char>(c))
               ? static_cast<unsigned>(c - '0')
               : static_cast<unsigned>(std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
}

// Parses a core-schema integer; nullopt when `s` is not one. Values beyond int64 (or uint64
// for positive ones) fall back to a float, as a JSON decoder would.
std::optional<Json> coreInteger(std::string_view s) {
    std::string_view digits = s;
    bool negative = false;
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && s[1] == 'o') {
        base = 8;
        digits = s.substr(2);
    } else if (s.size() > 2 && s[0] == '0' && s[1] == 'x') {
        base = 16;
        digits = s.substr(2);
    } else if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        negative = s[0] == '-';
        digits = s.substr(1);
    }
    if (!isDigits(digits, base)) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    bool overflow = false;
    for (char c : digits) {
        unsigned d = digitValue(c);
        if (value > (std::numeric_limits<std::uint64_t>::max() - d) / static_cast<unsigned>(base)) {
            overflow = true;
            break;
        }
        value = value * static_cast<unsigned>(base) + d;
    }
    if (overflow) {
        // strtod would read "0o..." as 0: accumulate the magnitude in the right base instead.
        double magnitude = 0;
        for (char c : digits) {
            magnitude = magnitude * base + digitValue(c);
        }
        return Json(negative ? -magnitude : magnitude);
    }
    if (negative) {
        constexpr std::uint64_t kMinMagnitude = std::uint64_t(1) << 63;
        if (value > kMinMagnitude) {
            return Json(-static_cast<double>(value));
        }
        if (value == kMinMagnitude) {
            return Json(std::numeric_limits<std::int64_t>::min());
        }
        return Json(-static_cast<std::int64_t>(value));
    }
    if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return Json(static_cast<std::int64_t>(value));
    }
    return Json(value);
}

std::optional<Json> coreFloat(std::string_view s) {
    static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
    static const std::regex kInf("[-+]?\\.(inf|Inf|INF)");
    static const std::regex kNan("\\.(nan|NaN|NAN)");
    // Floats are short; longer plain scalars are strings and must not reach std::regex, whose
    // recursion depth grows with the input.
    if (s.size() > 64) {
        return std::nullopt;
    }
    std::string str(s);
    if (std::regex_match(str, kFloat)) {
        return Json(std::strtod(str.c_str(), nullptr));
    }
    if (std::regex_match(str, kInf)) {
        return Json(str[0] == '-' ? -std::numeric_limits<double>::infinity()
                                  : std::numeric_limits<double>::infinity());
    }
    if (std::regex_match(str, kNan)) {
        return Json(std::numeric_limits<double>::quiet_NaN());
    }
    return std::nullopt;
}

bool isCoreNull(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

std::optional<bool> coreBool(std::string_view s) {
    if (s == "true" || s == "True" || s == "TRUE") {
        return true;
    }
    if (s == "false" || s == "False" || s == "FALSE") {
        return false;
    }
    return std::nullopt;
}

// The value a plain (untagged, unquoted) scalar resolves to under the YAML 1.2 core schema.
Json resolvePlain(const std::string& s) {
    if (isCoreNull(s)) {
        return nullptr;
    }
    if (auto b = coreBool(s)) {
        return *b;
    }
    if (auto i = coreInteger(s)) {
        return *i;
    }
    if (auto f = coreFloat(s)) {
        return *f;
    }
    return s;
}

// Whether the quoted scalar whose opening quote is text[open] has its closing quote. yaml-cpp
// 0.7 ends an unterminated quoted scalar at the end of the input instead of failing.
bool quoteClosed(std::string_view text, std::size_t open) {
    const char quote = text[open];
    for (std::size_t i = open + 1; i < text.size(); ++i) {
        if (quote == '"' && text[i] == '\\') {
            ++i;  // an escape: the next character cannot close the scalar
        } else if (text[i] == quote) {
            if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
                ++i;  // '' is an escaped single quote
                continue;
            }
            return true;
        }
    }
    return false;
}

// Builds JSON trees straight from yaml-cpp's parse events. Going through YAML::LoadAll
// would be simpler, but LoadAll in yaml-cpp 0.7 loops forever (allocating) when the parser
// stops consuming tokens (e.g. "{},:}" or a stray ","), and events give every node's mark.
class Builder : public YAML::EventHandler {
public:
    struct Built {
        Json object;
        YAML::Mark mark;                 // where the root node starts
        std::vector<YAML::Mark> items;   // marks of the elements of a top-level "items" list
    };

    // Marks count bytes of UTF-8 after a byte order mark; UTF-16 and UTF-32 input (which has
    // NUL bytes) is converted before marks are counted, so its quotes are not checked.
    explicit Builder(std::string_view text)
        : text_(text.find('\0') != std::string_view::npos ? std::string_view()
                : text.substr(0, 3) == "\xef\xbb\xbf"     ? text.substr(3)
                                                            : text) {}

    std::vector<Built> documents;

    void OnDocumentStart(const YAML::Mark&) override {
        stack_.clear();
        anchors_.clear();
        root_.reset();
        items_.clear();
    }

    void OnDocumentEnd() override {
        if (!root_) {
            return;
        }
        if (!documents.empty() && documents.back().mark.pos == rootMark_.pos) {
            // The parser handed out a document without consuming input: a token it cannot
            // place. Report it rather than loop.
            throw DecodeError{rootMark_, "unexpected token"};
        }
        if (documents.size() >= kMaxDocuments) {
            throw DecodeError{rootMark_, "too many documents"};
        }
        documents.push_back(Built{std::move(*root_), rootMark_, std::move(items_)});
        root_.reset();
    }

    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        complete(Json(nullptr), mark, anchor, std::string("null"), 1);
    }

    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        auto it = anchors_.find(anchor);
        if (it == anchors_.end()) {
            throw DecodeError{mark, "unknown anchor"};
        }
        budget(mark, it->second.nodes);
        complete(Json(it->second.value), mark, 0, it->second.keyText, it->second.nodes);
    }

    void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  const std::string& value) override {
        budget(mark, 1);
        // Quoted scalars carry the tag "!"; a mark that does not land on a quote is a block
        // scalar.
        if (tag == "!" && mark.pos >= 0 && static_cast<std::size_t>(mark.pos) < text_.size()) {
            auto open = static_cast<std::size_t>(mark.pos);
            if ((text_[open] == '"' || text_[open] == '\'') && !quoteClosed(text_, open)) {
                throw DecodeError{mark, "unterminated quoted scalar"};
            }
        }
        complete(scalar(mark, tag, value), mark, anchor, value, 1);
    }

    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
        push(Json::array(), mark, anchor);
    }

    void OnSequenceEnd() override { pop(); }

    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value) override {
        push(Json::object(), mark, anchor);
    }

    void OnMapEnd() override { pop(); }

private:
    static constexpr std::size_t kMaxDocuments = 100'000;

    struct Frame {
        Json value;
        YAML::Mark mark;
        YAML::anchor_t anchor = 0;
        std::size_t nodes = 1;
        bool haveKey = false;  // maps: a key was read, its value is next
        std::string key;
        std::set<std::string> keys;
    };

    struct Anchored {
        Json value;
        std::optional<std::string> keyText;  // scalars can be used as mapping keys
        std::size_t nodes = 1;
    };

    void budget(const YAML::Mark& mark, std::size_t nodes) {
        nodes_ += nodes;
        if (nodes_ > kMaxNodes) {
            throw DecodeError{mark, "document expands to too many nodes (aliases?)"};
        }
    }

    void push(Json value, const YAML::Mark& mark, YAML::anchor_t anchor) {
        budget(mark, 1);
        if (stack_.size() >= static_cast<std::size_t>(kMaxNesting)) {
            throw DecodeError{mark, "document nests deeper than " + std::to_string(kMaxNesting) +
                                        " levels"};
        }
        if (!stack_.empty() && stack_.back().value.is_object() && !stack_.back().haveKey) {
            throw DecodeError{mark, "mapping keys must be scalars"};
        }
        stack_.push_back(Frame{std::move(value), mark, anchor});
    }

    void pop() {
        if (stack_.empty()) {
            throw DecodeError{YAML::Mark::null_mark(), "unbalanced collection end"};
        }
        Frame frame = std::move(stack_.back());
        stack_.pop_back();
        if (frame.value.is_object() && frame.haveKey) {
            throw DecodeError{frame.mark, "mapping key without a value"};
        }
        complete(std::move(frame.value), frame.mark, frame.anchor, std::nullopt, frame.nodes);
    }

    void complete(Json value, const YAML::Mark& mark, YAML::anchor_t anchor,
                  std::optional<std::string> keyText, std::size_t nodes) {
        if (anchor != 0) {
            anchors_[anchor] = Anchored{value, keyText, nodes};
        }
        if (stack_.empty()) {
            root_ = std::move(value);
            rootMark_ = mark;
            return;
        }
        Frame& top = stack_.back();
        top.nodes += nodes;
        if (top.value.is_array()) {
            if (stack_.size() == 2 && stack_[0].key == "items") {
                items_.push_back(mark);
            }
            top.value.push_back(std::move(value));
            return;
        }
        if (!top.haveKey) {
            if (!keyText) {
                throw DecodeError{mark, "mapping keys must be scalars"};
            }
            if (!top.keys.insert(*keyText).second) {
                throw DecodeError{mark, "duplicate key \"" + *keyText + "\""};
            }
            top.key = std::move(*keyText);
            top.haveKey = true;
            return;
        }
        top.value[top.key] = std::move(value);
        top.haveKey = false;
    }

    static Json scalar(const YAML::Mark& mark, const std::string& tag, const std::string& value) {
        if (tag == "?") {
            return resolvePlain(value);
        }
        if (tag == "tag:yaml.org,2002:null") {
            return nullptr;
        }
        if (tag == "tag:yaml.org,2002:bool") {
            if (auto b = coreBool(value)) {
                return *b;
            }
            throw DecodeError{mark, "invalid !!bool value \"" + value + "\""};
        }
        if (tag == "tag:yaml.org,2002:int") {
            if (auto i = coreInteger(value)) {
                return *i;
            }
            throw DecodeError{mark, "invalid !!int value \"" + value + "\""};
        }
        if (tag == "tag:yaml.org,2002:float") {
            if (auto i = coreInteger(value)) {
                return Json(i->get<double>());
            }
            if (auto f = coreFloat(value)) {
                return *f;
            }
            throw DecodeError{mark, "invalid !!float value \"" + value + "\""};
        }
        // "!" (quoted), !!str and any other tag keep the text.
        return value;
    }

    std::string_view text_;
    std::vector<Frame> stack_;
    std::map<YAML::anchor_t, Anchored> anchors_;
    std::optional<Json> root_;
    YAML::Mark rootMark_;
    std::vector<YAML::Mark> items_;
    std::size_t nodes_ = 0;
};

void appendDocument(std::vector<Document>& out, Builder::Built&& doc) {
    if (!doc.object.is_object()) {
        throw DecodeError{doc.mark, "a manifest document must be a mapping (an object with "
                                    "apiVersion and kind)"};
    }
    auto kind = doc.object.find("kind");
    auto items = doc.object.find("items");
    if (kind != doc.object.end() && kind->is_string() && *kind == "List" &&
        items != doc.object.end()) {
        if (!items->is_array()) {
            throw DecodeError{doc.mark, "items of a List must be a sequence"};
        }
        for (std::size_t i = 0; i < items->size(); ++i) {
            YAML::Mark mark = i < doc.items.size() ? doc.items[i] : doc.mark;
            if (!(*items)[i].is_object()) {
                throw DecodeError{mark, "items of a List must be mappings"};
            }
            out.push_back(Document{std::move((*items)[i]), mark.line + 1});
        }
        return;
    }
    out.push_back(Document{std::move(doc.object), doc.mark.line + 1});
}

// --- encoding ---------------------------------------------------------------------------

bool literalFits(const std::string& s) {
    // yaml-cpp writes literal blocks with the default "clip" chomping and no indentation
    // indicator, so only text ending in exactly one newline, without leading blanks, tabs or
    // carriage returns reads back unchanged.
    if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n') {
        return false;
    }
    if (s.front() == ' ' || s.front() == '\n') {
        return false;
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\r' || c == '\t' || (c < 0x20 && c != '\n') || c == 0x7f) {
            return false;
        }
        // A line that ends in a blank would keep it, but one starting with a blank after the
        // first line would be read as more-indented; both read back fine. Trailing blanks on
        // the last line before the final newline are kept too.
    }
    return true;
}

// YAML 1.1 readers (go-yaml v2, PyYAML) take these as booleans; kubectl quotes them too.
bool isYaml11Bool(const std::string& s) {
    static const std::set<std::string> kWords{"y", "Y", "yes", "Yes", "YES", "n", "N", "no",
                                              "No", "NO", "on", "On", "ON", "off", "Off", "OFF"};
    return kWords.count(s) != 0;
}

bool needsQuotes(const std::string& s) {
    if (!resolvePlain(s).is_string() || isYaml11Bool(s)) {
        return true;
    }
    for (char ch : s) {
        unsigned char c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) {
            return true;
        }
    }
    return false;
}

void emit(YAML::Emitter& out, const Json& value) {
    switch (value.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
        out << YAML::Null;
        return;
    case Json::value_t::boolean:
        out << value.get<bool>();
        return;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
        out << value.dump();
        return;
    case Json::value_t::number_float: {
        double d = value.get<double>();
        if (std::isnan(d)) {
            out << ".nan";
        } else if (std::isinf(d)) {
            out << (d < 0 ? "-.inf" : ".inf");
        } else {
            out << value.dump();
        }
        return;
    }
    case Json::value_t::string: {
        const auto& s = value.get_ref<const std::string&>();
        if (s.find('\n') != std::string::npos && literalFits(s)) {
            out << YAML::Literal << s;
        } else if (needsQuotes(s)) {
            out << YAML::DoubleQuoted << s;
        } else {
            out << s;
        }
        return;
    }
    case Json::value_t::binary:
        out << YAML::Null;
        return;
    case Json::value_t::array:
        if (value.empty()) {
            out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
            return;
        }
        out << YAML::BeginSeq;
        for (const auto& item : value) {
            emit(out, item);
        }
        out << YAML::EndSeq;
        return;
    case Json::value_t::object:
        if (value.empty()) {
            out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
            return;
        }
        out << YAML::BeginMap;
        for (const auto& [key, item] : value.items()) {
            out << YAML::Key;
            if (needsQuotes(key)) {
                out << YAML::DoubleQuoted;
            }
            out << key << YAML::Value;
            emit(out, item);
        }
        out << YAML::EndMap;
        return;
    }
}

}  // namespace

Result<std::vector<Document>> decodeManifests(std::string_view text, const std::string& source) {
    try {
        std::istringstream in{std::string(text)};
        YAML::Parser parser(in);
        Builder builder(text);
        while (parser.HandleNextDocument(builder)) {
        }
        std::vector<Document> out;
        for (auto& doc : builder.documents) {
            if (doc.object.is_null()) {
                continue;  // an empty document, e.g. between two "---"
            }
            appendDocument(out, std::move(doc));
        }
        return out;
    } catch (const DecodeError& e) {
        return fail(Errc::Invalid, position(source, e.mark) + ": " + e.problem);
    } catch (const YAML::Exception& e) {
        return fail(Errc::Invalid, position(source, e.mark) + ": " + e.msg);
    } catch (const std::exception& e) {
        return fail(Errc::Invalid, source + ": " + e.what());
    } catch (...) {
        return fail(Errc::Invalid, source + ": unreadable manifest");
    }
}

Result<Json> decodeJson(std::string_view text) {
    // nlohmann's parser is iterative; its callback sees each array and object start with the
    // number of enclosing levels. Refusing (discarding) a too-deep start builds nothing below
    // it, and the flag turns the otherwise well-formed parse into a refusal.
    bool tooDeep = false;
    auto limitDepth = [&tooDeep](int depth, Json::parse_event_t event, Json&) {
        if ((event == Json::parse_event_t::object_start ||
             event == Json::parse_event_t::array_start) &&
            depth >= kMaxNesting) {
            tooDeep = true;
        }
        return !tooDeep;
    };
    Json parsed = Json::parse(text, limitDepth, /*allow_exceptions=*/false);
    if (tooDeep) {
        return fail(Errc::Invalid, "nested deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    if (parsed.is_discarded()) {
        return fail(Errc::Invalid, "not valid JSON");
    }
    return parsed;
}

std::string toYaml(const Json& object) {
    try {
        YAML::Emitter out;
        out.SetIndent(2);
        out.SetSeqFormat(YAML::Block);
        out.SetMapFormat(YAML::Block);
        out.SetBoolFormat(YAML::TrueFalseBool);
        out.SetBoolFormat(YAML::LowerCase);
        emit(out, object);
        std::string text = out.c_str();
        if (!text.empty() && text.back() != '\n') {
            text += '\n';
        }
        return text;
    } catch (...) {
        return object.dump(2) + "\n";  // JSON is YAML too: never fail to render
    }
}

}  // namespace lastmile::ctrl
