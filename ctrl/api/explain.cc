// SPDX-License-Identifier: Apache-2.0
// explain: kubectl-explain-shaped documentation rendered from the kinds' schemas.
#include "ctrl/api/explain.h"

#include <sstream>
#include <vector>

namespace lastmile::ctrl {

namespace {

using schema::Node;
using schema::Type;

constexpr std::size_t kWidth = 80;

// Word-wraps `text` to kWidth columns, every line prefixed by `indent`.
std::string wrap(const std::string& text, const std::string& indent) {
    std::string out;
    std::istringstream paragraphs(text);
    std::string paragraph;
    while (std::getline(paragraphs, paragraph)) {
        std::istringstream words(paragraph);
        std::string word;
        std::string line;
        while (words >> word) {
            if (!line.empty() && indent.size() + line.size() + 1 + word.size() > kWidth) {
                out += indent + line + "\n";
                line.clear();
            }
            line += (line.empty() ? "" : " ") + word;
        }
        out += indent + line + "\n";
    }
    return out;
}

// Arrays and maps are explained through their elements, as kubectl does.
const Node& element(const Node& node) {
    const Node* n = &node;
    while ((n->type == Type::Array || n->type == Type::Map) && n->items &&
           n->items->type == Type::Object) {
        n = n->items.get();
    }
    return *n;
}

std::string fieldLine(const schema::Field& f) {
    std::string line = f.name + "\t<" + schema::typeName(*f.node) + ">";
    if (f.required) {
        line += " -required-";
    }
    return line;
}

std::string describe(const Node& node) {
    std::string text = node.description.empty() ? "<empty>" : node.description;
    if (!node.enumValues.empty()) {
        text += "\nPossible values:";
        for (std::size_t i = 0; i < node.enumValues.size(); ++i) {
            text += (i ? ", \"" : " \"") + node.enumValues[i] + "\"";
        }
    }
    return text;
}

void recurse(std::string& out, const Node& node, const std::string& indent, int depth) {
    // The schema is a finite tree; the bound only guards against a cycle introduced by mistake.
    if (depth > 32) {
        return;
    }
    for (const auto& f : element(node).fields) {
        out += indent + fieldLine(f) + "\n";
        recurse(out, *f.node, indent + "   ", depth + 1);
    }
}

std::vector<std::string> split(std::string_view path) {
    std::vector<std::string> parts;
    if (path.empty()) {
        return parts;
    }
    std::size_t start = 0;
    while (true) {
        auto dot = path.find('.', start);
        parts.emplace_back(path.substr(start, dot == std::string_view::npos ? path.npos : dot - start));
        if (dot == std::string_view::npos) {
            return parts;
        }
        start = dot + 1;
    }
}

}  // namespace

Result<std::string> explain(const KindInfo& kind, std::string_view fieldPath, bool recursive) {
    try {
        if (!kind.schema) {
            return fail(Errc::Internal, "kind " + kind.kind + " has no schema");
        }
        std::vector<std::string> parts = split(fieldPath);
        // `explain backendtlspolicies.spec` passes the resource too: tolerate it.
        if (!parts.empty() && findResource(parts.front()) == &kind) {
            parts.erase(parts.begin());
        }
        const Node* node = kind.schema.get();
        const schema::Field* field = nullptr;
        std::string walked = kind.kind;
        for (const auto& part : parts) {
            const schema::Field* next = element(*node).field(part);
            if (!next) {
                return fail(Errc::NotFound,
                            "field \"" + part + "\" does not exist in " + walked);
            }
            field = next;
            node = next->node.get();
            walked += "." + part;
        }

        std::string out = "KIND:     " + kind.kind + "\n";
        out += "VERSION:  " + kind.storageApiVersion() + "\n\n";
        if (field) {
            out += "FIELD:    " + field->name + " <" + schema::typeName(*node) + ">\n\n";
        }
        out += "DESCRIPTION:\n" + wrap(describe(*node), "     ");
        const Node& body = element(*node);
        if (body.type != Type::Object || body.fields.empty()) {
            return out;
        }
        out += "\nFIELDS:\n";
        if (recursive) {
            recurse(out, body, "   ", 0);
            return out;
        }
        for (const auto& f : body.fields) {
            out += "   " + fieldLine(f) + "\n";
            out += wrap(describe(*f.node), "     ") + "\n";
        }
        return out;
    } catch (const std::exception& e) {
        return fail(Errc::Internal, std::string("rendering explain output: ") + e.what());
    }
}

}  // namespace lastmile::ctrl
