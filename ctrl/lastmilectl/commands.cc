// SPDX-License-Identifier: Apache-2.0
// lastmilectl's command line: CLI11 parsing and the apply/get/describe/delete/explain commands.
#include "ctrl/lastmilectl/commands.h"

#include <algorithm>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <utility>

#include <CLI/CLI.hpp>

#include "ctrl/api/decode.h"
#include "ctrl/api/explain.h"
#include "ctrl/api/kinds.h"
#include "ctrl/api/manifest_files.h"
#include "ctrl/lastmilectl/printers.h"
#include "lastmile_config.h"

namespace lastmile::ctl {

namespace {


struct GlobalOptions {
    std::string server;
    std::string project = "default";
    std::string ns = "default";
    bool nsExplicit = false;  // -n was given: a manifest naming another namespace is refused
};

// Projects and namespaces are DNS labels. Checked before sending: the server would only answer
// "no such path" for a name it cannot route, and an empty namespace would silently list all.
bool isDnsLabel(const std::string& s) {
    constexpr std::size_t kMaxLabel = 63;
    if (s.empty() || s.size() > kMaxLabel || s.front() == '-' || s.back() == '-') {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
}

bool checkLabel(std::string_view what, const std::string& value, std::ostream& err) {
    if (isDnsLabel(value)) {
        return true;
    }
    err << "error: invalid " << what << " \"" << value
        << "\": must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with "
           "a letter or digit, at most 63 characters)\n";
    return false;
}

// The transport of one run, opened on first use.
class Session {
public:
    Session(CliEnv& env, const GlobalOptions& options) : env_(env), options_(options) {}

    // nullptr after printing the error when no transport could be opened.
    Transport* transport() {
        if (!transport_ && !failed_) {
            // A malformed --server is a usage error, whatever transport would be used.
            if (auto path = parseServer(options_.server); !path) {
                env_.err << "error: " << path.error().context() << "\n";
                failed_ = true;
                return nullptr;
            }
            auto t = env_.connect ? env_.connect(options_.server)
                                  : Result<std::unique_ptr<Transport>>(
                                        fail(Errc::Internal, "no transport configured"));
            if (!t) {
                env_.err << "error: " << t.error().context() << "\n";
                failed_ = true;
                return nullptr;
            }
            transport_ = std::move(*t);
        }
        return transport_.get();
    }

    // Sends, reporting an unreachable server once; nullopt when no answer arrived.
    std::optional<HttpResponse> send(std::string_view method, const std::string& path,
                                     const std::string& body = {}) {
        Transport* t = transport();
        if (t == nullptr) {
            return std::nullopt;
        }
        auto r = t->send(method, path, body);
        if (!r) {
            env_.err << "error: " << r.error().context() << "\n";
            failed_ = true;
            return std::nullopt;
        }
        return std::move(*r);
    }

    bool unreachable() const { return failed_; }

private:
    CliEnv& env_;
    const GlobalOptions& options_;
    std::unique_ptr<Transport> transport_;
    bool failed_ = false;
};

std::string unknownKind(std::string_view name) {
    return "error: the server doesn't have a resource type \"" + std::string(name) + "\"\n";
}

std::string notFound(const ctrl::KindInfo& kind, const std::string& name,
                     std::string_view context = {}) {
    return "Error from server (NotFound): " + std::string(context) + pluralRef(kind) + " \"" +
           name + "\" not found\n";
}

// A 404 without a Status body (or with an empty message) still gets kubectl's wording.
std::string renderError(const HttpResponse& r, std::string_view context, const ctrl::KindInfo* kind,
                        const std::string& name) {
    if (r.status == 404 && kind != nullptr) {
        Json status = Json::parse(r.body, nullptr, false);
        if (status.is_discarded() || textAt(status, {"message"}).empty()) {
            return notFound(*kind, name, context);
        }
    }
    return formatServerError(r.status, r.body, context);
}

// ---- manifests ----------------------------------------------------------------------------

struct Source {
    std::string name;  // as shown in messages: the path, or "STDIN"
    std::string text;
};

// Expands -f arguments to sources: files as given, directories to their *.yaml, *.yml and
// *.json files in name order (not recursive), "-" to stdin. Prints the first problem.
std::optional<std::vector<Source>> readSources(const std::vector<std::string>& args, CliEnv& env) {
    std::vector<Source> sources;
    for (const auto& arg : args) {
        if (arg == "-") {
            std::ostringstream text;
            text << env.in.rdbuf();
            sources.push_back({"STDIN", text.str()});
            continue;
        }
        auto paths = ctrl::manifestFiles(arg);
        if (!paths) {
            env.err << "error: " << paths.error().context() << "\n";
            return std::nullopt;
        }
        for (const auto& path : *paths) {
            auto text = ctrl::readFile(path);
            if (!text) {
                env.err << "error: " << text.error().context() << "\n";
                return std::nullopt;
            }
            sources.push_back({path, std::move(*text)});
        }
    }
    return sources;
}

// A decoded document resolved to its API location.
struct Target {
    const ctrl::KindInfo* kind = nullptr;
    std::string apiVersion;
    std::string ns;
    std::string name;
};

std::optional<Target> resolveDocument(Json& object, const Source& source,
                                      const GlobalOptions& options, std::ostream& err) {
    Target t;
    t.apiVersion = textAt(object, {"apiVersion"});
    std::string kind = textAt(object, {"kind"});
    if (t.apiVersion.empty() || kind.empty()) {
        std::string missing = t.apiVersion.empty() ? "apiVersion not set" : "";
        if (kind.empty()) {
            missing += std::string(missing.empty() ? "" : ", ") + "kind not set";
        }
        err << "error: error validating \"" << source.name << "\": " << missing << "\n";
        return std::nullopt;
    }
    t.kind = ctrl::findKind(t.apiVersion, kind);
    if (t.kind == nullptr) {
        err << "error: unable to recognize \"" << source.name << "\": no matches for kind \""
            << kind << "\" in version \"" << t.apiVersion << "\"\n";
        return std::nullopt;
    }
    t.name = textAt(object, {"metadata", "name"});
    if (t.name.empty()) {
        err << "error: error when applying \"" << source.name << "\": " << kind
            << ": resource name may not be empty\n";
        return std::nullopt;
    }
    t.ns = textAt(object, {"metadata", "namespace"});
    if (!t.ns.empty() && options.nsExplicit && t.ns != options.ns) {
        // kubectl's rule: an explicit -n never silently loses to the manifest, or the reverse.
        err << "error: the namespace from the provided object \"" << t.ns
            << "\" does not match the namespace \"" << options.ns << "\". You must pass '--namespace="
            << t.ns << "' to perform this operation.\n";
        return std::nullopt;
    }
    if (t.ns.empty()) {
        t.ns = options.ns;
        object["metadata"]["namespace"] = t.ns;
    }
    return t;
}

// What an action on one document tells forEachDocument.
enum class Step { Done, Failed, Abort };

// Which way ctrl::applyRank orders the documents of one command.
enum class Order { Apply, Delete };

// Reads every -f source, decodes and resolves each document and runs `action` on it, in
// ctrl::applyRank order (reversed to delete); a source or document that cannot be read is
// reported and skipped. `emptyIsError` names the verb for kubectl's "no objects passed to
// VERB" when the sources hold no document at all (an empty directory or file is almost always
// a wrong path). Returns the command's exit status.
template <typename Action>
int forEachDocument(const std::vector<std::string>& files, const GlobalOptions& options,
                    CliEnv& env, std::string_view emptyIsError, Order order, Action action) {
    auto sources = readSources(files, env);
    if (!sources) {
        return 1;
    }
    bool failed = false;
    std::size_t documents = 0;
    struct Resolved {
        const Source* source;
        ctrl::Document doc;
        Target target;
    };
    std::vector<Resolved> all;
    for (const auto& source : *sources) {
        auto docs = ctrl::decodeManifests(source.text, source.name);
        if (!docs) {
            env.err << "error: " << docs.error().context() << "\n";
            failed = true;
            continue;
        }
        documents += docs->size();
        for (auto& doc : *docs) {
            auto target = resolveDocument(doc.object, source, options, env.err);
            if (!target) {
                failed = true;
                continue;
            }
            all.push_back({&source, std::move(doc), std::move(*target)});
        }
    }
    std::stable_sort(all.begin(), all.end(), [order](const Resolved& a, const Resolved& b) {
        const int ra = ctrl::applyRank(a.target.kind->kind);
        const int rb = ctrl::applyRank(b.target.kind->kind);
        return order == Order::Apply ? ra < rb : ra > rb;
    });
    for (auto& r : all) {
        switch (action(*r.source, r.doc, r.target)) {
        case Step::Done:
            break;
        case Step::Failed:
            failed = true;
            break;
        case Step::Abort:
            return 1;
        }
    }
    if (documents == 0 && !failed && !emptyIsError.empty()) {
        env.err << "error: no objects passed to " << emptyIsError << "\n";
        return 1;
    }
    return failed ? 1 : 0;
}

int runApply(const std::vector<std::string>& files, const GlobalOptions& options, CliEnv& env,
             Session& session) {
    return forEachDocument(files, options, env, "apply", Order::Apply, [&](const Source& source,
                                                             ctrl::Document& doc,
                                                             const Target& target) {
        std::string path =
            itemPath(options.project, *target.kind, target.apiVersion, target.ns, target.name);
        std::string noun = singularRef(*target.kind) + "/" + target.name;
        std::string context = "error when applying \"" + source.name + "\": ";

        // The previous resourceVersion tells "unchanged" from "configured".
        auto before = session.send("GET", path);
        if (!before) {
            return Step::Abort;
        }
        std::string previousVersion;
        if (before->status == 200) {
            Json previous = Json::parse(before->body, nullptr, false);
            previousVersion = textAt(previous, {"metadata", "resourceVersion"});
        } else if (before->status != 404) {
            env.err << renderError(*before, context, target.kind, target.name);
            return Step::Failed;
        }
        // A resourceVersion in the file is kept: it is a precondition, as with kubectl, so a
        // manifest edited from a stale `get -o yaml` gets 409 instead of winning.
        auto put = session.send("PUT", path,
                                doc.object.dump(-1, ' ', false, Json::error_handler_t::replace));
        if (!put) {
            return Step::Abort;
        }
        if (put->status == 201) {
            env.out << noun << " created\n";
        } else if (put->status == 200) {
            Json stored = Json::parse(put->body, nullptr, false);
            std::string version = textAt(stored, {"metadata", "resourceVersion"});
            bool same = !previousVersion.empty() && version == previousVersion;
            env.out << noun << (same ? " unchanged\n" : " configured\n");
        } else {
            env.err << renderError(*put, context, target.kind, target.name);
            return Step::Failed;
        }
        return Step::Done;
    });
}

int runDeleteFiles(const std::vector<std::string>& files, bool ignoreNotFound,
                   const GlobalOptions& options, CliEnv& env, Session& session) {
    return forEachDocument(files, options, env, "", Order::Delete, [&](const Source& source, ctrl::Document&,
                                                        const Target& target) {
        auto r = session.send("DELETE",
                              itemPath(options.project, *target.kind, "", target.ns, target.name));
        if (!r) {
            return Step::Abort;
        }
        if (r->status == 200 || r->status == 202) {
            env.out << singularRef(*target.kind) << " \"" << target.name << "\" deleted\n";
            return Step::Done;
        }
        if (r->status == 404 && ignoreNotFound) {
            return Step::Done;
        }
        env.err << renderError(*r, "error when deleting \"" + source.name + "\": ", target.kind,
                               target.name);
        return Step::Failed;
    });
}

// ---- resource arguments -------------------------------------------------------------------

// One kind and the names asked of it (none: the whole namespace).
struct Selection {
    const ctrl::KindInfo* kind = nullptr;
    std::vector<std::string> names;
};

// kubectl's "all" category holds the workload kinds, not configuration data; here that is
// everything but ConfigMaps, Secrets and EndpointSlices.
bool inAllCategory(const ctrl::KindInfo& kind) {
    return kind.kind != "ConfigMap" && kind.kind != "Secret" && kind.kind != "EndpointSlice";
}

void addSelection(std::vector<Selection>& selections, const ctrl::KindInfo* kind,
                  const std::vector<std::string>& names) {
    for (auto& s : selections) {
        if (s.kind == kind) {
            s.names.insert(s.names.end(), names.begin(), names.end());
            return;
        }
    }
    selections.push_back({kind, names});
}

// kubectl's two argument forms: "TYPE[,TYPE...] [NAME...]" and "TYPE/NAME [TYPE/NAME...]",
// with "all" as a type. `args` is not empty. Prints the first problem.
std::optional<std::vector<Selection>> selectResources(const std::vector<std::string>& args,
                                                      std::string_view command,
                                                      std::ostream& err) {
    std::vector<Selection> selections;
    if (args[0].find('/') != std::string::npos) {
        for (const auto& arg : args) {
            auto slash = arg.find('/');
            if (slash == std::string::npos || slash == 0 || slash + 1 == arg.size() ||
                arg.find('/', slash + 1) != std::string::npos) {
                err << "error: arguments in resource/name form must have a single resource and "
                       "name\n";
                return std::nullopt;
            }
            std::string type = arg.substr(0, slash);
            const ctrl::KindInfo* kind = ctrl::findResource(type);
            if (kind == nullptr) {
                err << unknownKind(type);
                return std::nullopt;
            }
            addSelection(selections, kind, {arg.substr(slash + 1)});
        }
        return selections;
    }
    std::vector<std::string> names(args.begin() + 1, args.end());
    for (const auto& name : names) {
        if (name.find('/') != std::string::npos) {
            err << "error: there is no need to specify a resource type as a separate argument "
                   "when passing arguments in resource/name form (e.g. 'lastmilectl "
                << command << " resource/<resource_name>' instead of 'lastmilectl " << command
                << " resource resource/<resource_name>')\n";
            return std::nullopt;
        }
    }
    std::string_view types = args[0];
    while (true) {
        auto comma = types.find(',');
        std::string type(types.substr(0, comma));
        if (type == "all") {
            for (const auto& kind : ctrl::allKinds()) {
                if (inAllCategory(kind)) {
                    addSelection(selections, &kind, names);
                }
            }
        } else if (const ctrl::KindInfo* kind = ctrl::findResource(type); kind != nullptr) {
            addSelection(selections, kind, names);
        } else {
            err << unknownKind(type);
            return std::nullopt;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        types.remove_prefix(comma + 1);
    }
    return selections;
}

int runDeleteNames(const std::vector<std::string>& args, bool ignoreNotFound,
                   const GlobalOptions& options, CliEnv& env, Session& session) {
    if (args.empty()) {
        env.err << "error: you must specify the type of resource to delete and a name, or -f "
                   "FILE (see 'lastmilectl delete --help')\n";
        return 1;
    }
    auto selections = selectResources(args, "delete", env.err);
    if (!selections) {
        return 1;
    }
    for (const auto& s : *selections) {
        if (s.names.empty()) {
            env.err << "error: resource(s) were provided, but no name was specified\n";
            return 1;
        }
    }
    bool failed = false;
    for (const auto& s : *selections) {
        for (const auto& name : s.names) {
            auto r = session.send("DELETE", itemPath(options.project, *s.kind, "", options.ns, name));
            if (!r) {
                return 1;
            }
            if (r->status == 200 || r->status == 202) {
                env.out << singularRef(*s.kind) << " \"" << name << "\" deleted\n";
            } else if (r->status != 404 || !ignoreNotFound) {
                env.err << renderError(*r, "", s.kind, name);
                failed = true;
            }
        }
    }
    return failed ? 1 : 0;
}

// ---- reading objects ----------------------------------------------------------------------

struct Fetched {
    std::vector<Json> items;
    bool failed = false;       // some name missing or a server error (already printed)
    bool unreachable = false;  // nothing more can be done
};

Fetched fetch(const ctrl::KindInfo& kind, const std::vector<std::string>& names,
              const GlobalOptions& options, bool allNamespaces, CliEnv& env, Session& session) {
    Fetched f;
    if (names.empty()) {
        auto r = session.send(
            "GET", collectionPath(options.project, kind, "", allNamespaces ? "" : options.ns));
        if (!r) {
            f.unreachable = f.failed = true;
            return f;
        }
        if (r->status != 200) {
            env.err << renderError(*r, "", nullptr, "");
            f.failed = true;
            return f;
        }
        Json list = Json::parse(r->body, nullptr, false);
        if (list.is_discarded() || !list.is_object() || !list.contains("items") ||
            !list["items"].is_array()) {
            env.err << "error: the server sent a list that is not JSON\n";
            f.failed = true;
            return f;
        }
        for (auto& item : list["items"]) {
            f.items.push_back(std::move(item));
        }
        return f;
    }
    for (const auto& name : names) {
        auto r = session.send("GET", itemPath(options.project, kind, "", options.ns, name));
        if (!r) {
            f.unreachable = f.failed = true;
            return f;
        }
        if (r->status != 200) {
            env.err << renderError(*r, "", &kind, name);
            f.failed = true;
            continue;
        }
        Json object = Json::parse(r->body, nullptr, false);
        if (object.is_discarded()) {
            env.err << "error: the server sent an object that is not JSON\n";
            f.failed = true;
            continue;
        }
        f.items.push_back(std::move(object));
    }
    return f;
}

int runGet(const std::vector<Selection>& selections, const std::string& output,
           bool allNamespaces, const GlobalOptions& options, CliEnv& env, Session& session) {
    std::size_t named = 0;
    for (const auto& s : selections) {
        named += s.names.size();
    }
    if (allNamespaces && named > 0) {
        env.err << "error: a resource cannot be retrieved by name across all namespaces\n";
        return 1;
    }
    bool failed = false;
    bool printedTable = false;
    std::vector<Json> documents;  // -o yaml/json: one List across every kind
    for (const auto& s : selections) {
        Fetched f = fetch(*s.kind, s.names, options, allNamespaces, env, session);
        if (f.unreachable) {
            return 1;
        }
        failed = failed || f.failed;
        if (output == "yaml" || output == "json") {
            std::move(f.items.begin(), f.items.end(), std::back_inserter(documents));
        } else if (output == "name") {
            env.out << printNames(*s.kind, f.items);
        } else if (!f.items.empty()) {
            TableOptions table;
            table.wide = output == "wide";
            table.allNamespaces = allNamespaces;
            table.now = env.now;
            // Several types: one table each, names qualified by their type, as kubectl does.
            table.withKind = selections.size() > 1;
            env.out << (printedTable ? "\n" : "") << printTable(*s.kind, f.items, table);
            printedTable = true;
        }
    }
    bool single = named == 1;
    if (output == "yaml" && (!documents.empty() || named == 0)) {
        env.out << printYaml(documents, single);
    } else if (output == "json" && (!documents.empty() || named == 0)) {
        env.out << printJson(documents, single);
    } else if ((output.empty() || output == "wide") && !printedTable && named == 0 && !failed) {
        if (allNamespaces) {
            env.err << "No resources found\n";
        } else {
            env.err << "No resources found in " << options.ns << " namespace.\n";
        }
    }
    return failed ? 1 : 0;
}

// `get nodes`: the fleet's live nodes, which are not objects of a project.
int runGetNodes(const std::vector<std::string>& names, const std::string& output,
                const GlobalOptions& options, CliEnv& env, Session& session) {
    auto r = session.send("GET", nodesPath(options.project));
    if (!r) {
        return 1;
    }
    if (r->status != 200) {
        env.err << renderError(*r, "", nullptr, "");
        return 1;
    }
    Json list = Json::parse(r->body, nullptr, false);
    if (list.is_discarded() || !list.is_object() || !list.contains("items") ||
        !list["items"].is_array()) {
        env.err << "error: the server sent a node list that is not JSON\n";
        return 1;
    }
    std::vector<Json> nodes;
    bool failed = false;
    for (const auto& name : names) {
        auto it = std::find_if(list["items"].begin(), list["items"].end(),
                               [&](const Json& n) { return textAt(n, {"name"}) == name; });
        if (it == list["items"].end()) {
            env.err << "Error from server (NotFound): node \"" << name << "\" not found\n";
            failed = true;
        } else {
            nodes.push_back(*it);
        }
    }
    if (names.empty()) {
        nodes.assign(list["items"].begin(), list["items"].end());
    }
    if (output == "yaml" || output == "json") {
        const bool single = names.size() == 1;
        env.out << (output == "yaml" ? printYaml(nodes, single) : printJson(nodes, single));
    } else if (output == "name") {
        for (const auto& n : nodes) {
            env.out << "node/" << textAt(n, {"name"}) << "\n";
        }
    } else if (!nodes.empty()) {
        env.out << printNodes(nodes, env.now);
    }
    return failed ? 1 : 0;
}

int runDescribe(const std::vector<Selection>& selections, const GlobalOptions& options,
                CliEnv& env, Session& session) {
    bool failed = false;
    bool named = false;
    bool wantProfiles = false;  // policies show their profiles, Gateways interception
    std::vector<std::pair<const ctrl::KindInfo*, Json>> objects;
    for (const auto& s : selections) {
        Fetched f = fetch(*s.kind, s.names, options, false, env, session);
        if (f.unreachable) {
            return 1;
        }
        failed = failed || f.failed;
        named = named || !s.names.empty();
        for (auto& item : f.items) {
            wantProfiles = wantProfiles || s.kind->kind == "BackendTLSPolicy" ||
                           s.kind->kind == "Gateway";
            objects.emplace_back(s.kind, std::move(item));
        }
    }
    if (objects.empty() && !named && !failed) {
        env.err << "No resources found in " << options.ns << " namespace.\n";
        return 0;
    }
    std::optional<Json> profiles;
    std::string profilesError;
    if (wantProfiles) {
        auto r = session.send("GET", profilesPath(options.project));
        if (!r) {
            return 1;
        }
        if (r->status == 200) {
            profiles = Json::parse(r->body, nullptr, false);
            if (profiles->is_discarded()) {
                profiles.reset();
                profilesError = "the server sent profiles that are not JSON";
            }
        } else {
            profilesError = "HTTP " + std::to_string(r->status);
        }
    }
    // In a fleet, each node's own state of a Gateway's listeners (an older server has none).
    std::optional<Json> nodes;
    if (std::any_of(objects.begin(), objects.end(),
                    [](const auto& o) { return o.first->kind == "Gateway"; })) {
        auto r = session.send("GET", nodesPath(options.project));
        if (!r) {
            return 1;
        }
        if (r->status == 200) {
            nodes = Json::parse(r->body, nullptr, false);
        }
    }
    bool first = true;
    for (const auto& [kind, object] : objects) {
        if (!first) {
            env.out << "\n\n";
        }
        first = false;
        env.out << describeObject(*kind, object);
        if (kind->kind == "BackendTLSPolicy") {
            if (profiles) {
                std::string policy = textAt(object, {"metadata", "namespace"}) + "/" +
                                     textAt(object, {"metadata", "name"});
                env.out << describeProfiles(*profiles, policy);
            } else {
                env.out << "Compiled Profiles:  <unavailable: " << profilesError << ">\n";
            }
        }
        if (kind->kind == "Gateway" && profiles) {
            env.out << describeInterception(*profiles, object);
        }
        if (kind->kind == "Gateway" && nodes) {
            env.out << describeNodes(*nodes, object);
        }
    }
    return failed ? 1 : 0;
}

int runExplain(const std::string& target, bool recursive, CliEnv& env) {
    auto dot = target.find('.');
    std::string resource = target.substr(0, dot);
    std::string field = dot == std::string::npos ? "" : target.substr(dot + 1);
    const ctrl::KindInfo* kind = ctrl::findResource(resource);
    if (kind == nullptr) {
        env.err << unknownKind(resource);
        return 1;
    }
    auto text = ctrl::explain(*kind, field, recursive);
    if (!text) {
        env.err << "error: " << text.error().context() << "\n";
        return 1;
    }
    env.out << *text;
    if (!text->empty() && text->back() != '\n') {
        env.out << "\n";
    }
    return 0;
}

int runApiResources(CliEnv& env) {
    std::string text = "NAME\tSHORTNAMES\tAPIVERSION\tKIND\n";
    for (const auto& kind : ctrl::allKinds()) {
        std::string shortNames;
        for (const auto& s : kind.shortNames) {
            shortNames += (shortNames.empty() ? "" : ",") + s;
        }
        text += kind.plural + "\t" + shortNames + "\t" + kind.storageApiVersion() + "\t" +
                kind.kind + "\n";
    }
    env.out << tabAlign(text, 6, 3);
    return 0;
}

// ---- parsing ------------------------------------------------------------------------------

constexpr const char* kMainFooter = R"(
Examples:
  # Apply every manifest of a directory, then look at the result
  lastmilectl apply -f ./manifests/
  lastmilectl get backendtlspolicies
  lastmilectl describe btlspolicy secure-backend

  # Talk to a daemon on another socket, in another project
  lastmilectl --server unix:///tmp/lastmile.sock --project team-a get gateways -A

Use "lastmilectl <command> --help" for more information about a command.)";

// Subcommand help does not list the parent's options; kubectl users look there for -n.
constexpr const char* kGlobalFlagsHelp = R"(

Global flags (before or after the command):
  -n, --namespace NS   namespace of the objects (default "default")
  --project P          project (tenant) to work in (default "default")
  --server URL         lastmiled API socket, unix:///path (env LASTMILE_SERVER))";

constexpr const char* kApplyFooter = R"(
Examples:
  # Apply the objects of a file
  lastmilectl apply -f backendtlspolicy.yaml

  # Apply every *.yaml, *.yml and *.json file of a directory, in name order
  lastmilectl apply -f ./manifests/

  # Apply from standard input
  cat policy.yaml | lastmilectl apply -f -)";

constexpr const char* kGetFooter = R"(
Examples:
  # List the policies of the default namespace
  lastmilectl get backendtlspolicies

