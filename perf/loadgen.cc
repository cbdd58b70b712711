// SPDX-License-Identifier: Apache-2.0
// lm-loadgen: time-bounded plaintext TCP load (bulk, ping-pong, connect, idle) printing one JSON line.
//
// One thread, one epoll set, non-blocking sockets, level-triggered. Every mode ends at its
// deadline whatever the peer does, so a stuck proxy costs a phase, never the whole bench.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lastmile::perf {
namespace {

using Json = nlohmann::ordered_json;

enum class Mode { Upload, Download, Keepalive, Connect, Idle, Check };
enum class Proto { Echo, Http };

struct Options {
    Mode mode = Mode::Keepalive;
    Proto proto = Proto::Echo;
    std::string target;
    unsigned connections = 1;
    double duration = 5.0;
    std::size_t messageBytes = 64;    // echo request size (keepalive, connect, idle)
    std::size_t chunkBytes = 65'536;  // upload write size
    std::size_t checkBytes = 4u << 20;
    std::string path = "/";           // http proto: request path
    std::string hello;                // download: bytes sent once after connecting
    unsigned maxConnecting = 128;     // idle: connections in their handshake at a time
    double setupTimeout = 30.0;       // idle: bound on establishing all connections
    double intervalMs = 0;            // connect: pause of each slot between connections
    bool silent = false;              // idle: connect and send nothing (no round trip)
};

std::uint64_t nowNs() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000ULL + std::uint64_t(ts.tv_nsec);
}

// Deterministic byte pattern so the check mode can verify any offset without storing it.
std::uint8_t patternByte(std::uint64_t stream, std::uint64_t offset) {
    std::uint64_t x = (stream + 1) * 0x9E3779B97F4A7C15ULL + (offset / 8) * 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 29;
    return std::uint8_t(x >> (8 * (offset % 8)));
}

Result<sockaddr_in> parseTarget(const std::string& text) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        return fail(Errc::Invalid, "target " + text + ": expected IPv4:PORT");
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    const std::string host = text.substr(0, colon);
    if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
        return fail(Errc::Invalid, "target " + text + ": not an IPv4 address");
    }
    unsigned long port = 0;
    try {
        port = std::stoul(text.substr(colon + 1));
    } catch (...) {
        port = 0;
    }
    if (port == 0 || port > 65'535) {
        return fail(Errc::Invalid, "target " + text + ": bad port");
    }
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    return sa;
}

enum class State { Closed, Connecting, Open, Done };

struct Conn {
    UniqueFd fd;
    State state = State::Closed;
    std::uint64_t started = 0;     // connect() (connect mode) or request sent (keepalive)
    std::size_t sent = 0;          // bytes of the current request written / check bytes sent
    std::size_t received = 0;      // bytes of the current response / check bytes received
    bool firstByteSeen = false;
    bool established = false;      // idle: one round trip done
    std::string rx;                // http: response so far
    std::uint32_t events = 0;      // what epoll currently watches
};

struct Stats {
    std::uint64_t bytesSent = 0;
    std::uint64_t bytesReceived = 0;
    std::uint64_t requests = 0;
    std::uint64_t connects = 0;
    std::uint64_t errors = 0;
    std::uint64_t eofs = 0;
    std::uint64_t checkMismatches = 0;
    std::vector<std::uint32_t> latencyUs;  // keepalive: round trip; connect: time to first byte
    std::vector<std::uint32_t> totalUs;    // connect: connect() to full response
};

class LoadGen {
public:
    LoadGen(Options opts, sockaddr_in target) : opts_(std::move(opts)), target_(target) {}

    Result<Json> run();

private:
    Status openConn(std::size_t slot);
    void closeConn(std::size_t slot) {
        Conn& c = conns_[slot];
        c.fd.reset();
        c.state = State::Closed;
        c.rx.clear();
        c.sent = c.received = 0;
        c.firstByteSeen = false;
        c.events = 0;
    }
    void watch(std::size_t slot, std::uint32_t events);
    void onEvent(std::size_t slot, std::uint32_t events);
    void onConnected(std::size_t slot);
    void sendRequest(std::size_t slot);
    void readAvailable(std::size_t slot);
    bool responseComplete(const Conn& c) const;
    void fail(std::size_t slot, bool eof);
    void reopen(std::size_t slot);
    bool measuring() const { return !stopped_; }

