// SPDX-License-Identifier: Apache-2.0
// lm-fleet-bench: what fleet mode (issue 13) costs and how it behaves when etcd fails, measured
// in one run: API write latency and lastmiled CPU on SQLite and on a 3-member etcd, propagation
// from one node to the two others, etcd leader failover and quorum loss. The fleet is started as
// tests/integration/fleet_test.cc does: three nodes at 127.0.0.{2,3,4} on the same etcd.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/client.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/process.h"

namespace {

namespace test = lastmile::test;
using namespace std::chrono;
using Clock = steady_clock;

constexpr int kNodes = 3;
constexpr const char* kPath = "/projects/default/api/v1/namespaces/default/configmaps/";
constexpr seconds kBound{20};  // no single wait of the bench lasts longer

double msSince(Clock::time_point start) {
    return duration<double, std::milli>(Clock::now() - start).count();
}

// utime + stime of every thread of `pid`, in seconds (/proc/PID/stat fields 14 and 15).
double cpuSeconds(pid_t pid) {
    const std::string stat = test::readFile("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    for (int i = 3; i <= 13; ++i) {
        rest >> field;
    }
    rest >> utime >> stime;
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double cpuSeconds(const std::vector<pid_t>& group) {
    double sum = 0;
    for (pid_t p : group) {
        sum += cpuSeconds(p);
    }
    return sum;
}

// One lastmiled with its API socket and directory; `config` empty: the default store (SQLite).
class Node {
public:
    Node(const std::string& binary, const std::string& dir, const std::string& config) : dir_(dir) {
        ::mkdir(dir.c_str(), 0700);
        ::mkdir((dir + "/logs").c_str(), 0700);
        std::vector<std::string> argv{binary, "--state-dir", dir + "/state", "--api-socket",
                                      socket(), "--admin-http", "127.0.0.1:0"};
        if (!config.empty()) {
            std::ofstream(dir + "/config.yaml") << config;
            argv.insert(argv.end(), {"--config", dir + "/config.yaml"});
        }
        notify_ = std::make_unique<test::NotifySocket>(dir + "/notify");
        process_ = std::make_unique<test::ChildProcess>(
            argv, std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_->path()}},
            dir + "/logs");
        notify_->waitFor("READY=1", kBound);
    }
    std::string socket() const { return dir_ + "/api.sock"; }
    pid_t pid() const { return process_->pid(); }
    int put(const std::string& name, const std::string& value) const {
        const nlohmann::json body{{"apiVersion", "v1"},
                                  {"kind", "ConfigMap"},
                                  {"metadata", {{"name", name}}},
                                  {"data", {{"k", value}}}};
        return test::apiRequest(socket(), "PUT", kPath + name, body.dump()).status;
    }
    bool shows(const std::string& name, const std::string& value) const {
        const auto r = test::apiRequest(socket(), "GET", kPath + name, "");
        return r.status == 200 && r.body.find("\"" + value + "\"") != std::string::npos;
    }

private:
    std::string dir_;
    std::unique_ptr<test::NotifySocket> notify_;  // kept: lastmiled notifies for its lifetime
    std::unique_ptr<test::ChildProcess> process_;
};

// Two decimals below 10, none above: the precision the run-to-run noise allows.
std::string cell(double value) {
    std::ostringstream out;
    out.precision(value < 10 ? 2 : 0);
    out << std::fixed << value;
    return out.str();
}

struct Stats {
    std::vector<double> v;
    double at(double q) const {
        auto s = v;
        std::sort(s.begin(), s.end());
        return s.empty() ? 0 : s[std::min(s.size() - 1, static_cast<std::size_t>(q * s.size()))];
    }
    std::string row(const std::string& label, bool p90 = true) const {
        std::string r = "| " + label + " | " + std::to_string(v.size()) + " | " + cell(at(0.5));
        r += p90 ? " | " + cell(at(0.9)) + " | " + cell(at(0.99)) : "";
        return r + " | " + cell(at(1.0)) + " |\n";
    }
};

