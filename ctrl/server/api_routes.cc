// SPDX-License-Identifier: Apache-2.0
// Routing and Kubernetes Status rendering for the object API.
#include "ctrl/server/api_routes.h"

#include <algorithm>
#include <optional>
#include <regex>
#include <string_view>
#include <vector>

#include "ctrl/api/decode.h"
#include "ctrl/api/kinds.h"

namespace lastmile::ctrl {
namespace {

// A request path taken apart. Present segments only; see API.md for the shapes.
struct Route {
    std::string project;
    const KindInfo* kind = nullptr;
    std::string group, version;
    std::optional<std::string> ns;  // absent: across all namespaces (list only)
    std::optional<std::string> name;
    bool profiles = false;  // GET P/apis/lastmile.dev/v1/profiles
    bool nodes = false;     // GET P/apis/lastmile.dev/v1/nodes: the fleet, no objects
};

const std::regex& dnsLabel() {
    static const std::regex re("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");
    return re;
}

std::vector<std::string> split(std::string_view path) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= path.size()) {
        auto slash = path.find('/', start);
        if (slash == std::string_view::npos) {
            slash = path.size();
        }
        if (slash > start) {
            parts.emplace_back(path.substr(start, slash - start));
        }
        start = slash + 1;
    }
    return parts;
}

const KindInfo* kindFor(const std::string& group, const std::string& version,
                        const std::string& plural) {
    for (const auto& kind : allKinds()) {
        if (kind.group == group && kind.plural == plural &&
            std::find(kind.versions.begin(), kind.versions.end(), version) != kind.versions.end()) {
            return &kind;
        }
    }
    return nullptr;
}

// Messages quote the request's path and method, which may be any bytes: invalid UTF-8 is
// replaced (U+FFFD) rather than thrown about, which would take the server thread down.
std::string render(const Json& body) {
    return body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

HttpResponse status(int code, const std::string& reason, const std::string& message,
                    Json details = Json::object()) {
    Json body{{"apiVersion", "v1"}, {"kind", "Status"},   {"metadata", Json::object()},
              {"status", "Failure"}, {"message", message}, {"reason", reason},
              {"details", std::move(details)}, {"code", code}};
    return {code, "application/json", render(body)};
}

HttpResponse errorResponse(const Error& error, const Diagnostics& findings = {},
                           const Json& details = Json::object()) {
    const auto& code = error.code();
    if (code == Errc::NotFound) {
        return status(404, "NotFound", error.context(), details);
    }
    if (code == Errc::AlreadyExists) {
        return status(409, "AlreadyExists", error.context(), details);
    }
    if (code == Errc::Conflict) {
        return status(409, "Conflict", error.context(), details);
    }
    if (code == Errc::Invalid) {
        Json withCauses = details;
        Json causes = Json::array();
        std::string message = error.context();
        for (std::size_t i = 0; i < findings.size(); ++i) {
            const auto& d = findings[i];
            causes.push_back({{"reason", d.reason}, {"message", d.message}, {"field", d.path}});
            message += (i == 0 ? ": " : ", ") + format(d);
        }
        withCauses["causes"] = std::move(causes);
        return status(422, "Invalid", message, std::move(withCauses));
    }
    if (code == Errc::Unavailable) {
        return status(503, "ServiceUnavailable", error.message(), details);
    }
    return status(500, "InternalError", error.message(), details);
}

HttpResponse ok(int code, const Json& body) { return {code, "application/json", render(body)}; }

// Parses everything after /projects/{p}: api/v1/... or apis/{g}/{v}/...
std::optional<Route> parseRoute(const std::vector<std::string>& parts, std::string& problem) {
    if (parts.size() < 4 || parts[0] != "projects") {
        problem = "no such path";
        return std::nullopt;
    }
    Route route;
    route.project = parts[1];
    if (!std::regex_match(route.project, dnsLabel())) {
        problem = "project \"" + route.project + "\" is not a DNS label";
        return std::nullopt;
    }
    std::size_t i = 2;
    if (parts[i] == "api") {
        route.version = parts[i + 1];
        i += 2;
    } else if (parts[i] == "apis" && parts.size() >= 5) {
        route.group = parts[i + 1];
        route.version = parts[i + 2];
        i += 3;
    } else {
        problem = "no such path";
        return std::nullopt;
    }
    std::vector<std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(i), parts.end());
    if (route.group == "lastmile.dev" && route.version == "v1" && rest == std::vector<std::string>{"profiles"}) {
        route.profiles = true;
        return route;
    }
    if (route.group == "lastmile.dev" && route.version == "v1" && rest == std::vector<std::string>{"nodes"}) {
        route.nodes = true;
        return route;
    }
    std::string plural;
    if (rest.size() >= 3 && rest[0] == "namespaces" && rest.size() <= 4) {
        route.ns = rest[1];
        plural = rest[2];
        if (rest.size() == 4) {
            route.name = rest[3];
        }
    } else if (rest.size() == 1) {
        plural = rest[0];
    } else {
        problem = "no such path";
        return std::nullopt;
    }
    route.kind = kindFor(route.group, route.version, plural);
    if (route.kind == nullptr) {
        std::string gv = route.group.empty() ? route.version : route.group + "/" + route.version;
        problem = "the server could not find the requested resource " + plural + " in " + gv;
        return std::nullopt;
    }
    return route;
}

std::string resourceName(const KindInfo& kind) {
    return kind.group.empty() ? kind.plural : kind.plural + "." + kind.group;
}