  # List the policies of every namespace, with their targets and reasons
  lastmilectl get btlspolicy -A -o wide

  # One service as YAML
  lastmilectl get svc echo -o yaml

  # Several types at once, or every routing type ("all": not Secrets or ConfigMaps)
  lastmilectl get gateways,tcproutes,btlspolicy
  lastmilectl get svc/echo gtw/edge
  lastmilectl get all

  # The appliances serving this store (a fleet on etcd lists every live node)
  lastmilectl get nodes

Resource types: see "lastmilectl api-resources"; "nodes" lists the appliances.)";

constexpr const char* kDescribeFooter = R"(
Examples:
  # A policy with its status per Gateway and its compiled TLS profiles
  lastmilectl describe backendtlspolicy secure-backend

  # A gateway in another namespace
  lastmilectl describe gateway edge -n infra)";

constexpr const char* kDeleteFooter = R"(
Examples:
  # Delete a policy by name
  lastmilectl delete backendtlspolicy secure-backend

  # Delete the objects a file describes
  lastmilectl delete -f backendtlspolicy.yaml

  # Delete if present; succeed either way (scripts)
  lastmilectl delete svc/echo gtw/edge --ignore-not-found)";

constexpr const char* kExplainFooter = R"(
Examples:
  # The fields of a BackendTLSPolicy
  lastmilectl explain backendtlspolicies

  # One field, and everything below spec
  lastmilectl explain backendtlspolicy.spec.validation.hostname
  lastmilectl explain btlspolicy.spec --recursive)";

