// SPDX-License-Identifier: Apache-2.0
// Serves the embedded dashboard assets; see dashboard.h.
#include "ctrl/lastmiled/dashboard.h"

#include <string_view>

namespace lastmile::ctrl {
namespace {

constexpr std::string_view kPrefix = "/ui";

std::optional<HttpResponse> asset(std::string_view name) {
    for (const auto& a : dashboardAssets()) {
        if (name == a.name) {
            return HttpResponse{200, a.contentType,
                                std::string(reinterpret_cast<const char*>(a.data), a.size)};
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<HttpResponse> serveDashboard(const std::string& path) {
    const std::string_view p(path);
    if (p.substr(0, kPrefix.size()) != kPrefix) {
        return std::nullopt;
    }
    std::string_view rest = p.substr(kPrefix.size());
    if (!rest.empty() && rest.front() != '/') {
        return std::nullopt;  // "/uix" is not ours
    }
    // The page references its assets by absolute /ui/ paths, so "/ui" works without a
    // redirect to "/ui/".
    std::string_view name = rest.size() <= 1 ? std::string_view("index.html") : rest.substr(1);
    if (auto found = asset(name)) {
        return found;
    }
    return HttpResponse{404, "text/plain", "no such dashboard file\n"};
}

}  // namespace lastmile::ctrl
