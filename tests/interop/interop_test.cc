// SPDX-License-Identifier: Apache-2.0
// The interop matrix: backends on other TLS stacks behind one real lastmiled, every cell
// byte-exact, cleanly ended, and carried by the record engine the run expects.
//
// Cells: peer x TLS version x record pattern x who ends the session. Settings come from the
// environment (meson sets them): LASTMILED, LASTMILECTL, LM_INTEROP_OPENSSL and
// LM_INTEROP_GNUTLS_SERV (the tools; empty when missing), LM_INTEROP_PYTHON (the interpreter),
// LM_INTEROP_PYTHON_PEER, LM_INTEROP_GO_PEER and LM_INTEROP_GNUTLS_PEER (the peers built
// here; empty when their toolchain is missing), LM_INTEROP_ENGINE ("openssl" or "kernel":
// the engine every session must use), LM_INTEROP_BYTES (bytes per direction per session,
// default 2 MiB) and LM_INTEROP_REPEAT (sessions per cell, default 1).
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "tests/support/admin.h"
#include "tests/support/client.h"
#include "tests/support/manifests.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_stat.h"

namespace lastmile {
namespace {

using namespace std::chrono_literals;

constexpr const char* kHostname = "backend.example.com";
// A read or write that makes no progress for this long is a stall, not a slow cell.
constexpr int kStallSeconds = 20;
// A session still moving bytes after this long is a failure too (a trickle is no echo).
constexpr auto kSessionLimit = std::chrono::seconds(120);
// The line that asks the backend to end the session itself (s_server -rev knows it too).
constexpr std::string_view kTerminator = "CLOSE\n";

enum class Peer { OpensslSServer, PythonSsl, GnutlsServ, GnutlsLib, GoCryptoTls };
enum class Pattern { SmallRecords, LargeRecords };
enum class Ending { ClientHalfClose, BackendClose };

constexpr Peer kPeers[] = {Peer::OpensslSServer, Peer::PythonSsl, Peer::GnutlsServ,
                           Peer::GnutlsLib, Peer::GoCryptoTls};
constexpr const char* kVersions[] = {"1.2", "1.3"};

const char* name(Peer p) {
    switch (p) {
    case Peer::OpensslSServer: return "OpensslSServer";
    case Peer::PythonSsl: return "PythonSsl";
    case Peer::GnutlsServ: return "GnutlsServ";
    case Peer::GnutlsLib: return "GnutlsLib";
    case Peer::GoCryptoTls: return "GoCryptoTls";
    }
    return "?";
}
const char* name(Pattern p) { return p == Pattern::SmallRecords ? "SmallRecords" : "LargeRecords"; }
const char* name(Ending e) { return e == Ending::ClientHalfClose ? "ClientHalfClose" : "BackendClose"; }

struct Cell {
    Peer peer;
    const char* version;
    Pattern pattern;
    Ending ending;
};

std::string versionTag(const char* version) {
    return std::string("Tls1") + (std::string(version) == "1.3" ? "3" : "2");
}

std::string cellName(const Cell& c) {
    return std::string(name(c.peer)) + "_" + versionTag(c.version) + "_" + name(c.pattern) +
           "_" + name(c.ending);
}

// gtest prints a failing case's parameter with this instead of its bytes.
void PrintTo(const Cell& c, std::ostream* os) { *os << cellName(c); }

std::vector<Cell> allCells() {
    std::vector<Cell> cells;
    for (Peer p : kPeers) {
        for (const char* v : kVersions) {
            for (Pattern pattern : {Pattern::SmallRecords, Pattern::LargeRecords}) {
                for (Ending e : {Ending::ClientHalfClose, Ending::BackendClose}) {
                    cells.push_back({p, v, pattern, e});
                }
            }
        }
    }
    return cells;
}

std::string setting(const char* var, const std::string& fallback = "") {
    const char* value = std::getenv(var);
    return value != nullptr ? value : fallback;
}

// ---- Peers.

// A backend process and the port it listens on, once it said so.
class PeerProcess {
public:
    // Starts `argvFor(port)` until one announces a line matching `announcement` (whose group 1
    // is the port) on stdout, or on stderr for gnutls-serv. A peer that binds port 0 itself
    // gets 0; gnutls-serv cannot say which port it got, so it gets a free one and, should
    // another process take that port first and the bind fail, a new one.
    PeerProcess(const std::function<std::vector<std::string>(std::uint16_t)>& argvFor,
                bool bindsPortZero, const std::regex& announcement, const std::string& logDir) {
        std::string why;
        for (int attempt = 0; attempt < 5; ++attempt) {
            const std::uint16_t asked = bindsPortZero ? 0 : test::freePort();
            process_ = std::make_unique<test::ChildProcess>(argvFor(asked),
                                                            std::map<std::string, std::string>{},
                                                            logDir);
            std::string output;
            std::smatch m;
            const bool announced = test::eventually(
                [&] {
                    output = process_->stdoutText() + process_->stderrText();
                    return std::regex_search(output, m, announcement) || exited();
                },
                30s);
            if (announced && !exited()) {
                port_ = static_cast<std::uint16_t>(std::stoi(m[1].str()));
                return;
            }
            why = process_->stderrText();
        }
        throw std::runtime_error("peer did not start: " + why);
    }