constexpr const char* kApiResourcesFooter = R"(
Examples:
  # Every kind lastmiled serves, with its short names
  lastmilectl api-resources)";

constexpr const char* kVersionFooter = R"(
Examples:
  lastmilectl version)";

int runParsed(const std::vector<std::string>& args, CliEnv& env) {
    CLI::App app{"lastmilectl controls lastmiled, the lastmile TLS-origination appliance.",
                 "lastmilectl"};
    app.footer(kMainFooter);
    app.require_subcommand(1);
    // Global flags are accepted after the command too, as kubectl does.
    app.fallthrough();

    GlobalOptions options;
    options.server = env.defaultServer;
    app.add_option("--server", options.server,
                   "lastmiled API socket as unix:///path (env LASTMILE_SERVER, default " +
                       std::string(kDefaultServer) + ")");
    app.add_option("--project", options.project, "project (tenant) to work in")
        ->capture_default_str();
    auto* namespaceOption = app.add_option("-n,--namespace", options.ns, "namespace of the objects")
                                ->capture_default_str();

    std::vector<std::string> applyFiles;
    auto* apply = app.add_subcommand("apply", "Create or update objects from YAML/JSON manifests");
    apply->footer(std::string(kApplyFooter) + kGlobalFlagsHelp);
    apply->add_option("-f,--filename", applyFiles, "file, directory or - for stdin (repeatable)")
        ->required()
        ->allow_extra_args(false);

    std::string getKind, getOutput;
    std::vector<std::string> getNames;
    bool allNamespaces = false;
    auto* get = app.add_subcommand("get", "List objects or show some of them");
    get->footer(std::string(kGetFooter) + kGlobalFlagsHelp);
    get->add_option("TYPE", getKind,
                    "resource type: plural, singular, short name or kind; TYPE1,TYPE2, all, "
                    "or TYPE/NAME");
    get->add_option("NAME", getNames, "object names (default: all in the namespace)");
    get->add_option("-o,--output", getOutput, "output format: yaml, json, wide or name")
        ->check(CLI::IsMember({"yaml", "json", "wide", "name"}));
    get->add_flag("-A,--all-namespaces", allNamespaces, "list across all namespaces");

    std::string describeKind;
    std::vector<std::string> describeNames;
    auto* describe = app.add_subcommand("describe", "Show one object in detail, with its status");
    describe->footer(std::string(kDescribeFooter) + kGlobalFlagsHelp);
    describe->add_option("TYPE", describeKind, "resource type, TYPE1,TYPE2 or TYPE/NAME");
    describe->add_option("NAME", describeNames, "object names (default: all in the namespace)");

    std::vector<std::string> deleteArgs, deleteFiles;
    bool ignoreNotFound = false;
    auto* del = app.add_subcommand("delete", "Delete objects by type and name, or by manifest");
    del->footer(std::string(kDeleteFooter) + kGlobalFlagsHelp);
    del->add_option("ARGS", deleteArgs, "TYPE[,TYPE...] NAME... or TYPE/NAME...");
    del->add_option("-f,--filename", deleteFiles, "file, directory or - (repeatable)")
        ->allow_extra_args(false);
    del->add_flag("--ignore-not-found", ignoreNotFound,
                  "treat objects that do not exist as deleted (exit 0)");

    std::string explainTarget;
    bool recursive = false;
    auto* explainCmd = app.add_subcommand("explain", "Document a kind or one of its fields");
    explainCmd->footer(kExplainFooter);
    explainCmd->add_option("RESOURCE", explainTarget, "TYPE or TYPE.field.path")->required();
    explainCmd->add_flag("--recursive", recursive, "print every field below, with types");

    auto* apiResources = app.add_subcommand("api-resources", "List the resource types served");
    apiResources->footer(kApiResourcesFooter);
    auto* version = app.add_subcommand("version", "Print the client version");
    version->footer(kVersionFooter);

    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e, env.out, env.err);
        return code == 0 ? 0 : 1;
    }

    options.nsExplicit = namespaceOption->count() > 0;
    if ((apply->parsed() || get->parsed() || describe->parsed() || del->parsed()) &&
        (!checkLabel("project", options.project, env.err) ||
         !checkLabel("namespace", options.ns, env.err))) {
        return 1;
    }
    Session session(env, options);
    if (apply->parsed()) {
        return runApply(applyFiles, options, env, session);
    }
    if (get->parsed() || describe->parsed()) {
        const char* command = get->parsed() ? "get" : "describe";
        if ((get->parsed() ? getKind : describeKind).empty()) {
            // CLI11's "TYPE is required" does not say where the types are listed.
            env.err << "error: you must specify the type of resource to " << command
                    << ". Use \"lastmilectl api-resources\" for a complete list of supported "
                       "resources.\n";
            return 1;
        }
        if (get->parsed() && (getKind == "nodes" || getKind == "node" || getKind == "no")) {
            return runGetNodes(getNames, getOutput, options, env, session);
        }
        std::vector<std::string> resourceArgs{get->parsed() ? getKind : describeKind};
        const auto& names = get->parsed() ? getNames : describeNames;
        resourceArgs.insert(resourceArgs.end(), names.begin(), names.end());
        auto selections = selectResources(resourceArgs, command, env.err);
        if (!selections) {
            return 1;
        }
        return get->parsed()
                   ? runGet(*selections, getOutput, allNamespaces, options, env, session)
                   : runDescribe(*selections, options, env, session);
    }
    if (del->parsed()) {
        if (!deleteFiles.empty()) {
            if (!deleteArgs.empty()) {
                env.err << "error: pass either -f FILE or TYPE NAME..., not both\n";
                return 1;
            }
            return runDeleteFiles(deleteFiles, ignoreNotFound, options, env, session);
        }
        return runDeleteNames(deleteArgs, ignoreNotFound, options, env, session);
    }
    if (explainCmd->parsed()) {
        return runExplain(explainTarget, recursive, env);
    }
    if (apiResources->parsed()) {
        return runApiResources(env);
    }
    if (version->parsed()) {
        env.out << "Client Version: v" << LM_VERSION << "\n";
        return 0;
    }
    return 1;
}

}  // namespace

int runCli(const std::vector<std::string>& args, CliEnv& env) {
    try {
        return runParsed(args, env);
    } catch (const std::exception& e) {
        env.err << "error: " << e.what() << "\n";
    } catch (...) {
        env.err << "error: unexpected failure\n";
    }
    return 1;
}

}  // namespace lastmile::ctl