    Options opts_;
    sockaddr_in target_;
    UniqueFd epoll_;
    std::vector<Conn> conns_;
    std::string request_;
    std::vector<char> zeros_;
    std::vector<char> buf_;
    Stats stats_;
    bool stopped_ = false;
    std::size_t connecting_ = 0;
    std::size_t established_ = 0;
    std::size_t nextToOpen_ = 0;
    std::vector<std::uint64_t> dueAt_;  // connect with --interval-ms: when a slot reconnects
};

Status LoadGen::openConn(std::size_t slot) {
    Conn& c = conns_[slot];
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return failErrno("socket");
    }
    c.fd.reset(fd);
    if (opts_.mode != Mode::Upload && opts_.mode != Mode::Download) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c.started = nowNs();
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&target_), sizeof target_) == -1 &&
        errno != EINPROGRESS) {
        auto err = failErrno("connect");
        c.fd.reset();
        return err;
    }
    c.state = State::Connecting;
    ++connecting_;
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = slot;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == -1) {
        return failErrno("epoll_ctl add");
    }
    c.events = ev.events;
    return {};
}

void LoadGen::watch(std::size_t slot, std::uint32_t events) {
    Conn& c = conns_[slot];
    if (c.events == events) {
        return;
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = slot;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    c.events = events;
}

// A connection that broke: counted, then replaced (except in idle mode, where it stays lost).
void LoadGen::fail(std::size_t slot, bool eof) {
    if (conns_[slot].state == State::Connecting) {
        --connecting_;
    }
    if (measuring()) {
        if (eof) {
            ++stats_.eofs;
        } else {
            ++stats_.errors;
        }
    }
    closeConn(slot);
    if (opts_.mode != Mode::Idle && opts_.mode != Mode::Check && measuring()) {
        reopen(slot);
    }
}

void LoadGen::reopen(std::size_t slot) {
    if (auto s = openConn(slot); !s) {
        ++stats_.errors;
        closeConn(slot);
    }
}

void LoadGen::sendRequest(std::size_t slot) {
    Conn& c = conns_[slot];
    c.sent = 0;
    c.received = 0;
    c.rx.clear();
    c.firstByteSeen = false;
    if (opts_.mode == Mode::Keepalive) {
        c.started = nowNs();
    }
    ssize_t n = ::send(c.fd.get(), request_.data(), request_.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
        fail(slot, false);
        return;
    }
    c.sent = n > 0 ? std::size_t(n) : 0;
    if (measuring()) {
        stats_.bytesSent += c.sent;
    }
    watch(slot, c.sent < request_.size() ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
}

void LoadGen::onConnected(std::size_t slot) {
    Conn& c = conns_[slot];
    c.state = State::Open;
    --connecting_;
    if (measuring()) {
        ++stats_.connects;
    }
    switch (opts_.mode) {
    case Mode::Upload:
        watch(slot, EPOLLIN | EPOLLOUT);
        break;
    case Mode::Download:
        if (!opts_.hello.empty()) {
            ::send(c.fd.get(), opts_.hello.data(), opts_.hello.size(), MSG_NOSIGNAL);
        }
        watch(slot, EPOLLIN);
        break;
    case Mode::Check:
        c.sent = c.received = 0;
        watch(slot, EPOLLIN | EPOLLOUT);
        break;
    case Mode::Idle:
        if (opts_.silent) {
            // Established once connected; EPOLLIN only reports the peer closing it.
            c.established = true;
            ++established_;
            watch(slot, EPOLLIN);
            break;
        }
        sendRequest(slot);
        break;
    default:
        sendRequest(slot);
        break;
    }
}

bool LoadGen::responseComplete(const Conn& c) const {
    if (opts_.proto == Proto::Echo) {
        return c.received >= request_.size();
    }
    auto end = c.rx.find("\r\n\r\n");
    if (end == std::string::npos) {
        return false;
    }
    std::size_t length = 0;
    std::string head = c.rx.substr(0, end);
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (auto at = head.find("content-length:"); at != std::string::npos) {
        length = std::strtoull(head.c_str() + at + 15, nullptr, 10);
    }
    return c.rx.size() >= end + 4 + length;
}

void LoadGen::readAvailable(std::size_t slot) {
    Conn& c = conns_[slot];
    for (;;) {
        ssize_t n = ::recv(c.fd.get(), buf_.data(), buf_.size(), 0);
        if (n == 0) {
            fail(slot, true);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            fail(slot, false);
            return;
        }
        const auto got = std::size_t(n);
        if (measuring()) {
            stats_.bytesReceived += got;
        }
        switch (opts_.mode) {
        case Mode::Upload:
        case Mode::Download:
            continue;  // bulk: only the byte count matters
        case Mode::Check: {
            for (std::size_t i = 0; i < got; ++i) {
                if (std::uint8_t(buf_[i]) != patternByte(slot, c.received + i)) {
                    ++stats_.checkMismatches;
                }
            }
            c.received += got;
            if (c.received >= opts_.checkBytes) {
                c.state = State::Done;
                ++established_;
                closeConn(slot);
                conns_[slot].state = State::Done;
                return;
            }
            continue;
        }
        default:
            break;
        }
        const std::uint64_t t = nowNs();
        if (!c.firstByteSeen) {
            c.firstByteSeen = true;
            if (opts_.mode == Mode::Connect && measuring()) {
                stats_.latencyUs.push_back(std::uint32_t((t - c.started) / 1000));
            }
        }
        c.received += got;
        if (opts_.proto == Proto::Http) {
            c.rx.append(buf_.data(), got);
        }
        if (!responseComplete(c)) {
            continue;
        }
        switch (opts_.mode) {
        case Mode::Keepalive:
            if (measuring()) {
                ++stats_.requests;
                stats_.latencyUs.push_back(std::uint32_t((t - c.started) / 1000));
            }
            sendRequest(slot);
            return;
        case Mode::Connect:
            if (measuring()) {
                ++stats_.requests;
                stats_.totalUs.push_back(std::uint32_t((t - c.started) / 1000));
            }
            closeConn(slot);
            if (opts_.intervalMs > 0) {
                dueAt_[slot] = t + std::uint64_t(opts_.intervalMs * 1e6);
            } else if (measuring()) {
                reopen(slot);
            }
            return;
        case Mode::Idle:
            if (!c.established) {
                c.established = true;
                ++established_;
                ++stats_.requests;
            }
            c.received = 0;
            c.rx.clear();
            continue;
        default:
            return;
        }
    }
}

void LoadGen::onEvent(std::size_t slot, std::uint32_t events) {
    Conn& c = conns_[slot];
    if (!c.fd.valid()) {
        return;
    }
    if (c.state == State::Connecting) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
            return;
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
            fail(slot, false);
            return;
        }
        onConnected(slot);
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        readAvailable(slot);
        if (!conns_[slot].fd.valid() || conns_[slot].state != State::Open) {
            return;
        }
    }
    if ((events & EPOLLOUT) == 0) {
        return;
    }
    Conn& o = conns_[slot];
    if (opts_.mode == Mode::Upload) {
        for (;;) {
            ssize_t n = ::send(o.fd.get(), zeros_.data(), zeros_.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno != EAGAIN && errno != EINTR) {
                    fail(slot, false);
                }
                return;
            }
            if (measuring()) {
                stats_.bytesSent += std::size_t(n);
            }
        }
    }
    if (opts_.mode == Mode::Check) {
        while (o.sent < opts_.checkBytes) {
            const std::size_t len = std::min<std::size_t>(buf_.size(), opts_.checkBytes - o.sent);
            std::vector<char> out(len);
            for (std::size_t i = 0; i < len; ++i) {
                out[i] = char(patternByte(slot, o.sent + i));
            }
            ssize_t n = ::send(o.fd.get(), out.data(), len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno != EAGAIN && errno != EINTR) {
                    fail(slot, false);
                }
                return;
            }
            o.sent += std::size_t(n);
            stats_.bytesSent += std::size_t(n);
        }
        watch(slot, EPOLLIN);
        return;
    }
    // The rest of a partially written request.
    if (o.sent < request_.size()) {
        ssize_t n = ::send(o.fd.get(), request_.data() + o.sent, request_.size() - o.sent,
                           MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            fail(slot, false);
            return;
        }
        if (n > 0) {
            o.sent += std::size_t(n);
            if (measuring()) {
                stats_.bytesSent += std::size_t(n);
            }
        }
    }
    if (o.sent >= request_.size()) {
        watch(slot, EPOLLIN);
    }
}