    std::uint16_t port() const { return port_; }

    // The "SESSION ..." lines the peer printed so far (the Python, Go and GnuTLS library
    // peers print one after every session).
    std::vector<std::string> sessions() const {
        std::vector<std::string> lines;
        std::istringstream in(process_->stdoutText());
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("SESSION ", 0) == 0) {
                lines.push_back(line);
            }
        }
        return lines;
    }

    bool exited() const {
        try {
            process_->wait(0ms);
            return true;
        } catch (const std::exception&) {
            return false;  // still running
        }
    }

private:
    std::unique_ptr<test::ChildProcess> process_;
    std::uint16_t port_ = 0;
};

bool reportsSessions(Peer p) {
    return p == Peer::PythonSsl || p == Peer::GnutlsLib || p == Peer::GoCryptoTls;
}

// Why this run cannot play `p` at all ("" when it can).
std::string unavailable(Peer p) {
    if (p == Peer::GoCryptoTls && setting("LM_INTEROP_GO_PEER").empty()) {
        return "go (Debian's golang-go) was not found when the build was configured, so the "
               "crypto/tls peer was not built";
    }
    if (p == Peer::GnutlsLib && setting("LM_INTEROP_GNUTLS_PEER").empty()) {
        return "libgnutls28-dev was not found when the build was configured, so the GnuTLS "
               "library peer was not built";
    }
    if (p == Peer::GnutlsServ && setting("LM_INTEROP_GNUTLS_SERV").empty()) {
        return "gnutls-serv (Debian's gnutls-bin) was not found when the build was configured";
    }
    if (p == Peer::OpensslSServer && setting("LM_INTEROP_OPENSSL").empty()) {
        return "openssl (Debian's openssl) was not found when the build was configured";
    }
    return "";
}

// Why `c` cannot be played by its peer ("" when it can).
std::string unplayable(const Cell& c) {
    if (c.peer == Peer::GnutlsServ && c.ending == Ending::BackendClose) {
        return "gnutls-serv --echo never ends a session itself: it echoes until the client does "
               "(the GnutlsLib peer plays these cells on the same library)";
    }
    return unavailable(c.peer);
}

