// SPDX-License-Identifier: Apache-2.0
// ObjectKey: the identity of a stored object inside one project.
#pragma once

#include <compare>
#include <string>

#include "ctrl/api/json.h"

namespace lastmile::ctrl {

// Identity ignores the version: gateway.networking.k8s.io/v1alpha3 and /v1 name the same object.
struct ObjectKey {
    std::string group;  // "" for the core group (ConfigMap, Secret, Service)
    std::string kind;
    std::string ns;
    std::string name;

    auto operator<=>(const ObjectKey&) const = default;
};

// Group part of an apiVersion: "gateway.networking.k8s.io/v1" -> "gateway.networking.k8s.io", "v1" -> "".
inline std::string groupOf(const std::string& apiVersion) {
    auto slash = apiVersion.find('/');
    return slash == std::string::npos ? std::string() : apiVersion.substr(0, slash);
}

// Key of an admitted object (apiVersion, kind, metadata.namespace and metadata.name are present).
inline ObjectKey keyOf(const Json& object) {
    const auto& meta = object.at("metadata");
    return ObjectKey{groupOf(object.at("apiVersion").get<std::string>()),
                     object.at("kind").get<std::string>(), meta.at("namespace").get<std::string>(),
                     meta.at("name").get<std::string>()};
}

}  // namespace lastmile::ctrl
