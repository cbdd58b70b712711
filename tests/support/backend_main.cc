// SPDX-License-Identifier: Apache-2.0
// lm-test-backend: TlsBackend as a standalone process for benchmarks and demos.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include "tests/support/tls_backend.h"

namespace {

using lastmile::test::BackendMode;
using lastmile::test::Observation;
using lastmile::test::TlsBackend;
using lastmile::test::TlsBackendOptions;

bool readFile(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

// "127.0.0.1:0", "[::1]:8443".
bool splitHostPort(const std::string& s, std::string& host, std::uint16_t& port) {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) {
        return false;
    }
    host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    try {
        unsigned long p = std::stoul(s.substr(colon + 1));
        if (p > 65535) {
            return false;
        }
        port = static_cast<std::uint16_t>(p);
    } catch (const std::exception&) {
        return false;
    }
    return !host.empty();
}

lastmile::tls::TlsVersion parseVersion(const std::string& v) {
    return v == "1.2" ? lastmile::tls::TlsVersion::Tls12 : lastmile::tls::TlsVersion::Tls13;
}

std::mutex gOutMu;

void printObservation(const Observation& o) {
    nlohmann::ordered_json j;
    j["sni"] = o.sni;
    j["alpn"] = o.alpn;
    j["version"] = o.version;
    j["cipher"] = o.cipher;
    j["client_cn"] = o.clientCn;
    j["resumed"] = o.resumed;
    j["bytes"] = o.bytesReceived;
    j["bytes_sent"] = o.bytesSent;
    if (!o.handshakeOk) {
        j["error"] = o.handshakeError;
    }
    std::string line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    std::lock_guard lock(gOutMu);
    std::fprintf(stdout, "%s\n", line.c_str());
    std::fflush(stdout);
}

int run(int argc, char** argv) {
    CLI::App app{"lm-test-backend: a TLS (or plain) test backend for lastmile benchmarks"};
    std::string listen = "127.0.0.1:0";
    std::string certFile, keyFile, clientCaFile, minTls, maxTls, alpn, mode = "echo";
    std::string ciphers, ciphersuites, groups;
    bool requireClientCert = false, plain = false, noTickets = false, verbose = false;
    std::uint64_t sourceBytes = 0;
    std::uint64_t keyUpdateAfter = 0;
    unsigned workers = 1;
    app.add_option("--listen", listen, "ADDR:PORT to listen on (port 0: ephemeral)");
    app.add_option("--cert", certFile, "server certificate chain PEM (leaf first)");
    app.add_option("--key", keyFile, "server private key PEM");
    app.add_option("--client-ca", clientCaFile, "CA PEM trusted for client certificates");
    app.add_flag("--require-client-cert", requireClientCert, "fail handshakes without one");
    app.add_option("--min-tls", minTls, "minimum TLS version")
        ->check(CLI::IsMember({"1.2", "1.3"}));
    app.add_option("--max-tls", maxTls, "maximum TLS version")
        ->check(CLI::IsMember({"1.2", "1.3"}));
    app.add_option("--alpn", alpn, "comma-separated ALPN protocols, preferred first");
    app.add_option("--ciphers", ciphers, "TLS 1.2 OpenSSL cipher list");
    app.add_option("--ciphersuites", ciphersuites, "TLS 1.3 ciphersuites");
    app.add_option("--groups", groups, "key exchange groups, e.g. X25519:P-256");
    app.add_option("--mode", mode, "what to do with each connection")
        ->check(CLI::IsMember({"echo", "sink", "source", "http"}));
    app.add_option("--source-bytes", sourceBytes,
                   "source mode: bytes per connection (0: unlimited)");
    app.add_option("--key-update-after", keyUpdateAfter,
                   "echo/source over TLS 1.3: send one KeyUpdate after N application bytes");
    app.add_flag("--plain", plain, "plaintext TCP, no TLS");
    app.add_flag("--no-tickets", noTickets, "disable session tickets");
    app.add_option("--workers", workers, "event-loop threads (SO_REUSEPORT listeners)")
        ->check(CLI::Range(1u, 256u));
    app.add_flag("--verbose", verbose, "print one JSON line per finished connection");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    TlsBackendOptions o;
    if (!splitHostPort(listen, o.host, o.port)) {
        std::cerr << "lm-test-backend: --listen wants ADDR:PORT, got " << listen << "\n";
        return 2;
    }
    o.plain = plain;
    if (!plain) {
        if (certFile.empty() || keyFile.empty()) {
            std::cerr << "lm-test-backend: --cert and --key are required without --plain\n";
            return 2;
        }
        if (!readFile(certFile, o.serverCert.chainPem) || !readFile(keyFile, o.serverCert.keyPem)) {
            std::cerr << "lm-test-backend: cannot read --cert or --key\n";
            return 2;
        }
        o.serverCert.certPem = o.serverCert.chainPem;
    }
    if (!clientCaFile.empty() && !readFile(clientCaFile, o.clientCaPem)) {
        std::cerr << "lm-test-backend: cannot read --client-ca " << clientCaFile << "\n";
        return 2;
    }
    o.requireClientCert = requireClientCert;
    if (!minTls.empty()) {
        o.minVersion = parseVersion(minTls);
    }
    if (!maxTls.empty()) {
        o.maxVersion = parseVersion(maxTls);
    }
    std::stringstream alpnList(alpn);
    for (std::string p; std::getline(alpnList, p, ',');) {
        if (!p.empty()) {
            o.alpn.push_back(p);
        }
    }
    o.cipherList = ciphers;
    o.cipherSuites = ciphersuites;
    o.groups = groups;
    o.mode = mode == "sink"     ? BackendMode::Sink
             : mode == "source" ? BackendMode::Source
             : mode == "http"   ? BackendMode::Http
                                : BackendMode::Echo;
    o.sourceBytes = sourceBytes;
    o.keyUpdateAfterBytes = keyUpdateAfter;
    o.sessionTickets = !noTickets;
    o.workers = workers;
    if (verbose) {
        o.onConnectionClosed = printObservation;
    }

    // Block the stop signals before the loop threads exist, so only sigwait() sees them.
    sigset_t stopSignals;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGTERM);
    sigaddset(&stopSignals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
    // Writes to vanished clients must fail with EPIPE, never kill the process.
    signal(SIGPIPE, SIG_IGN);
    // Benchmarks hold thousands of connections: use the whole hard fd limit.
    rlimit nofile{};
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    auto backend = TlsBackend::start(std::move(o));
    if (!backend) {
        std::cerr << "lm-test-backend: " << backend.error().message() << "\n";
        return 1;
    }
    {
        std::lock_guard lock(gOutMu);
        std::fprintf(stdout, "listening %s\n", (*backend)->endpoint().c_str());
        std::fflush(stdout);
    }
    int sig = 0;
    sigwait(&stopSignals, &sig);
    (*backend)->stop();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "lm-test-backend: " << e.what() << "\n";
        return 1;
    }
}
