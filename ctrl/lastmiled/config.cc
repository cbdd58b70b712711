// SPDX-License-Identifier: Apache-2.0
// Configuration file parsing with yaml-cpp; exceptions stay inside this file.
#include "ctrl/lastmiled/config.h"

#include <yaml-cpp/yaml.h>

#include <map>

namespace lastmile::ctrl {
namespace {

std::string where(const std::string& path, const YAML::Mark& mark) {
    return path + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

Result<log::Level> parseLevel(const std::string& value) {
    static const std::map<std::string, log::Level> levels{
        {"error", log::Level::Error}, {"warning", log::Level::Warning},
        {"notice", log::Level::Notice}, {"info", log::Level::Info}, {"debug", log::Level::Debug}};
    auto it = levels.find(value);
    if (it == levels.end()) {
        return fail(Errc::Invalid, "logLevel \"" + value + "\": use error, warning, notice, info or debug");
    }
    return it->second;
}

}  // namespace

Result<DaemonConfig> loadConfig(const std::string& path, DaemonConfig base) {
    YAML::Node root;
    try {
        root = YAML::LoadFile(path);
    } catch (const YAML::BadFile&) {
        return fail(Errc::NotFound, "reading config " + path);
    } catch (const YAML::Exception& e) {
        return fail(Errc::Invalid, where(path, e.mark) + ": " + e.msg);
    }
    if (root.IsNull()) {
        return base;
    }
    if (!root.IsMap()) {
        return fail(Errc::Invalid, where(path, root.Mark()) + ": the config must be a mapping");
    }
    const std::map<std::string, std::string*> strings{
        {"stateDir", &base.stateDir},
        {"apiSocket", &base.apiSocket},
        {"adminHttp", &base.adminHttp},
        {"manifests", &base.manifests},
        {"gatewayClassName", &base.gatewayClassName},
        {"controllerName", &base.controllerName},
    };
    for (const auto& entry : root) {
        const auto key = entry.first.as<std::string>("");
        const auto& value = entry.second;
        const std::string at = where(path, entry.first.Mark()) + ": " + key;
        if (!value.IsScalar()) {
            return fail(Errc::Invalid, at + ": expected a single value");
        }
        try {
            if (auto it = strings.find(key); it != strings.end()) {
                *it->second = value.as<std::string>();
            } else if (key == "workers") {
                base.workers = value.as<unsigned>();
            } else if (key == "logLevel") {
                auto level = parseLevel(value.as<std::string>());
                if (!level) {
                    return fail(Errc::Invalid, at + ": " + level.error().context());
                }
                base.logLevel = *level;
            } else {
                return fail(Errc::Invalid, at + ": unknown key (known: stateDir, apiSocket, adminHttp, "
                                                "manifests, gatewayClassName, controllerName, "
                                                "workers, logLevel)");
            }
        } catch (const YAML::Exception&) {
            return fail(Errc::Invalid, at + ": wrong type");
        }
    }
    return base;
}

}  // namespace lastmile::ctrl