// The backend of `peer` pinned to `version`, presenting the chain in `chainFile`.
std::unique_ptr<PeerProcess> startPeer(Peer peer, const std::string& version,
                                       const std::string& chainFile, const std::string& keyFile,
                                       const std::string& leafFile, const std::string& logDir) {
    const bool tls13 = version == "1.3";
    switch (peer) {
    case Peer::OpensslSServer:
        // -rev: echo each line reversed, end the session on a line "CLOSE". Not -quiet, which
        // implies -ign_eof and so ignores that line.
        return std::make_unique<PeerProcess>(
            [&](std::uint16_t) {
                return std::vector<std::string>{
                    test::requiredEnv("LM_INTEROP_OPENSSL"), "s_server", "-rev", "-accept", "127.0.0.1:0", "-cert", leafFile,
                    "-key", keyFile, "-cert_chain", chainFile, tls13 ? "-tls1_3" : "-tls1_2"};
            },
            true, std::regex("ACCEPT 127\\.0\\.0\\.1:([0-9]+)"), logDir);
    case Peer::PythonSsl:
        return std::make_unique<PeerProcess>(
            [&](std::uint16_t) {
                return std::vector<std::string>{test::requiredEnv("LM_INTEROP_PYTHON"),
                                                test::requiredEnv("LM_INTEROP_PYTHON_PEER"), chainFile,
                                                keyFile, version};
            },
            true, std::regex("PORT ([0-9]+)"), logDir);
    case Peer::GoCryptoTls:
    case Peer::GnutlsLib:
        return std::make_unique<PeerProcess>(
            [&](std::uint16_t) {
                return std::vector<std::string>{
                    test::requiredEnv(peer == Peer::GnutlsLib ? "LM_INTEROP_GNUTLS_PEER"
                                                              : "LM_INTEROP_GO_PEER"),
                    chainFile, keyFile, version};
            },
            true, std::regex("PORT ([0-9]+)"), logDir);
    case Peer::GnutlsServ:
        // Its stderr (every request it echoes) goes to the log directory, like all output.
        return std::make_unique<PeerProcess>(
            [&](std::uint16_t port) {
                return std::vector<std::string>{
                    test::requiredEnv("LM_INTEROP_GNUTLS_SERV"), "--echo", "--disable-client-cert", "-p", std::to_string(port),
                    "--x509certfile", chainFile, "--x509keyfile", keyFile,
                    std::string("--priority=NORMAL:-VERS-ALL:+VERS-TLS") + version};
            },
            false, std::regex("Echo Server listening on IPv4 [^ ]+ port ([0-9]+)\\.\\.\\.done"),
            logDir);
    }
    throw std::logic_error("unknown peer");
}

// ---- The daemon and its configuration.

std::string serviceName(Peer p, const std::string& version) {
    std::string n = name(p);
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return n + "-tls1" + (version == "1.3" ? "3" : "2");
}

struct Backend {
    Peer peer;
    std::string version;
    std::unique_ptr<PeerProcess> process;
    std::uint16_t listenerPort = 0;  // lastmiled's plaintext TCP listener in front of it
};

// Per cell: what the repeats came to, printed as one table line at the end.
struct Tally {
    std::map<std::string, int> engines;  // sessions per engine that actually carried them
    int sessions = 0;
    int losses = 0;
    int stalls = 0;
    std::string skipped;  // the reason, when the cell did not run
};

// One lastmiled and every peer for the whole binary: the cells share them.
struct Matrix {
    test::TempDir dir;
    test::TestPki pki;
    std::string engine;  // the one every session must use
    std::vector<Backend> backends;
    std::unique_ptr<test::NotifySocket> notify;
    std::unique_ptr<test::ChildProcess> daemon;
    std::string admin;
    std::map<std::string, Tally> tallies;  // by cell name
    std::vector<std::string> order;        // cell names as they ran

    Backend& backend(Peer p, const std::string& version) {
        for (auto& b : backends) {
            if (b.peer == p && b.version == version) {
                return b;
            }
        }
        throw std::logic_error("no such backend");
    }

    test::Outcome ctl(std::vector<std::string> args) {
        args.insert(args.begin(), test::requiredEnv("LASTMILECTL"));
        return test::runProcess(args, {{"LASTMILE_SERVER", "unix://" + dir.path() + "/api.sock"}});
    }

    std::string metrics() { return test::metricsText(admin); }