Json percentiles(std::vector<std::uint32_t>& v) {
    Json j = Json::object();
    if (v.empty()) {
        return j;
    }
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[std::min(v.size() - 1, std::size_t(q * double(v.size())))]; };
    j["p50"] = at(0.50);
    j["p90"] = at(0.90);
    j["p99"] = at(0.99);
    j["p999"] = at(0.999);
    j["max"] = v.back();
    double sum = 0;
    for (auto x : v) {
        sum += x;
    }
    j["mean"] = sum / double(v.size());
    return j;
}

Result<Json> LoadGen::run() {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        return failErrno("epoll_create1");
    }
    epoll_.reset(ep);
    conns_.resize(opts_.connections);
    dueAt_.assign(opts_.connections, 0);
    zeros_.assign(opts_.chunkBytes, 0);
    buf_.resize(256 * 1024);
    if (opts_.proto == Proto::Http) {
        request_ = "GET " + opts_.path + " HTTP/1.1\r\nHost: backend.example.test\r\n\r\n";
    } else {
        request_.assign(opts_.messageBytes, 'x');
        if (!request_.empty()) {
            request_.back() = '\n';
        }
    }

    const std::uint64_t start = nowNs();
    std::uint64_t measureStart = start;
    std::uint64_t deadline = start + std::uint64_t(opts_.duration * 1e9);
    const bool paced = opts_.mode == Mode::Idle || opts_.mode == Mode::Check;
    const std::uint64_t setupDeadline = start + std::uint64_t(opts_.setupTimeout * 1e9);
    bool ready = !paced;
    if (!paced) {
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            reopen(i);
        }
    }

    std::vector<epoll_event> events(1024);
    for (;;) {
        const std::uint64_t now = nowNs();
        if (paced && !ready) {
            while (nextToOpen_ < conns_.size() && connecting_ < opts_.maxConnecting &&
                   (nextToOpen_ - established_) < opts_.maxConnecting) {
                reopen(nextToOpen_++);
            }
            std::size_t settled = 0;
            for (const auto& c : conns_) {
                settled += (c.established || c.state == State::Done || !c.fd.valid()) ? 1 : 0;
            }
            if ((nextToOpen_ == conns_.size() && settled == conns_.size()) || now >= setupDeadline) {
                ready = true;
                measureStart = now;
                deadline = now + std::uint64_t(opts_.duration * 1e9);
                if (opts_.mode == Mode::Idle) {
                    std::fprintf(stderr, "ready %zu\n", established_);
                    std::fflush(stderr);
                } else {
                    break;  // check: all streams verified (or the setup bound hit)
                }
            }
        }
        if (ready && now >= deadline) {
            break;
        }
        std::uint64_t until = ready ? deadline : std::min(setupDeadline, now + 50'000'000);
        for (std::size_t i = 0; i < dueAt_.size(); ++i) {
            if (dueAt_[i] != 0 && dueAt_[i] <= now) {
                dueAt_[i] = 0;
                reopen(i);
            } else if (dueAt_[i] != 0) {
                until = std::min(until, dueAt_[i]);
            }
        }
        int timeoutMs = int(std::min<std::uint64_t>((until - now) / 1'000'000 + 1, 50));
        int n = ::epoll_wait(epoll_.get(), events.data(), int(events.size()), timeoutMs);
        if (n < 0 && errno != EINTR) {
            return failErrno("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            onEvent(events[std::size_t(i)].data.u64, events[std::size_t(i)].events);
        }
    }
    const std::uint64_t end = nowNs();
    stopped_ = true;
    std::size_t alive = 0;
    for (auto& c : conns_) {
        alive += (c.fd.valid() && c.state == State::Open) ? 1 : 0;
    }
    for (std::size_t i = 0; i < conns_.size(); ++i) {
        closeConn(i);
    }

    const double seconds = double(end - measureStart) / 1e9;
    static const char* kModeNames[] = {"upload", "download", "keepalive", "connect", "idle", "check"};
    Json j;
    j["mode"] = kModeNames[int(opts_.mode)];
    j["target"] = opts_.target;
    j["connections"] = opts_.connections;
    j["duration_s"] = seconds;
    j["bytes_sent"] = stats_.bytesSent;
    j["bytes_received"] = stats_.bytesReceived;
    j["requests"] = stats_.requests;
    j["connects"] = stats_.connects;
    j["errors"] = stats_.errors;
    j["eofs"] = stats_.eofs;
    switch (opts_.mode) {
    case Mode::Upload:
        j["mb_per_s"] = double(stats_.bytesSent) / seconds / 1e6;
        break;
    case Mode::Download:
        j["mb_per_s"] = double(stats_.bytesReceived) / seconds / 1e6;
        break;
    case Mode::Keepalive:
        j["requests_per_s"] = double(stats_.requests) / seconds;
        j["latency_us"] = percentiles(stats_.latencyUs);
        break;
    case Mode::Connect:
        j["connections_per_s"] = double(stats_.requests) / seconds;
        j["ttfb_us"] = percentiles(stats_.latencyUs);
        j["total_us"] = percentiles(stats_.totalUs);
        break;
    case Mode::Idle:
        j["established"] = established_;
        j["alive_at_end"] = alive;
        break;
    case Mode::Check:
        j["verified_streams"] = established_;
        j["mismatched_bytes"] = stats_.checkMismatches;
        j["ok"] = established_ == conns_.size() && stats_.checkMismatches == 0 &&
                  stats_.errors == 0 && stats_.eofs == 0;
        break;
    }
    return j;
}

