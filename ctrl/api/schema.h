// SPDX-License-Identifier: Apache-2.0
// Schema: the field tree of every kind, shared by admission (types, unknown fields, bounds) and explain.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lastmile::ctrl::schema {

enum class Type { Object, Map, Array, String, Integer, Boolean };

struct Node;
using NodePtr = std::shared_ptr<const Node>;

struct Field {
    std::string name;
    NodePtr node;
    bool required = false;
};

// One node of the tree. Only the members that apply to `type` are used.
struct Node {
    Type type = Type::String;
    std::string description;

    std::vector<Field> fields;  // Object: in API order
    NodePtr items;              // Array elements, Map values (Map keys are strings)

    std::optional<std::size_t> minLength, maxLength;  // String
    std::optional<std::string> pattern;               // String, ECMAScript, whole-value match
    std::string patternHelp;                          // what the pattern means, for error messages
    std::vector<std::string> enumValues;              // String: allowed values when non-empty
    std::optional<std::int64_t> minimum, maximum;     // Integer
    std::optional<std::size_t> minItems, maxItems;    // Array, Map (entries)

    const Field* field(const std::string& name) const;
};

// Name shown by explain and in type errors: "string", "integer", "[]Object", "map[string]string".
std::string typeName(const Node& node);

}  // namespace lastmile::ctrl::schema