Json detailsFor(const Route& route) {
    Json d{{"group", route.kind->group}, {"kind", route.kind->plural}};
    if (route.name) {
        d["name"] = *route.name;
    }
    return d;
}

// NotFound in kubectl's words ("backendtlspolicies.gateway.networking.k8s.io \"x\" not found").
HttpResponse lookupError(const Error& error, const Route& route) {
    if (error.code() != Errc::NotFound) {
        return errorResponse(error);
    }
    return status(404, "NotFound",
                  resourceName(*route.kind) + " \"" + route.name.value_or("") + "\" not found",
                  detailsFor(route));
}

// The body must name what the path names; fills namespace and name when the body omits them.
std::optional<std::string> reconcileBodyWithPath(Json& body, const Route& route) {
    if (!body.is_object()) {
        return "the body must be a JSON object";
    }
    // value() throws when a field holds another type: a kind that is an object is just wrong.
    const auto text = [&body](const char* field) {
        auto it = body.find(field);
        return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const std::string apiVersion = text("apiVersion");
    const std::string kind = text("kind");
    const std::string pathApiVersion =
        route.group.empty() ? route.version : route.group + "/" + route.version;
    if (apiVersion != pathApiVersion || kind != route.kind->kind) {
        return "the body is " + apiVersion + " " + kind + ", the path is " + pathApiVersion + " " +
               route.kind->kind;
    }
    if (!body.contains("metadata") || !body["metadata"].is_object()) {
        return std::nullopt;  // admission reports the missing metadata with its path
    }
    Json& meta = body["metadata"];
    if (!meta.contains("namespace")) {
        meta["namespace"] = *route.ns;
    } else if (meta["namespace"] != *route.ns) {
        return "metadata.namespace does not match the namespace of the path";
    }
    if (route.name) {
        if (!meta.contains("name")) {
            meta["name"] = *route.name;
        } else if (meta["name"] != *route.name) {
            return "metadata.name does not match the name in the path";
        }
    }
    return std::nullopt;
}

HttpResponse write(Controller& controller, const Route& route, const HttpRequest& request) {
    auto decoded = decodeJson(request.body);
    if (!decoded) {
        return status(400, "BadRequest", "the body is " + decoded.error().context());
    }
    Json& body = *decoded;
    if (auto problem = reconcileBodyWithPath(body, route)) {
        return status(400, "BadRequest", *problem, detailsFor(route));
    }
    Diagnostics findings;
    auto result = request.method == "PUT" ? controller.apply(route.project, body, findings)
                                          : controller.create(route.project, body, findings);
    if (!result) {
        Json details = detailsFor(route);
        if (auto m = body.find("metadata"); m != body.end() && m->is_object() && m->contains("name")) {
            details["name"] = (*m)["name"];
        }
        return errorResponse(result.error(), findings, details);
    }
    return ok(result->created ? 201 : 200, result->object);
}

}  // namespace

HttpResponse handleApiRequest(Controller& controller, const ApiAccess& access,
                              const HttpRequest& request) {
    auto parts = split(request.path);
    if (parts == std::vector<std::string>{"healthz"}) {
        return {200, "text/plain", "ok\n"};
    }
    std::string problem;
    auto route = parseRoute(parts, problem);
    if (!route) {
        return status(404, "NotFound", problem);
    }
    if (!access.allows(request.peer, route->project)) {
        std::string who =
            request.peer ? ApiAccess::describe(*request.peer) : "an unidentified caller";
        return status(403, "Forbidden",
                      who + " may not access project \"" + route->project +
                          "\": no apiAccess grant in lastmiled's configuration covers it");
    }
    if (route->profiles) {
        if (request.method != "GET") {
            return status(405, "MethodNotAllowed", "profiles are read-only");
        }
        return ok(200, controller.describeProfiles(route->project));
    }
    if (route->nodes) {
        if (request.method != "GET") {
            return status(405, "MethodNotAllowed", "nodes are read-only");
        }
        return ok(200, Json{{"apiVersion", "lastmile.dev/v1"},
                            {"kind", "NodeList"},
                            {"items", controller.describeNodes(route->project)}});
    }
    const KindInfo& kind = *route->kind;
    const std::string& method = request.method;

    if (!route->name) {
        if (method == "GET") {
            auto listed = controller.list(route->project, kind.group, kind.kind, route->ns);
            if (!listed) {
                return errorResponse(listed.error());
            }
            Json list{{"apiVersion", "v1"},
                      {"kind", kind.kind + "List"},
                      {"metadata", {{"resourceVersion", std::to_string(listed->revision)}}},
                      {"items", std::move(listed->items)}};
            return ok(200, list);
        }
        if (method == "POST" && route->ns) {
            return write(controller, *route, request);
        }
        return status(405, "MethodNotAllowed", method + " is not allowed on " + request.path);
    }

    const ObjectKey key{kind.group, kind.kind, *route->ns, *route->name};
    if (method == "GET") {
        auto object = controller.get(route->project, key);
        if (!object) {
            return lookupError(object.error(), *route);
        }
        return ok(200, *object);
    }
    if (method == "PUT") {
        return write(controller, *route, request);
    }
    if (method == "DELETE") {
        auto removed = controller.remove(route->project, key);
        if (!removed) {
            return lookupError(removed.error(), *route);
        }
        return ok(200, *removed);
    }
    return status(405, "MethodNotAllowed", method + " is not allowed on " + request.path);
}

}  // namespace lastmile::ctrl
