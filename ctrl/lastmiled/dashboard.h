// SPDX-License-Identifier: Apache-2.0
// The live dashboard at /ui on the admin listener: static assets compiled into lastmiled.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "ctrl/server/http_server.h"

namespace lastmile::ctrl {

// One file of ctrl/lastmiled/dashboard/, embedded at build time by embed_assets.py.
struct DashboardAsset {
    const char* name;         // file name, e.g. "dashboard.js"
    const char* contentType;  // e.g. "text/javascript; charset=utf-8"
    const unsigned char* data;
    std::size_t size;
};

// Every embedded asset (defined in the generated dashboard_assets.cc).
std::span<const DashboardAsset> dashboardAssets();

// The answer for a dashboard path: "/ui" and "/ui/" give index.html, "/ui/NAME" the asset
// NAME (404 when there is none). Any path outside /ui gives nullopt, so the admin handler
// can try its other routes. The page polls /metrics on the same origin, which the caller
// serves.
std::optional<HttpResponse> serveDashboard(const std::string& path);

}  // namespace lastmile::ctrl
