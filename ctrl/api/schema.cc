// SPDX-License-Identifier: Apache-2.0
// Schema node helpers: field lookup and the type names explain and type errors print.
#include "ctrl/api/schema.h"

namespace lastmile::ctrl::schema {

const Field* Node::field(const std::string& name) const {
    for (const auto& f : fields) {
        if (f.name == name) {
            return &f;
        }
    }
    return nullptr;
}

std::string typeName(const Node& node) {
    switch (node.type) {
    case Type::Object:
        return "Object";
    case Type::Map:
        return "map[string]" + (node.items ? typeName(*node.items) : std::string("string"));
    case Type::Array:
        return "[]" + (node.items ? typeName(*node.items) : std::string("string"));
    case Type::String:
        return "string";
    case Type::Integer:
        // An Integer node with a pattern also takes a string matching it (Service targetPort):
        // Kubernetes calls this IntOrString.
        return node.pattern ? "IntOrString" : "integer";
    case Type::Boolean:
        return "boolean";
    }
    return "string";
}

}  // namespace lastmile::ctrl::schema