    void start() {
        engine = setting("LM_INTEROP_ENGINE", "openssl");
        if (engine != "openssl" && engine != "kernel") {
            throw std::runtime_error("LM_INTEROP_ENGINE must be openssl or kernel: " + engine);
        }
        const auto leaf = pki.issueServer(kHostname);
        const std::string chainFile = dir.write("chain.pem", leaf.chainPem);
        const std::string leafFile = dir.write("leaf.pem", leaf.certPem);
        const std::string keyFile = dir.write("key.pem", leaf.keyPem);
        for (Peer p : kPeers) {
            if (!unavailable(p).empty()) {
                continue;
            }
            for (const char* v : kVersions) {
                const std::string logDir = dir.path() + "/" + serviceName(p, v);
                ::mkdir(logDir.c_str(), 0700);
                backends.push_back(
                    {p, v, startPeer(p, v, chainFile, keyFile, leafFile, logDir), 0});
            }
        }
        // One worker, as in issue 14's reproduction: every session meets the same engine state.
        // Debug logging: what lastmiled said during a session that went wrong is in the report.
        const std::string config = dir.write(
            "lastmiled.yaml",
            "workers: 1\nbindAddress: 127.0.0.1\nconnectTimeout: 10s\nhandshakeTimeout: 10s\n"
            "idleTimeout: 60s\ndrainTimeout: 1s\nerrorDetail: full\nlogLevel: debug\n"
            "allowedBackendNetworks: [\"127.0.0.0/8\"]\n");
        ::mkdir((dir.path() + "/lastmiled").c_str(), 0700);
        notify = std::make_unique<test::NotifySocket>(dir.path() + "/notify");
        daemon = std::make_unique<test::ChildProcess>(
            std::vector<std::string>{test::requiredEnv("LASTMILED"), "--config", config, "--state-dir",
                                     dir.path() + "/state", "--api-socket",
                                     dir.path() + "/api.sock", "--admin-http", "127.0.0.1:0"},
            std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify->path()}},
            dir.path() + "/lastmiled");
        notify->waitFor("READY=1");
        admin = test::adminAddress(daemon->stderrText());
        const bool kernelUsable =
            test::metricValue(metrics(), "lastmile_record_engine_usable{engine=\"kernel\"}") == 1;
        if (engine == "kernel" && !kernelUsable) {
            throw std::runtime_error("LM_INTEROP_ENGINE=kernel but lastmiled's kernel engine is "
                                     "not usable here (no kernel TLS)");
        }
        // On the openssl run the preference pins it even on a host whose kernel has TLS.
        const std::string offload = engine == "openssl" ? "userspace" : "kernel";
        std::vector<std::uint16_t> taken;
        for (auto& b : backends) {
            do {
                b.listenerPort = test::freePort();
            } while (std::find(taken.begin(), taken.end(), b.listenerPort) != taken.end());
            taken.push_back(b.listenerPort);
        }
        // Without resumption every session is a full handshake, so even a first TLS 1.3
        // session can go to the kernel (one that could resume stays to collect tickets).
        std::vector<test::RoutedService> services;
        for (const auto& b : backends) {
            services.push_back({serviceName(b.peer, b.version), b.listenerPort,
                                b.process->port(), "TCP",
                                {{"min-tls-version", b.version},
                                 {"max-tls-version", b.version},
                                 {"session-resumption", "false"},
                                 {"offload", offload}}});
        }
        const std::string file =
            dir.write("topology.yaml", test::edgeYaml(services, pki.caPem(), kHostname));
        auto r = ctl({"apply", "-f", file});
        if (r.exitCode != 0) {
            throw std::runtime_error("lastmilectl apply failed: " + r.out + r.err);
        }
        const bool programmed = test::eventually(
            [&] {
                auto g = ctl({"get", "gateway", "edge", "-o", "json"});
                return g.exitCode == 0 &&
                       test::conditionTrue(nlohmann::json::parse(g.out, nullptr, false),
                                           "Programmed");
            },
            30s);
        if (!programmed) {
            throw std::runtime_error("Gateway edge is not Programmed: " +
                                     ctl({"get", "gateway", "edge", "-o", "json"}).out);
        }
    }

    void printTable() const {
        std::cout << "interop: peer version pattern close engine:sessions sessions losses stalls\n";
        for (const auto& cell : order) {
            const Tally& t = tallies.at(cell);
            std::string row = cell;
            std::replace(row.begin(), row.end(), '_', ' ');
            std::string engines;
            for (const auto& [used, n] : t.engines) {
                engines += (engines.empty() ? "" : "+") + used + ":" + std::to_string(n);
            }
            std::cout << "interop: " << row << " " << (engines.empty() ? "-" : engines) << " "
                      << t.sessions << " "
                      << t.losses << " " << t.stalls
                      << (t.skipped.empty() ? "" : " skipped: " + t.skipped) << "\n";
        }
    }
};

// ---- One session.