// `count` PUTs of one ConfigMap with a new value each: latency (ms), then for each group of
// processes in `cpuOf` its CPU ms per write ("-" for an empty group).
std::string writeRow(const std::string& label, const Node& node,
                     const std::vector<std::vector<pid_t>>& cpuOf, int count) {
    Stats latency;
    std::vector<double> before;
    for (const auto& group : cpuOf) {
        before.push_back(cpuSeconds(group));
    }
    for (int i = 0; i < count; ++i) {
        const auto start = Clock::now();
        const int status = node.put("bench", "v" + std::to_string(i));
        if (status != 200 && status != 201) {
            throw std::runtime_error(label + ": write answered " + std::to_string(status));
        }
        latency.v.push_back(msSince(start));
    }
    std::string row = latency.row(label);
    row.pop_back();
    for (std::size_t g = 0; g < cpuOf.size(); ++g) {
        const double ms = (cpuSeconds(cpuOf[g]) - before[g]) * 1e3 / count;
        row += cpuOf[g].empty() ? " - |" : " " + cell(ms) + " |";
    }
    return row + "\n";
}

// The etcd members: this process's children whose command is etcd (EtcdCluster hides them).
std::vector<pid_t> etcdPids() {
    std::vector<pid_t> out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string stat = test::readFile(entry.path().string() + "/stat");
        const auto close = stat.rfind(')');
        if (close == std::string::npos || stat.find("(etcd)") == std::string::npos) {
            continue;
        }
        std::istringstream rest(stat.substr(close + 2));
        std::string state;
        pid_t parent = 0;
        rest >> state >> parent;
        if (parent == ::getpid()) {
            out.push_back(std::stoi(entry.path().filename().string()));
        }
    }
    return out;
}

// Retries a write through `node` every 10 ms until it succeeds; ms from `since`.
double untilWrites(const Node& node, Clock::time_point since, const std::string& name) {
    const bool ok = test::eventually(
        [&] {
            const int s = node.put(name, "x");
            return s == 200 || s == 201;
        },
        kBound, milliseconds(10));
    if (!ok) {
        throw std::runtime_error("writes did not come back within 20 s");
    }
    return msSince(since);
}