void raiseFdLimit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int realMain(int argc, char** argv) {
    Options opts;
    std::string mode = "keepalive";
    std::string proto = "echo";
    CLI::App app{"lm-loadgen: time-bounded TCP load for perf/bench; prints one JSON line"};
    app.add_option("--mode", mode, "upload | download | keepalive | connect | idle | check")
        ->check(CLI::IsMember({"upload", "download", "keepalive", "connect", "idle", "check"}));
    app.add_option("--target", opts.target, "IPv4:PORT to connect to")->required();
    app.add_option("-c,--connections", opts.connections, "concurrent connections")
        ->check(CLI::Range(1u, 200'000u));
    app.add_option("-d,--duration", opts.duration, "seconds of load (idle: of holding)")
        ->check(CLI::Range(0.01, 3600.0));
    app.add_option("--proto", proto, "request/response framing: echo | http")
        ->check(CLI::IsMember({"echo", "http"}));
    app.add_option("--message-bytes", opts.messageBytes, "echo request size")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    app.add_option("--chunk-bytes", opts.chunkBytes, "upload write size")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
    app.add_option("--check-bytes", opts.checkBytes, "check: bytes echoed per connection");
    app.add_option("--path", opts.path, "http: request path");
    app.add_option("--hello", opts.hello, "download: bytes to send after connecting");
    app.add_option("--interval-ms", opts.intervalMs, "connect: pause between a slot's connections")
        ->check(CLI::Range(0.0, 60'000.0));
    app.add_option("--setup-timeout", opts.setupTimeout, "idle/check: seconds to establish");
    app.add_flag("--silent", opts.silent,
                 "idle: send nothing, not even the first round trip (clients that connect and go quiet)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    static const std::vector<std::string> kModes{"upload", "download", "keepalive",
                                                 "connect", "idle", "check"};
    opts.mode = Mode(std::find(kModes.begin(), kModes.end(), mode) - kModes.begin());
    opts.proto = proto == "http" ? Proto::Http : Proto::Echo;
    if (opts.mode == Mode::Check) {
        opts.setupTimeout = std::min(opts.setupTimeout, opts.duration);
    }
    auto target = parseTarget(opts.target);
    if (!target) {
        std::fprintf(stderr, "lm-loadgen: %s\n", target.error().message().c_str());
        return 2;
    }
    ::signal(SIGPIPE, SIG_IGN);
    raiseFdLimit();
    LoadGen gen(opts, *target);
    auto result = gen.run();
    if (!result) {
        std::fprintf(stderr, "lm-loadgen: %s\n", result.error().message().c_str());
        return 1;
    }
    std::printf("%s\n", result->dump().c_str());
    return 0;
}

}  // namespace
}  // namespace lastmile::perf

int main(int argc, char** argv) {
    try {
        return lastmile::perf::realMain(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lm-loadgen: %s\n", e.what());
        return 1;
    }
}