// `bytes` of newline-terminated lowercase text (never the terminator line, never a NUL or a
// CR, which gnutls-serv would cut or rewrite) in lines of `lineLength`, varied by `seed`.
std::string lines(std::size_t bytes, std::size_t lineLength, unsigned seed) {
    std::string out;
    out.reserve(bytes);
    for (std::size_t line = 0; out.size() < bytes; ++line) {
        const std::size_t n = std::min(lineLength, bytes - out.size());
        for (std::size_t i = 0; i + 1 < n; ++i) {
            out += static_cast<char>('a' + (seed + line * 7 + i) % 26);
        }
        out += '\n';
    }
    return out;
}

// What s_server -rev answers: every line reversed, newline kept.
std::string reversedLines(const std::string& text) {
    std::string out = text;
    for (std::size_t start = 0; start < out.size();) {
        const std::size_t end = out.find('\n', start);
        std::reverse(out.begin() + static_cast<std::ptrdiff_t>(start),
                     out.begin() + static_cast<std::ptrdiff_t>(end));
        start = end + 1;
    }
    return out;
}

// What every thread of `pid` is doing (state, wait channel, kernel stack where readable) and
// the kernel TLS error counters: taken the moment a session stalls, before the client lets
// go, because that is what tells a blocked io_uring worker from a lost wakeup.
std::string stallSnapshot(pid_t pid) {
    std::string out;
    const std::string task = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(task, ec)) {
        const std::string dir = t.path().string();
        std::string comm = test::readFile(dir + "/comm");
        comm.erase(comm.find_last_not_of('\n') + 1);
        const std::string stat = test::readFile(dir + "/stat");
        const std::size_t state = stat.rfind(')');
        out += "thread " + t.path().filename().string() + " " + comm + " state " +
               (state == std::string::npos ? "?" : stat.substr(state + 2, 1)) + " wchan " +
               test::readFile(dir + "/wchan") + "\n" + test::readFile(dir + "/stack");
    }
    for (const auto& [name, value] : test::tlsStat()) {
        if (name.find("Error") != std::string::npos || name.find("Curr") != std::string::npos) {
            out += name + " " + std::to_string(value) + "\n";
        }
    }
    return out;
}

struct SessionOutcome {
    bool exact = false;    // every byte back, as expected, then EOF
    bool stalled = false;  // a read or write made no progress for kStallSeconds
    std::string detail;    // how it ended, with offsets, when not exact
    std::string snapshot;  // stallSnapshot() of lastmiled when it stalled
};

// Sends the cell's payload through lastmiled's listener at 127.0.0.1:`listenerPort` while
// reading the echo, ends the way the cell says, and compares what came back with what the
// peer should have answered.
SessionOutcome runSession(std::uint16_t listenerPort, const Cell& cell, std::size_t bytes,
                          unsigned seed, pid_t daemon) {
    const bool small = cell.pattern == Pattern::SmallRecords;
    // Small: a ~1 KB line per write. Large: 16 KiB writes (whole records) of 4 KiB lines, short
    // enough for s_server -rev's line buffer.
    const std::string payload = lines(bytes, small ? 1001 : 4096, seed);
    const std::size_t writeSize = small ? 1001 : 16384;
    const std::string expected =
        cell.peer == Peer::OpensslSServer ? reversedLines(payload) : payload;
    UniqueFd fd = test::dial("127.0.0.1:" + std::to_string(listenerPort), nullptr, kStallSeconds);
    bool writeOk = true;
    bool writeStalled = false;  // a send timed out (the socket's send timeout is kStallSeconds)
    std::thread writer([&] {
        for (std::size_t off = 0; off < payload.size() && writeOk; off += writeSize) {
            writeOk = test::sendAll(fd.get(), std::string_view(payload).substr(off, writeSize));
        }
        if (writeOk && cell.ending == Ending::BackendClose) {
            writeOk = test::sendAll(fd.get(), kTerminator);
        } else if (writeOk) {
            ::shutdown(fd.get(), SHUT_WR);
        }
        writeStalled = !writeOk && (errno == EAGAIN || errno == EWOULDBLOCK);
    });
    std::string got;
    got.reserve(expected.size());
    std::vector<char> buf(64 * 1024);
    SessionOutcome o;
    std::string end;
    const auto deadline = std::chrono::steady_clock::now() + kSessionLimit;
    for (;;) {
        if (std::chrono::steady_clock::now() > deadline) {
            end = "the session's time limit";
            break;
        }
        const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
        if (n > 0) {
            got.append(buf.data(), static_cast<std::size_t>(n));
            if (got.size() > expected.size()) {
                end = "more bytes than sent";
                break;
            }
            continue;
        }
        if (n == 0) {
            end = "EOF";
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        o.stalled = errno == EAGAIN || errno == EWOULDBLOCK;
        if (o.stalled) {
            o.snapshot = stallSnapshot(daemon);
        }
        end = o.stalled ? "no byte for " + std::to_string(kStallSeconds) + " s"
                        : std::string("recv: ") + std::strerror(errno);
        break;
    }
    if (end != "EOF") {
        ::shutdown(fd.get(), SHUT_RDWR);  // frees a writer blocked on a dead stream
    }
    writer.join();
    o.stalled = o.stalled || writeStalled;
    o.exact = end == "EOF" && writeOk && got == expected;
    if (!o.exact) {
        const auto mismatch = std::mismatch(got.begin(), got.end(), expected.begin(),
                                            expected.begin() + static_cast<std::ptrdiff_t>(
                                                std::min(got.size(), expected.size())));
        o.detail = "got " + std::to_string(got.size()) + " of " + std::to_string(expected.size()) +
                   " bytes, first difference at " +
                   std::to_string(mismatch.first - got.begin()) + ", ended by " + end +
                   (writeOk ? ""
                    : writeStalled ? ", a send made no progress for " +
                                         std::to_string(kStallSeconds) + " s"
                                   : ", the client could not send everything");
    }
    return o;
}

// The lines of `family` in `metrics`, for a failure message.
std::string seriesOf(const std::string& metrics, const std::string& family) {
    std::string out;
    std::istringstream in(metrics);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(family + "{", 0) == 0) {
            out += line + "\n";
        }
    }
    return out;
}

