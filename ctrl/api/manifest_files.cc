// SPDX-License-Identifier: Apache-2.0
// Manifest file discovery and reading, shared by lastmiled --manifests and lastmilectl apply -f.
#include "ctrl/api/manifest_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lastmile::ctrl {

Result<std::vector<std::string>> manifestFiles(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    auto status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
        return fail(Errc::NotFound, "the path \"" + path + "\" does not exist");
    }
    if (!fs::is_directory(status)) {
        return std::vector<std::string>{path};
    }
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
        const auto ext = entry.path().extension().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
            files.push_back(entry.path().string());
        }
    }
    if (ec) {
        return fail(ec, "listing " + path);
    }
    std::sort(files.begin(), files.end());
    return files;
}

Result<std::string> readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return fail(Errc::NotFound, "the path \"" + path + "\" does not exist or cannot be read");
    }
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
}

}  // namespace lastmile::ctrl
