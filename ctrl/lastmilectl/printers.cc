// SPDX-License-Identifier: Apache-2.0
// Pure renderers for lastmilectl output: tables, describe pages, server errors.
#include "ctrl/lastmilectl/printers.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <functional>
#include <set>
#include <sstream>

#include "ctrl/api/base64.h"
#include "ctrl/api/decode.h"
#include "base/text.h"

namespace lastmile::ctl {

namespace {

// Safe accessors: printers render whatever the server sent and never throw on odd shapes.
const Json* member(const Json& j, std::string_view key) {
    if (!j.is_object()) {
        return nullptr;
    }
    auto it = j.find(std::string(key));
    return it == j.end() ? nullptr : &*it;
}

const Json* memberPath(const Json& j, std::initializer_list<std::string_view> keys) {
    const Json* cur = &j;
    for (auto key : keys) {
        cur = member(*cur, key);
        if (cur == nullptr) {
            return nullptr;
        }
    }
    return cur;
}

std::string scalarText(const Json& v) {
    if (v.is_string()) {
        return v.get<std::string>();
    }
    if (v.is_null()) {
        return "";
    }
    return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}


const Json& emptyArray() {
    static const Json kEmpty = Json::array();
    return kEmpty;
}

const Json& arrayAt(const Json& j, std::initializer_list<std::string_view> keys) {
    const Json* v = memberPath(j, keys);
    return v != nullptr && v->is_array() ? *v : emptyArray();
}

std::string orNone(std::string s) {
    return s.empty() ? "<none>" : s;
}

std::vector<std::string> splitLines(std::string_view text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        auto nl = text.find('\n', start);
        if (nl == std::string_view::npos) {
            lines.emplace_back(text.substr(start));
            break;
        }
        lines.emplace_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

// A condition of `conditions` by type, or nullptr.
const Json* condition(const Json& conditions, std::string_view type) {
    if (!conditions.is_array()) {
        return nullptr;
    }
    for (const auto& c : conditions) {
        if (textAt(c, {"type"}) == type) {
            return &c;
        }
    }
    return nullptr;
}

// ---- get columns --------------------------------------------------------------------------

struct Columns {
    std::vector<std::string> headers;      // between NAME and AGE
    std::vector<std::string> wideHeaders;  // after AGE, with -o wide
    std::function<std::vector<std::string>(const Json&)> cells;
    std::function<std::vector<std::string>(const Json&)> wideCells;
};

std::string servicePorts(const Json& svc) {
    std::vector<std::string> parts;
    for (const auto& p : arrayAt(svc, {"spec", "ports"})) {
        std::string proto = textAt(p, {"protocol"});
        parts.push_back(textAt(p, {"port"}) + "/" + (proto.empty() ? "TCP" : proto));
    }
    return orNone(join(parts, ","));
}

std::string endpointSliceEndpoints(const Json& slice) {
    std::vector<std::string> addrs;
    for (const auto& ep : arrayAt(slice, {"endpoints"})) {
        for (const auto& a : arrayAt(ep, {"addresses"})) {
            addrs.push_back(scalarText(a));
        }
    }
    if (addrs.empty()) {
        return "<none>";
    }
    // kubectl shows the first three and counts the rest.
    constexpr std::size_t kShown = 3;
    if (addrs.size() <= kShown) {
        return join(addrs, ",");
    }
    std::vector<std::string> first(addrs.begin(), addrs.begin() + kShown);
    return join(first, ",") + " + " + std::to_string(addrs.size() - kShown) + " more...";
}

std::string endpointSlicePorts(const Json& slice) {
    std::vector<std::string> parts;
    for (const auto& p : arrayAt(slice, {"ports"})) {
        std::string port = textAt(p, {"port"});
        parts.push_back(port.empty() ? "<unset>" : port);
    }
    return orNone(join(parts, ","));
}

std::size_t countEntries(const Json& object, std::initializer_list<std::string_view> keys) {
    std::size_t n = 0;
    for (auto key : keys) {
        const Json* v = member(object, key);
        if (v != nullptr && v->is_object()) {
            n += v->size();
        }
    }
    return n;
}

std::string policyTargets(const Json& policy) {
    std::vector<std::string> parts;
    for (const auto& t : arrayAt(policy, {"spec", "targetRefs"})) {
        std::string s = textAt(t, {"kind"}) + "/" + textAt(t, {"name"});
        std::string section = textAt(t, {"sectionName"});
        if (!section.empty()) {
            s += ":" + section;
        }
        parts.push_back(s);
    }
    return orNone(join(parts, ","));
}

// REASON column: the reasons of every condition that is not True, else Accepted's reason.
std::string policyReason(const Json& policy) {
    std::vector<std::string> reasons;
    std::set<std::string> seen;
    std::string acceptedReason;
    for (const auto& ancestor : arrayAt(policy, {"status", "ancestors"})) {
        for (const auto& c : arrayAt(ancestor, {"conditions"})) {
            std::string reason = textAt(c, {"reason"});
            if (textAt(c, {"type"}) == "Accepted" && acceptedReason.empty()) {
                acceptedReason = reason;
            }
            if (textAt(c, {"status"}) != "True" && !reason.empty() && seen.insert(reason).second) {
                reasons.push_back(reason);
            }
        }
    }
    if (!reasons.empty()) {
        return join(reasons, ",");
    }
    return orNone(acceptedReason);
}

Columns columnsFor(const ctrl::KindInfo& kind) {
    const std::string& k = kind.kind;
    if (k == "Gateway") {
        return {{"CLASS", "ADDRESS", "PROGRAMMED"},
                {},
                [](const Json& gw) {
                    std::string address;
                    const auto& statusAddrs = arrayAt(gw, {"status", "addresses"});
                    const auto& specAddrs = arrayAt(gw, {"spec", "addresses"});
                    if (!statusAddrs.empty()) {
                        address = textAt(statusAddrs[0], {"value"});
                    } else if (!specAddrs.empty()) {
                        address = textAt(specAddrs[0], {"value"});
                    }
                    const Json* programmed =
                        condition(arrayAt(gw, {"status", "conditions"}), "Programmed");
                    return std::vector<std::string>{
                        textAt(gw, {"spec", "gatewayClassName"}), address,
                        programmed == nullptr ? "Unknown" : textAt(*programmed, {"status"})};
                },
                nullptr};
    }
    if (k == "HTTPRoute") {
        return {{"HOSTNAMES"},
                {},
                [](const Json& route) {
                    std::vector<std::string> hosts;
                    for (const auto& h : arrayAt(route, {"spec", "hostnames"})) {
                        hosts.push_back(scalarText(h));
                    }
                    return std::vector<std::string>{join(hosts, ",")};
                },
                nullptr};
    }
    if (k == "Service") {
        return {{"TYPE", "PORT(S)"},
                {"SELECTOR"},
                [](const Json& svc) {
                    std::string type = textAt(svc, {"spec", "type"});
                    return std::vector<std::string>{type.empty() ? "ClusterIP" : type,
                                                    servicePorts(svc)};
                },
                [](const Json& svc) {
                    std::vector<std::string> sel;
                    const Json* s = memberPath(svc, {"spec", "selector"});
                    if (s != nullptr && s->is_object()) {
                        for (const auto& [key, value] : s->items()) {
                            sel.push_back(key + "=" + scalarText(value));
                        }
                    }
                    return std::vector<std::string>{orNone(join(sel, ","))};
                }};
    }
    if (k == "EndpointSlice") {
        return {{"ADDRESSTYPE", "PORTS", "ENDPOINTS"},
                {},
                [](const Json& slice) {
                    return std::vector<std::string>{textAt(slice, {"addressType"}),
                                                    endpointSlicePorts(slice),
                                                    endpointSliceEndpoints(slice)};
                },
                nullptr};
    }
    if (k == "ConfigMap") {
        return {{"DATA"},
                {},
                [](const Json& cm) {
                    return std::vector<std::string>{
                        std::to_string(countEntries(cm, {"data", "binaryData"}))};
                },
                nullptr};
    }
    if (k == "Secret") {
        return {{"TYPE", "DATA"},
                {},
                [](const Json& secret) {
                    std::string type = textAt(secret, {"type"});
                    return std::vector<std::string>{
                        type.empty() ? "Opaque" : type,
                        std::to_string(countEntries(secret, {"data", "stringData"}))};
                },
                nullptr};
    }
    if (k == "BackendTLSPolicy") {
        return {{"HOSTNAME", "ACCEPTED"},
                {"TARGETS", "REASON"},
                [](const Json& policy) {
                    return std::vector<std::string>{
                        textAt(policy, {"spec", "validation", "hostname"}),
                        acceptedSummary(policy)};
                },
                [](const Json& policy) {
                    return std::vector<std::string>{policyTargets(policy), policyReason(policy)};
                }};
    }
    return {{}, {}, nullptr, nullptr};
}

// ---- describe -----------------------------------------------------------------------------

// kubectl's smartLabelFor: "caCertificateRefs" -> "Ca Certificate Refs", "URIValue" -> "URI Value".
std::string label(std::string_view key) {
    std::string out;
    for (std::size_t i = 0; i < key.size(); ++i) {
        char c = key[i];
        bool upper = std::isupper(static_cast<unsigned char>(c)) != 0;
        if (i > 0 && upper) {
            bool prevLower = std::islower(static_cast<unsigned char>(key[i - 1])) != 0 ||
                             std::isdigit(static_cast<unsigned char>(key[i - 1])) != 0;
            bool nextLower =
                i + 1 < key.size() && std::islower(static_cast<unsigned char>(key[i + 1])) != 0;
            bool prevUpper = std::isupper(static_cast<unsigned char>(key[i - 1])) != 0;
            if (prevLower || (prevUpper && nextLower)) {
                out += ' ';
            }
        }
        if (i == 0) {
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        out += c;
    }
    return out;
}

std::string indent(int level) {
    return std::string(static_cast<std::size_t>(level) * 2, ' ');
}

// Writes lines meant for tabAlign(0, 2): "<indent>Key:\tvalue".
class DescribeWriter {
public:
    void line(int level, std::string_view text) {
        out_ += indent(level);
        out_ += text;
        out_ += '\n';
    }
    void field(int level, std::string_view key, std::string_view value) {
        out_ += indent(level);
        out_ += key;
        out_ += ":\t";
        out_ += value;
        out_ += '\n';
    }
    void raw(std::string_view text) { out_ += text; }
    const std::string& text() const { return out_; }

private:
    std::string out_;
};

void conditionTable(DescribeWriter& w, int level, const Json& conditions) {
    w.line(level, "Conditions:");
    if (!conditions.is_array() || conditions.empty()) {
        w.line(level + 1, "<none>");
        return;
    }
    // A table is its own tabAlign block; it is rendered separately so that its columns use
    // kubectl's table spacing and do not widen the key column of the surrounding fields.
    std::string table =
        "Type\tStatus\tReason\tMessage\tObserved Generation\tLast Transition Time\n"
        "----\t------\t------\t-------\t-------------------\t--------------------\n";
    for (const auto& c : conditions) {
        std::string message = textAt(c, {"message"});
        std::replace(message.begin(), message.end(), '\n', ' ');
        std::replace(message.begin(), message.end(), '\t', ' ');
        table += textAt(c, {"type"}) + "\t" + textAt(c, {"status"}) + "\t" + textAt(c, {"reason"}) +
                 "\t" + message + "\t" + textAt(c, {"observedGeneration"}) + "\t" +
                 textAt(c, {"lastTransitionTime"}) + "\n";
    }
    for (const auto& l : splitLines(tabAlign(table, 0, 2))) {
        // Two spaces instead of tabs keep the outer alignment pass from touching the table.
        w.line(level + 1, l);
    }
}

// "Gateway default/gw (gateway.networking.k8s.io), section http"
std::string parentRefText(const Json& ref, const std::string& defaultNs) {
    std::string ns = textAt(ref, {"namespace"});
    std::string s = textAt(ref, {"kind"});
    if (s.empty()) {
        s = "Gateway";
    }
    s += " " + (ns.empty() ? defaultNs : ns) + "/" + textAt(ref, {"name"});
    std::string section = textAt(ref, {"sectionName"});
    if (!section.empty()) {
        s += ", section " + section;
    }
    std::string port = textAt(ref, {"port"});
    if (!port.empty()) {
        s += ", port " + port;
    }
    return s;
}

void tree(DescribeWriter& w, int level, const Json& value, const std::string& ns, bool secret,
          bool rawKeys = false, bool base64 = false);

// Size of a secret value as kubectl shows it: `data` holds base64 (counted decoded), stringData
// plain text; a value that is not valid base64 is counted as written rather than hidden.
std::size_t secretSize(const std::string& value, bool base64) {
    if (base64) {
        if (auto bytes = ctrl::base64Decode(value)) {
            return bytes->size();
        }
    }
    return value.size();
}

// Fields whose keys are the user's (data keys, label names, option names): kept verbatim.
bool isUserMap(const std::string& key) {
    return key == "data" || key == "binaryData" || key == "stringData" || key == "labels" ||
           key == "annotations" || key == "selector" || key == "matchLabels" || key == "options";
}

void treeField(DescribeWriter& w, int level, const std::string& key, const Json& value,
               const std::string& ns, bool secret, bool rawKey = false, bool base64 = false) {
    const std::string name = rawKey ? key : label(key);
    if (key == "conditions" && value.is_array()) {
        conditionTable(w, level, value);
        return;
    }
    if ((key == "ancestorRef" || key == "parentRef") && value.is_object()) {
        w.field(level, name, parentRefText(value, ns));
        return;
    }
    if (secret && value.is_string()) {
        // Secret values never go to a terminal; kubectl shows sizes too, of the decoded bytes.
        w.field(level, name,
                std::to_string(secretSize(value.get<std::string>(), base64)) + " bytes");
        return;
    }
    if (value.is_object()) {
        if (value.empty()) {
            w.field(level, name, "<none>");
            return;
        }
        w.line(level, name + ":");
        tree(w, level + 1, value, ns, secret, isUserMap(key), base64);
        return;
    }
    if (value.is_array()) {
        if (value.empty()) {
            w.field(level, name, "<none>");
            return;
        }
        w.line(level, name + ":");
        for (const auto& item : value) {
            if (item.is_object()) {
                tree(w, level + 1, item, ns, secret);
            } else {
                w.line(level + 1, scalarText(item));
            }
        }
        return;
    }
    std::string text = scalarText(value);
    if (text.find('\n') != std::string::npos) {
        // Multi-line values (PEM bundles) go below their key, indented.
        w.line(level, name + ":");
        for (const auto& l : splitLines(text)) {
            w.line(level + 1, l);
        }
        return;
    }
    w.field(level, name, text);
}

void tree(DescribeWriter& w, int level, const Json& value, const std::string& ns, bool secret,
          bool rawKeys, bool base64) {
    if (!value.is_object()) {
        w.line(level, scalarText(value));
        return;
    }
    for (const auto& [key, child] : value.items()) {
        treeField(w, level, key, child, ns, secret, rawKeys, base64);
    }
}

std::string mapText(const Json* m) {
    if (m == nullptr || !m->is_object() || m->empty()) {
        return "<none>";
    }
    std::vector<std::string> parts;
    for (const auto& [key, value] : m->items()) {
        parts.push_back(key + "=" + scalarText(value));
    }
    return join(parts, "\n\t");
}

std::string listOrDefault(const Json* list, std::string_view fallback) {
    if (list == nullptr || !list->is_array() || list->empty()) {
        return std::string(fallback);
    }
    std::vector<std::string> parts;
    for (const auto& v : *list) {
        parts.push_back(scalarText(v));
    }
    return join(parts, ", ");
}

std::string yesNo(const Json* v, std::string_view yes, std::string_view no,
                  std::string_view unknown) {
    if (v == nullptr || !v->is_boolean()) {
        return std::string(unknown);
    }
    return std::string(v->get<bool>() ? yes : no);
}

std::string reasonFromCode(long code) {
    switch (code) {
        case 400:
            return "BadRequest";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "NotFound";
        case 405:
            return "MethodNotAllowed";
        case 409:
            return "Conflict";
        case 422:
            return "Invalid";
        case 500:
            return "InternalError";
        case 503:
            return "ServiceUnavailable";
        default:
            return "Unknown";
    }
}

}  // namespace

std::string textAt(const Json& j, std::initializer_list<std::string_view> keys) {
    const Json* v = memberPath(j, keys);
    return v == nullptr ? std::string() : scalarText(*v);
}

// ---- public -------------------------------------------------------------------------------

std::string tabAlign(std::string_view text, std::size_t minWidth, std::size_t padding) {
    std::vector<std::vector<std::string>> lines;
    for (const auto& l : splitLines(text)) {
        std::vector<std::string> cells;
        std::size_t start = 0;
        while (true) {
            auto tab = l.find('\t', start);
            if (tab == std::string::npos) {
                cells.push_back(l.substr(start));
                break;
            }
            cells.push_back(l.substr(start, tab - start));
            start = tab + 1;
        }
        lines.push_back(std::move(cells));
    }

    std::string out;
    std::vector<std::size_t> widths;
    auto write = [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i) {
            const auto& cells = lines[i];
            for (std::size_t j = 0; j < cells.size(); ++j) {
                out += cells[j];
                if (j + 1 < cells.size() && j < widths.size() && cells[j].size() < widths[j]) {
                    out.append(widths[j] - cells[j].size(), ' ');
                }
            }
            out += '\n';
        }
    };
    // Go's tabwriter algorithm: a column block is a run of lines that all have a cell in the
    // current column; blocks nest, so each run gets its own width.
    std::function<void(std::size_t, std::size_t)> format = [&](std::size_t line0,
                                                               std::size_t line1) {
        std::size_t column = widths.size();
        for (std::size_t cur = line0; cur < line1; ++cur) {
            if (column + 1 >= lines[cur].size()) {
                continue;
            }
            write(line0, cur);
            line0 = cur;
            std::size_t width = minWidth;
            for (; cur < line1; ++cur) {
                if (column + 1 >= lines[cur].size()) {
                    break;
                }
                width = std::max(width, lines[cur][column].size() + padding);
            }
            widths.push_back(width);
            format(line0, cur);
            widths.pop_back();
            line0 = cur;
            if (cur >= line1) {
                return;
            }
        }
        write(line0, line1);
    };
    format(0, lines.size());
    return out;
}

std::string formatAge(std::int64_t seconds) {
    if (seconds < -1) {
        return "<invalid>";
    }
    if (seconds < 0) {
        return "0s";
    }
    auto fmt = [](std::int64_t a, const char* ua, std::int64_t b, const char* ub) {
        std::string s = std::to_string(a) + ua;
        if (b != 0) {
            s += std::to_string(b) + ub;
        }
        return s;
    };
    if (seconds < 60 * 2) {
        return std::to_string(seconds) + "s";
    }
    std::int64_t minutes = seconds / 60;
    if (minutes < 10) {
        return fmt(minutes, "m", seconds % 60, "s");
    }
    if (minutes < 60 * 3) {
        return std::to_string(minutes) + "m";
    }
    std::int64_t hours = seconds / 3600;
    if (hours < 8) {
        return fmt(hours, "h", minutes % 60, "m");
    }
    if (hours < 48) {
        return std::to_string(hours) + "h";
    }
    if (hours < 24 * 8) {
        return fmt(hours / 24, "d", hours % 24, "h");
    }
    if (hours < 24 * 365 * 2) {
        return std::to_string(hours / 24) + "d";
    }
    if (hours < 24 * 365 * 8) {
        return fmt(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    return std::to_string(hours / 24 / 365) + "y";
}

std::string ageOf(const Json& object, std::int64_t now) {
    auto created = parseRfc3339(textAt(object, {"metadata", "creationTimestamp"}));
    if (!created) {
        return "<unknown>";
    }
    return formatAge(now - *created);
}

std::string printNodes(const std::vector<Json>& nodes, std::int64_t now) {
    std::string text = "NAME\tADDRESS\tENGINES\tPROFILE-GENERATION\tHEARTBEAT\n";
    for (const auto& node : nodes) {
        std::vector<std::string> engines;
        if (auto list = node.find("engines"); list != node.end() && list->is_array()) {
            for (const auto& e : *list) {
                engines.push_back(e.is_string() ? e.get<std::string>() : textAt(e, {"name"}));
            }
        }
        auto beat = parseRfc3339(textAt(node, {"heartbeat"}));
        text += textAt(node, {"name"}) + "\t" + textAt(node, {"address"}) + "\t" +
                (engines.empty() ? std::string("<none>") : join(engines, ",")) + "\t" +
                textAt(node, {"profileGeneration"}) + "\t" +
                (beat ? formatAge(now - *beat) + " ago" : std::string("<unknown>")) + "\n";
    }
    return tabAlign(text, 0, 3);
}

std::string singularRef(const ctrl::KindInfo& kind) {
    return kind.group.empty() ? kind.singular : kind.singular + "." + kind.group;
}

std::string pluralRef(const ctrl::KindInfo& kind) {
    return kind.group.empty() ? kind.plural : kind.plural + "." + kind.group;
}

std::string printTable(const ctrl::KindInfo& kind, const std::vector<Json>& items,
                       const TableOptions& options) {
    Columns cols = columnsFor(kind);
    std::vector<std::string> header;
    if (options.allNamespaces) {
        header.push_back("NAMESPACE");
    }
    header.push_back("NAME");
    header.insert(header.end(), cols.headers.begin(), cols.headers.end());
    header.push_back("AGE");
    if (options.wide) {
        header.insert(header.end(), cols.wideHeaders.begin(), cols.wideHeaders.end());
    }
    std::string text = join(header, "\t") + "\n";
    for (const auto& item : items) {
        std::vector<std::string> row;
        if (options.allNamespaces) {
            row.push_back(textAt(item, {"metadata", "namespace"}));
        }
        std::string name = textAt(item, {"metadata", "name"});
        row.push_back(options.withKind ? singularRef(kind) + "/" + name : name);
        if (cols.cells) {
            auto cells = cols.cells(item);
            row.insert(row.end(), cells.begin(), cells.end());
        }
        row.push_back(ageOf(item, options.now));
        if (options.wide && cols.wideCells) {
            auto cells = cols.wideCells(item);
            row.insert(row.end(), cells.begin(), cells.end());
        }
        text += join(row, "\t") + "\n";
    }
    // kubectl's table writer: minimum width 6, padding 3.
    return tabAlign(text, 6, 3);
}

std::string printNames(const ctrl::KindInfo& kind, const std::vector<Json>& items) {
    std::string out;
    for (const auto& item : items) {
        out += singularRef(kind) + "/" + textAt(item, {"metadata", "name"}) + "\n";
    }
    return out;
}

namespace {
Json listOf(const std::vector<Json>& items) {
    Json list = Json::object();
    list["apiVersion"] = "v1";
    list["items"] = Json::array();
    for (const auto& item : items) {
        list["items"].push_back(item);
    }
    list["kind"] = "List";
    list["metadata"] = Json{{"resourceVersion", ""}};
    return list;
}
}  // namespace

std::string printYaml(const std::vector<Json>& items, bool single) {
    std::string out =
        single && items.size() == 1 ? ctrl::toYaml(items[0]) : ctrl::toYaml(listOf(items));
    if (!out.empty() && out.back() != '\n') {
        out += '\n';
    }
    return out;
}

std::string printJson(const std::vector<Json>& items, bool single) {
    const Json& doc = single && items.size() == 1 ? items[0] : listOf(items);
    return doc.dump(4, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string acceptedSummary(const Json& policy) {
    const auto& ancestors = arrayAt(policy, {"status", "ancestors"});
    if (ancestors.empty()) {
        return "Unknown";
    }
    bool allTrue = true;
    for (const auto& ancestor : ancestors) {
        const Json* accepted = condition(arrayAt(ancestor, {"conditions"}), "Accepted");
        std::string status = accepted == nullptr ? "Unknown" : textAt(*accepted, {"status"});
        if (status == "False") {
            return "False";
        }
        if (status != "True") {
            allTrue = false;
        }
    }
    return allTrue ? "True" : "Unknown";
}

std::string describeObject(const ctrl::KindInfo& kind, const Json& object) {
    DescribeWriter w;
    std::string ns = textAt(object, {"metadata", "namespace"});
    w.field(0, "Name", textAt(object, {"metadata", "name"}));
    w.field(0, "Namespace", ns);
    w.field(0, "Labels", mapText(memberPath(object, {"metadata", "labels"})));
    w.field(0, "Annotations", mapText(memberPath(object, {"metadata", "annotations"})));
    w.field(0, "API Version", textAt(object, {"apiVersion"}));
    w.field(0, "Kind", textAt(object, {"kind"}));
    w.line(0, "Metadata:");
    w.field(1, "Creation Timestamp", textAt(object, {"metadata", "creationTimestamp"}));
    w.field(1, "Generation", textAt(object, {"metadata", "generation"}));
    w.field(1, "Resource Version", textAt(object, {"metadata", "resourceVersion"}));
    w.field(1, "UID", textAt(object, {"metadata", "uid"}));
    bool secret = kind.kind == "Secret";
    bool sawStatus = false;
    if (object.is_object()) {
        for (const auto& [key, value] : object.items()) {
            if (key == "apiVersion" || key == "kind" || key == "metadata") {
                continue;
            }
            sawStatus = sawStatus || key == "status";
            bool values = (key == "data" || key == "stringData" || key == "binaryData");
            treeField(w, 0, key, value, ns, secret && values, false, key != "stringData");
        }
    }
    if (!sawStatus && (kind.kind == "BackendTLSPolicy" || kind.kind == "Gateway" ||
                       kind.kind == "HTTPRoute" || kind.kind == "TCPRoute")) {
        w.field(0, "Status", "<none>");
    }
    return tabAlign(w.text(), 0, 2);
}

namespace {

// Where a profile's sessions go on this host: the first usable engine that serves the
// preference (a session whose cipher or state an engine cannot take falls to the next one),
// and why the engines before it were passed over.
std::string recordEngine(const Json& profileList, const std::string& offload) {
    std::vector<std::string> passed;
    for (const auto& e : arrayAt(profileList, {"recordEngines"})) {
        const std::string name = textAt(e, {"name"});
        const auto serves = arrayAt(e, {"serves"});
        if (std::none_of(serves.begin(), serves.end(), [&](const Json& s) {
                return s.is_string() && s.get<std::string>() == offload;
            })) {
            passed.push_back(name + " not wanted (offload: " + offload + ")");
            continue;
        }
        const Json* usable = member(e, "usable");
        if (usable == nullptr || !usable->is_boolean() || !usable->get<bool>()) {
            passed.push_back(name + " unusable: " + textAt(e, {"detail"}));
            continue;
        }
        std::string text = name + " (" + textAt(e, {"detail"});
        for (const auto& why : passed) {
            text += "; " + why;
        }
        return text + ")";
    }
    return "<unknown>";
}

}  // namespace

std::string describeInterception(const Json& profileList, const Json& gateway) {
    const Json* interception = member(profileList, "interception");
    if (interception == nullptr || !interception->is_object()) {
        return "";
    }
    std::vector<std::string> addresses;
    for (const auto& a : arrayAt(gateway, {"status", "addresses"})) {
        addresses.push_back(textAt(a, {"value"}));
    }
    DescribeWriter w;
    w.line(0, "Interception:");
    w.field(1, "Virtual Addresses", addresses.empty() ? "<none>" : join(addresses, ", "));
    for (const auto& m : arrayAt(*interception, {"modes"})) {
        const Json* usable = member(m, "usable");
        const bool ok = usable != nullptr && usable->is_boolean() && usable->get<bool>();
        w.field(1, "Mode " + textAt(m, {"name"}),
                ok ? std::string("usable") : "unusable: " + textAt(m, {"detail"}));
    }
    for (const auto& a : arrayAt(*interception, {"attachments"})) {
        w.field(1, textAt(a, {"program"}) + " on " + textAt(a, {"target"}),
                yesNo(member(a, "attached"), "attached", "detached", "<unknown>"));
    }
    return tabAlign(w.text(), 0, 2);
}

std::string describeNodes(const Json& nodeList, const Json& gateway) {
    const std::string prefix = textAt(gateway, {"metadata", "namespace"}) + "/" +
                               textAt(gateway, {"metadata", "name"}) + "/";
    DescribeWriter w;
    bool any = false;
    for (const auto& node : arrayAt(nodeList, {"items"})) {
        const Json* listeners = member(node, "listeners");
        if (listeners == nullptr || !listeners->is_object()) {
            continue;
        }
        for (auto it = listeners->begin(); it != listeners->end(); ++it) {
            if (it.key().rfind(prefix, 0) != 0) {
                continue;
            }
            if (!any) {
                w.line(0, "Nodes:");
                any = true;
            }
            w.field(1, textAt(node, {"name"}) + " " + it.key().substr(prefix.size()),
                    yesNo(member(it.value(), "bound"), "Programmed",
                          "not programmed: " + textAt(it.value(), {"message"}), "<unknown>"));
        }
    }
    return any ? tabAlign(w.text(), 0, 2) : "";
}

std::string describeProfiles(const Json& profileList, const std::string& policy) {
    std::vector<const Json*> mine;
    for (const auto& p : arrayAt(profileList, {"items"})) {
        if (textAt(p, {"policy"}) == policy) {
            mine.push_back(&p);
        }
    }
    if (mine.empty()) {
        // Printed after the describe page, not through tabAlign: no raw tab.
        return "Compiled Profiles:  <none>\n";
    }
    DescribeWriter w;
    w.line(0, "Compiled Profiles:");
    bool first = true;
    for (const Json* pp : mine) {
        const Json& p = *pp;
        if (!first) {
            w.line(0, "");
        }
        first = false;
        w.field(1, "Backend",
                textAt(p, {"backend", "namespace"}) + "/" + textAt(p, {"backend", "service"}) +
                    ":" + textAt(p, {"backend", "port"}));
        w.field(1, "SNI", orNone(textAt(p, {"sni"})));
        const Json* verify = member(p, "verify");
        std::string verifyText = "<none>";
        if (verify != nullptr && member(*verify, "hostname") != nullptr) {
            verifyText = "hostname " + textAt(*verify, {"hostname"});
        } else if (verify != nullptr && member(*verify, "subjectAltNames") != nullptr) {
            std::vector<std::string> sans;
            for (const auto& san : arrayAt(*verify, {"subjectAltNames"})) {
                sans.push_back(textAt(san, {"type"}) + ":" + textAt(san, {"value"}));
            }
            verifyText = "SANs [" + join(sans, ", ") + "]";
        }
        w.field(1, "Verify", verifyText);
        w.field(1, "Trust", orNone(textAt(p, {"trust"})));
        const auto& anchors = arrayAt(p, {"trustAnchors"});
        if (!anchors.empty()) {
            // A value on this line keeps the profile one alignment block.
            w.field(1, "Trust Anchors", std::to_string(anchors.size()));
            for (const auto& a : anchors) {
                w.field(2, "Subject", textAt(a, {"subject"}));
                w.field(2, "Not After", textAt(a, {"notAfter"}));
                w.field(2, "SHA-256", textAt(a, {"sha256"}));
            }
        }
        std::string minV = textAt(p, {"minVersion"});
        std::string maxV = textAt(p, {"maxVersion"});
        w.field(1, "Versions", (minV.empty() ? "1.2" : minV) + "-" + (maxV.empty() ? "1.3" : maxV));
        w.field(1, "Ciphers", listOrDefault(member(p, "cipherSuites"), "default"));
        w.field(1, "Curves", listOrDefault(member(p, "ecdhCurves"), "default"));
        w.field(1, "Signature Algorithms",
                listOrDefault(member(p, "signatureAlgorithms"), "default"));
        w.field(1, "ALPN", listOrDefault(member(p, "alpnProtocols"), "<none>"));
        w.field(1, "Session Resumption",
                yesNo(member(p, "sessionResumption"), "enabled", "disabled", "<unknown>"));
        std::string offload = textAt(p, {"offload"});
        if (offload.empty()) {
            offload = "auto";
        }
        w.field(1, "Engine Preference", offload);
        w.field(1, "Record Engine", recordEngine(profileList, offload));
        const Json* warm = member(p, "warmPool");
        w.field(1, "Warm Pool",
                warm != nullptr && warm->is_number_unsigned() && warm->get<unsigned>() > 0
                    ? std::to_string(warm->get<unsigned>()) + " per endpoint"
                    : "off");
        w.field(1, "Client Certificate", yesNo(member(p, "clientCertificate"), "yes", "no", "no"));
        std::string failClosed = textAt(p, {"failClosedReason"});
        if (!failClosed.empty()) {
            w.field(1, "Fail Closed", failClosed);
        }
    }
    return tabAlign(w.text(), 0, 2);
}

std::string formatServerError(long httpCode, std::string_view body, std::string_view context) {
    Json status = Json::parse(body, nullptr, false);
    if (status.is_discarded() || !status.is_object() || textAt(status, {"kind"}) != "Status") {
        std::string text(body);
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
            text.pop_back();
        }
        std::string msg = "the server responded with HTTP " + std::to_string(httpCode);
        if (!text.empty() && text.size() < 512) {
            msg += ": " + text;
        }
        return "Error from server (" + reasonFromCode(httpCode) + "): " + std::string(context) +
               msg + "\n";
    }
    std::string reason = textAt(status, {"reason"});
    if (reason.empty()) {
        reason = reasonFromCode(httpCode);
    }
    const auto& causes = arrayAt(status, {"details", "causes"});
    std::string out = "Error from server (" + reason + "): " + std::string(context);
    if (!causes.empty()) {
        // The causes carry the detail one per line; the message would repeat them, so only
        // its 'Kind "name" is invalid' head is kept.
        std::string message = textAt(status, {"message"});
        std::string headline;
        constexpr std::string_view kInvalid = " is invalid";
        if (auto at = message.find(kInvalid); at != std::string::npos) {
            headline = message.substr(0, at + kInvalid.size()) + ":";
        } else if (reason == "Invalid" && !textAt(status, {"details", "name"}).empty()) {
            // details.kind may be the resource (plural) name; show the kind as kubectl does.
            std::string kindName = textAt(status, {"details", "kind"});
            if (const ctrl::KindInfo* k = ctrl::findResource(kindName); k != nullptr) {
                kindName = k->kind;
            }
            headline = kindName + " \"" + textAt(status, {"details", "name"}) + "\" is invalid:";
        } else {
            headline = message.empty()
                           ? "the server responded with HTTP " + std::to_string(httpCode) + ":"
                           : message;
        }
        out += headline + "\n";
        for (const auto& c : causes) {
            std::string field = textAt(c, {"field"});
            std::string text = textAt(c, {"message"});
            out += "  " + (field.empty() ? text : field + ": " + text) + "\n";
        }
        return out;
    }
    std::string message = textAt(status, {"message"});
    if (message.empty()) {
        message = "the server responded with HTTP " + std::to_string(httpCode);
    }
    return out + message + "\n";
}

}  // namespace lastmile::ctl