// The last `lines` lines of `text` (which ends with a newline when it is not empty).
std::string tail(const std::string& text, std::size_t lines) {
    std::size_t start = text.size();
    for (std::size_t n = 0; n <= lines; ++n) {
        const std::size_t newline = start == 0 ? std::string::npos : text.rfind('\n', start - 1);
        if (newline == std::string::npos) {
            return text;
        }
        start = newline;
    }
    return text.substr(start + 1);
}

// What a session line of the Python or Go peer says.
struct PeerSession {
    std::uint64_t echoed = 0;
    bool closeNotify = false;
    std::string closedBy;
};

PeerSession parseSession(const std::string& line) {
    std::smatch m;
    if (!std::regex_search(line, m,
                           std::regex("echoed=([0-9]+) close_notify=([01]) closed_by=([a-z]+)"))) {
        throw std::runtime_error("unexpected peer line: " + line);
    }
    return {std::stoull(m[1].str()), m[2].str() == "1", m[3].str()};
}

// ---- The cells.

class InteropTest : public ::testing::TestWithParam<Cell> {
protected:
    static void SetUpTestSuite() {
        matrix_ = std::make_unique<Matrix>();
        try {
            matrix_->start();
        } catch (const std::exception& e) {
            startFailure_ = e.what();
        }
    }

    static void TearDownTestSuite() {
        matrix_->printTable();
        if (::testing::UnitTest::GetInstance()->failed_test_count() > 0 && matrix_->daemon) {
            const std::string log = matrix_->daemon->stderrText();
            std::cerr << "---- lastmiled stderr (tail) ----\n"
                      << (log.size() > 8000 ? log.substr(log.size() - 8000) : log) << "\n";
        }
        matrix_.reset();
    }

    static std::unique_ptr<Matrix> matrix_;
    static std::string startFailure_;
};

std::unique_ptr<Matrix> InteropTest::matrix_;
std::string InteropTest::startFailure_;

