// SPDX-License-Identifier: Apache-2.0
// EtcdCluster: members are ChildProcesses; health and leadership come from their HTTP API.
#include "tests/support/etcd_cluster.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <stdexcept>
#include <thread>

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "tests/support/client.h"
#include "tests/support/test_pki.h"

namespace lastmile::test {
namespace {

// The short timings measured in proto-etcd (failover in about 0.6 s, no spurious elections on
// this host); the defaults (100/1000) would double every failover wait in the tests.
constexpr const char* kHeartbeatMs = "50";
constexpr const char* kElectionMs = "500";

struct Reply {
    CURLcode rc = CURLE_OK;
    long status = 0;
    std::string body;
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

// One bounded request; POST when `body` is given. TLS files are used when the URL is https.
Reply httpCall(const std::string& url, const char* body, const EtcdClientFiles& files) {
    Reply r;
    CURL* h = curl_easy_init();
    if (h == nullptr) {
        throw std::runtime_error("curl_easy_init failed");
    }
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 300L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
    if (body != nullptr) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    if (!files.caFile.empty()) {
        curl_easy_setopt(h, CURLOPT_CAINFO, files.caFile.c_str());
        curl_easy_setopt(h, CURLOPT_SSLCERT, files.certFile.c_str());
        curl_easy_setopt(h, CURLOPT_SSLKEY, files.keyFile.c_str());
    }
    r.rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(h);
    return r;
}

std::string randomToken() {
    std::random_device rd;
    return "lastmile-test-" + std::to_string(rd()) + "-" + std::to_string(::getpid());
}

}  // namespace

bool EtcdCluster::available() { return ::access(kBinary, X_OK) == 0; }

EtcdCluster::EtcdCluster(int members, bool tls) {
    if (members != 1 && members != 3) {
        throw std::runtime_error("EtcdCluster: 1 or 3 members, not " + std::to_string(members));
    }
    if (tls) {
        TestPki pki;
        TestPki rogue;
        IssueOptions serverOptions;
        serverOptions.ipAddresses = {"127.0.0.1"};
        serverOptions.alsoClientAuth = true;
        const IssuedCert server = pki.issueServer("localhost", serverOptions);
        const IssuedCert client = pki.issueClient("lastmile-test-node");
        const IssuedCert other = rogue.issueClient("lastmile-test-node");
        files_.caFile = dir_.write("ca.pem", pki.caPem());
        files_.certFile = dir_.write("client.pem", client.certPem);
        files_.keyFile = dir_.write("client.key", client.keyPem);
        files_.rogueCertFile = dir_.write("rogue.pem", other.certPem);
        files_.rogueKeyFile = dir_.write("rogue.key", other.keyPem);
        dir_.write("server.pem", server.certPem);
        dir_.write("server.key", server.keyPem);
    }
    const std::string scheme = tls ? "https://" : "http://";
    std::vector<std::string> peerUrls;
    std::string initialCluster;
    for (int i = 0; i < members; ++i) {
        Member m;
        m.name = "m" + std::to_string(i);
        m.clientUrl = scheme + "127.0.0.1:" + std::to_string(freePort());
        m.dir = dir_.path() + "/" + m.name;
        std::filesystem::create_directory(m.dir);
        peerUrls.push_back("http://127.0.0.1:" + std::to_string(freePort()));
        initialCluster += (i ? "," : "") + m.name + "=" + peerUrls.back();
        members_.push_back(std::move(m));
    }
    const std::string token = randomToken();
    for (int i = 0; i < members; ++i) {
        Member& m = members_[static_cast<std::size_t>(i)];
        m.argv = {kBinary,
                  "--name", m.name,
                  "--data-dir", m.dir + "/data",
                  "--listen-client-urls", m.clientUrl,
                  "--advertise-client-urls", m.clientUrl,
                  "--listen-peer-urls", peerUrls[static_cast<std::size_t>(i)],
                  "--initial-advertise-peer-urls", peerUrls[static_cast<std::size_t>(i)],
                  "--initial-cluster", initialCluster,
                  "--initial-cluster-state", "new",
                  "--initial-cluster-token", token,
                  "--heartbeat-interval", kHeartbeatMs,
                  "--election-timeout", kElectionMs,
                  "--logger=zap"};
        if (tls) {
            for (const char* arg : {"--cert-file", "server.pem", "--key-file", "server.key",
                                    "--trusted-ca-file", "ca.pem"}) {
                m.argv.push_back(arg[0] == '-' ? std::string(arg) : dir_.path() + "/" + arg);
            }
            m.argv.push_back("--client-cert-auth");
        }
        start(i);
    }
    for (int i = 0; i < members; ++i) {
        waitHealthy(i, std::chrono::seconds(10));
    }
}

EtcdCluster::~EtcdCluster() {
    for (auto& m : members_) {
        if (m.process) {
            m.process->signal(SIGKILL);
        }
    }
    for (auto& m : members_) {
        m.process.reset();  // reaps
    }
}

std::vector<std::string> EtcdCluster::endpoints() const {
    std::vector<std::string> out;
    for (const auto& m : members_) {
        out.push_back(m.clientUrl);
    }
    return out;
}

const std::string& EtcdCluster::endpoint(int i) const {
    return members_.at(static_cast<std::size_t>(i)).clientUrl;
}

void EtcdCluster::start(int i) {
    Member& m = members_.at(static_cast<std::size_t>(i));
    m.process = std::make_unique<ChildProcess>(m.argv, std::map<std::string, std::string>{}, m.dir);
}

void EtcdCluster::kill(int i) {
    Member& m = members_.at(static_cast<std::size_t>(i));
    if (!m.process) {
        throw std::runtime_error("EtcdCluster: member " + m.name + " is not running");
    }
    m.process->signal(SIGKILL);
    m.process->wait(std::chrono::seconds(10));
    m.process.reset();
}

void EtcdCluster::restart(int i) {
    if (running(i)) {
        throw std::runtime_error("EtcdCluster: member " + std::to_string(i) + " still runs");
    }
    start(i);
    waitHealthy(i, std::chrono::seconds(10));
}

bool EtcdCluster::running(int i) const {
    return members_.at(static_cast<std::size_t>(i)).process != nullptr;
}

bool EtcdCluster::healthy(int i) const {
    const Reply r = httpCall(endpoint(i) + "/health", nullptr, files_);
    if (r.rc != CURLE_OK || r.status != 200) {
        return false;
    }
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() && j.value("health", "") == "true";
}

void EtcdCluster::waitHealthy(int i, std::chrono::milliseconds timeout) {
    if (!eventually([&] { return healthy(i); }, timeout, std::chrono::milliseconds(20))) {
        throw std::runtime_error("EtcdCluster: member " + std::to_string(i) + " (" + endpoint(i) +
                                 ") not healthy in time; log tail:\n" + logTail(i));
    }
}

int EtcdCluster::leader(std::chrono::milliseconds timeout) const {
    int found = -1;
    auto agreed = [&] {
        // member_id of each running member, and the leader the first answering one reports.
        std::vector<std::string> ids(members_.size());
        std::string leaderId;
        for (std::size_t i = 0; i < members_.size(); ++i) {
            if (!members_[i].process) {
                continue;
            }
            const Reply r =
                httpCall(members_[i].clientUrl + "/v3/maintenance/status", "{}", files_);
            const auto j = nlohmann::json::parse(r.body, nullptr, false);
            if (r.rc != CURLE_OK || r.status != 200 || !j.is_object()) {
                continue;
            }
            ids[i] = j.value(nlohmann::json::json_pointer("/header/member_id"), "");
            if (leaderId.empty()) {
                leaderId = j.value("leader", "");
            }
        }
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (!leaderId.empty() && ids[i] == leaderId) {
                found = static_cast<int>(i);
                return true;
            }
        }
        return false;
    };
    if (!eventually(agreed, timeout, std::chrono::milliseconds(20))) {
        throw std::runtime_error("EtcdCluster: no leader among the running members in time");
    }
    return found;
}

std::string EtcdCluster::post(int i, const std::string& path, const std::string& body) const {
    const Reply r = httpCall(endpoint(i) + path, body.c_str(), files_);
    if (r.rc != CURLE_OK || r.status != 200) {
        throw std::runtime_error("EtcdCluster: POST " + path + " to member " + std::to_string(i) +
                                 ": " + curl_easy_strerror(r.rc) + ", HTTP " +
                                 std::to_string(r.status) + " " + r.body);
    }
    return r.body;
}

std::string EtcdCluster::logTail(int i) const {
    const std::string log = readFile(members_.at(static_cast<std::size_t>(i)).dir + "/stderr");
    constexpr std::size_t kTail = 4000;
    return log.size() > kTail ? log.substr(log.size() - kTail) : log;
}

}  // namespace lastmile::test