std::string firstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"lm-fleet-bench: fleet mode write latency, propagation, etcd failover"};
    std::string lastmiled = LM_BUILD_LASTMILED;
    std::string results;
    int rounds = 200;
    app.add_option("--lastmiled", lastmiled, "lastmiled binary (default: the build tree's)");
    app.add_option("--rounds", rounds,
                   "writes per store; propagations /10, failovers and quorum losses /40")
        ->check(CLI::Range(40, 100000));
    app.add_option("--results", results, "markdown file the report is appended to");
    CLI11_PARSE(app, argc, argv);
    if (!test::EtcdCluster::available()) {
        std::cerr << "etcd is not installed (" << test::EtcdCluster::kBinary << ")\n";
        return 1;
    }
    try {
        test::TempDir dir;
        std::ostringstream report;
        const std::time_t now = std::time(nullptr);
        char date[32];
        std::strftime(date, sizeof date, "%F %R UTC", std::gmtime(&now));
        report << "### lm-fleet-bench, " << date << "\n\nload average before: "
               << firstLine(test::readFile("/proc/loadavg")) << "; "
               << firstLine(test::runProcess({test::EtcdCluster::kBinary, "--version"}).out)
               << ", 3 members on loopback, heartbeat 50 ms, election timeout 500 ms; lastmiled's"
                  " etcd requestTimeout 2 s, leaseTtl 3 s; "
               << ::sysconf(_SC_NPROCESSORS_ONLN) << " CPUs shared by everything\n\n";

        // The cluster and the fleet, as tests/integration/fleet_test.cc starts them.
        test::EtcdCluster etcd(3);
        std::string endpoints;
        for (const auto& e : etcd.endpoints()) {
            endpoints += (endpoints.empty() ? "\"" : ", \"") + e + "\"";
        }
        std::vector<std::unique_ptr<Node>> fleet;
        for (int i = 0; i < kNodes; ++i) {
            const std::string name = std::string("node-") + static_cast<char>('a' + i);
            fleet.push_back(std::make_unique<Node>(
                lastmiled, dir.path() + "/" + name,
                "allowedBackendNetworks: [\"127.0.0.0/8\"]\nbindAddress: 127.0.0." +
                    std::to_string(2 + i) + "\nnodeName: " + name + "\nstore:\n  type: etcd\n"
                    "  endpoints: [" + endpoints + "]\n  prefix: /fleet-bench/\n  leaseTtl: 3s\n"));
        }
        const Node& a = *fleet[0];
        const Node single(lastmiled, dir.path() + "/single", "");

        report << "#### Writes through the API (PUT of a ConfigMap, a new value each, one "
                  "connection per request; ms)\n\n| store | writes | p50 | p90 | p99 | max | "
                  "CPU ms/write: this lastmiled | other 2 nodes | 3 etcd members |\n"
                  "|---|---|---|---|---|---|---|---|---|\n";
        report << writeRow("SQLite, one lastmiled", single, {{single.pid()}, {}, {}}, rounds)
               << writeRow("etcd, through node A", a,
                           {{a.pid()}, {fleet[1]->pid(), fleet[2]->pid()}, etcdPids()}, rounds);
        const double idleBefore = cpuSeconds(etcdPids());
        std::this_thread::sleep_for(seconds(2));
        const double idleMsPerSecond = (cpuSeconds(etcdPids()) - idleBefore) * 1e3 / 2;
        report << "\nIdle, the etcd members use " << cell(idleMsPerSecond)
               << " ms CPU per second together (heartbeats every 50 ms); the etcd column includes"
                  " that for the duration of the writes.\n\n";

        Stats reached[2];  // nodes B and C
        for (int i = 0; i < rounds / 10; ++i) {
            const std::string value = "p" + std::to_string(i);
            if (a.put("propagate", value) / 100 != 2) {
                throw std::runtime_error("propagation write refused");
            }
            const auto written = Clock::now();
            bool seen[2] = {false, false};
            const bool both = test::eventually(
                [&] {
                    // Which node is asked first alternates: the second waits for one GET.
                    for (int k = 0; k < 2; ++k) {
                        const int n = (i + k) % 2;
                        if (!seen[n] && (seen[n] = fleet[1 + n]->shows("propagate", value))) {
                            reached[n].v.push_back(msSince(written));
                        }
                    }
                    return seen[0] && seen[1];
                },
                kBound, milliseconds(1));
            if (!both) {
                throw std::runtime_error("a write through node A did not reach B and C in 20 s");
            }
        }
        report << "#### Propagation: from node A's 2xx to the value on GET through B and C "
                  "(polled every 1 ms; ms)\n\nGET visibility only: serving traffic with the "
                  "object is not measured here (fleet_test.cc checks it).\n\n| node | rounds | "
                  "p50 | max |\n|---|---|---|---|\n"
               << reached[0].row("node B", false) << reached[1].row("node C", false) << "\n";

        Stats failover;
        for (int i = 0; i < rounds / 40; ++i) {
            const int leader = etcd.leader();
            etcd.kill(leader);
            failover.v.push_back(untilWrites(a, Clock::now(), "failover"));
            etcd.restart(leader);
        }
        report << "#### Failover: etcd leader killed (-9) until a write through node A succeeds "
                  "(retried every 10 ms; ms)\n\n| event | rounds | p50 | max |\n|---|---|---|---|\n"
               << failover.row("leader killed", false) << "\n";

        Stats first;
        Stats second;
        Stats back;
        std::string notRefused;  // statuses other than 503 while quorum was lost
        for (int i = 0; i < rounds / 40; ++i) {
            const int leader = etcd.leader();
            const int other = (leader + 1) % 3;
            etcd.kill(leader);
            etcd.kill(other);
            for (Stats* s : {&first, &second}) {
                const auto start = Clock::now();
                const int status = a.put("quorum", "lost");
                if (status != 503) {
                    notRefused += " " + std::to_string(status);
                }
                s->v.push_back(msSince(start));
            }
            const auto restarted = Clock::now();
            etcd.restart(leader);
            back.v.push_back(untilWrites(a, restarted, "quorum"));
            etcd.restart(other);
        }
        report << "#### Quorum loss: two members killed (-9), one restarted (ms)\n\n| event | "
                  "rounds | p50 | max |\n|---|---|---|---|\n"
               << first.row("first write after the kill answers 503", false)
               << second.row("the next write answers 503", false)
               << back.row("one member restarted (its start included) to a write succeeding",
                           false)
               << (notRefused.empty() ? "\nEvery write without quorum answered 503.\n"
                                      : "\nWrites without quorum that did not answer 503:" +
                                            notRefused + "\n")
               << "\nload average after: " << firstLine(test::readFile("/proc/loadavg")) << "\n\n";
        std::cout << report.str();
        if (!results.empty()) {
            std::ofstream(results, std::ios::app) << report.str();
        }
    } catch (const std::exception& e) {
        std::cerr << "lm-fleet-bench: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