TEST_P(InteropTest, EchoesByteExactAndEndsCleanOnTheExpectedEngine) {
    const Cell cell = GetParam();
    Matrix& m = *matrix_;
    const std::string cellId = cellName(cell);
    m.order.push_back(cellId);
    Tally& tally = m.tallies[cellId];
    ASSERT_TRUE(startFailure_.empty()) << startFailure_;
    if (const std::string why = unplayable(cell); !why.empty()) {
        tally.skipped = why;
        GTEST_SKIP() << why;
    }
    Backend& backend = m.backend(cell.peer, cell.version);
    const std::size_t bytes = std::stoull(setting("LM_INTEROP_BYTES", std::to_string(2 << 20)));
    const int repeat = std::max(1, std::stoi(setting("LM_INTEROP_REPEAT", "1")));
    const std::string other = m.engine == "kernel" ? "openssl" : "kernel";
    for (int i = 0; i < repeat; ++i) {
        SCOPED_TRACE("session " + std::to_string(i + 1) + " of " + std::to_string(repeat));
        const std::string before = m.metrics();
        const std::size_t peerSessions = backend.process->sessions().size();
        const std::size_t logBefore = m.daemon->stderrText().size();
        const SessionOutcome o = runSession(backend.listenerPort, cell, bytes, i, m.daemon->pid());
        ++tally.sessions;
        tally.losses += o.exact || o.stalled ? 0 : 1;
        tally.stalls += o.stalled ? 1 : 0;
        EXPECT_TRUE(o.exact) << o.detail << "\nlastmiled's log during the session:\n"
                             << tail(m.daemon->stderrText().substr(logBefore), 40)
                             << (o.snapshot.empty() ? "" : "lastmiled when it stalled:\n")
                             << o.snapshot;
        // lastmiled accounts for a session when both of its ends are closed.
        EXPECT_TRUE(test::eventually(
            [&] { return test::metricValue(m.metrics(), "lastmile_connections_active") == 0; },
            10s))
            << "the connection is still open in lastmiled";
        const std::string after = m.metrics();
        const auto delta = [&](const std::string& series) {
            return test::metricValue(after, series) - test::metricValue(before, series);
        };
        const bool onExpected =
            delta("lastmile_engine_sessions_total{engine=\"" + m.engine + "\"}") == 1 &&
            delta("lastmile_engine_sessions_total{engine=\"" + other + "\"}") == 0;
        // The one fallback that is by design and counted: records only OpenSSL can hold
        // came with the handshake (application data, or a ticket record cut by a TCP
        // segment), so the kernel engine declines and the session stays in userspace.
        // Tickets alone (Go always sends them with the handshake) are opened and the kernel
        // takes the session.
        const bool declinedWithReason =
            m.engine == "kernel" &&
            delta("lastmile_engine_declines_total{engine=\"kernel\",reason=\"buffered_records\"}") ==
                1 &&
            delta("lastmile_engine_sessions_total{engine=\"openssl\"}") == 1;
        ++tally.engines[onExpected ? m.engine : declinedWithReason ? "openssl(buffered_records)"
                                                                   : "other"];
        EXPECT_TRUE(onExpected || declinedWithReason)
            << "the session did not use the " << m.engine << " engine; declines so far:\n"
            << seriesOf(after, "lastmile_engine_declines_total");
        EXPECT_EQ(test::metricSum(after, "lastmile_failures_total"),
                  test::metricSum(before, "lastmile_failures_total"))
            << "lastmiled counted a failure";
        EXPECT_EQ(delta("lastmile_backend_truncations_total"), 0)
            << "the backend's end came without close_notify";
        if (reportsSessions(cell.peer)) {
            std::vector<std::string> reported;
            ASSERT_TRUE(test::eventually(
                [&] { return (reported = backend.process->sessions()).size() > peerSessions; },
                10s))
                << "the peer did not finish the session";
            const PeerSession s = parseSession(reported.back());
            EXPECT_EQ(s.echoed, bytes) << "what the peer echoed";
            if (cell.ending == Ending::ClientHalfClose) {
                EXPECT_EQ(s.closedBy, "client");
                EXPECT_TRUE(s.closeNotify) << "lastmiled ended TLS with close_notify";
            } else {
                EXPECT_EQ(s.closedBy, "peer");
            }
        }
    }
    EXPECT_EQ(tally.losses, 0);
    EXPECT_EQ(tally.stalls, 0);
}

INSTANTIATE_TEST_SUITE_P(Matrix, InteropTest, ::testing::ValuesIn(allCells()),
                         [](const ::testing::TestParamInfo<Cell>& param) {
                             return cellName(param.param);
                         });

}  // namespace
}  // namespace lastmile
