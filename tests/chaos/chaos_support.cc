// SPDX-License-Identifier: Apache-2.0
// Fault campaign harness: lastmiled under test, fault-injecting taps, lm-loadgen, reports.
#include "tests/chaos/chaos_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "tests/support/admin.h"
#include "tests/support/client.h"
#include "tests/support/manifests.h"

namespace lastmile::chaos {

using nlohmann::json;

Footprint footprint(pid_t pid) {
    Footprint f;
    f.fds = test::countFds(pid);
    f.rssKiB = test::rssKiB(pid);
    return f;
}

PeakSampler::PeakSampler(pid_t pid) {
    thread_ = std::thread([this, pid] {
        while (!stop_.load()) {
            const Footprint f = footprint(pid);
            peak_.fds = std::max(peak_.fds, f.fds);
            peak_.rssKiB = std::max(peak_.rssKiB, f.rssKiB);
            std::this_thread::sleep_for(50ms);
        }
    });
}

PeakSampler::~PeakSampler() { peak(); }

Footprint PeakSampler::peak() {
    stop_ = true;
    if (thread_.joinable()) {
        thread_.join();
    }
    return peak_;
}

// ---- Tap.

struct Tap::Pair {
    UniqueFd client;    // lastmiled's side
    UniqueFd upstream;  // the real backend; invalid unless relaying
    TapMode mode = TapMode::Forward;
    std::string first;             // the client's first bytes (up to two)
    std::uint64_t downstream = 0;  // bytes relayed backend -> lastmiled
};

namespace {

void resetOnClose(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// Blocking send of everything with the socket's send timeout; false when the peer is gone.
bool sendFully(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        size -= std::size_t(n);
    }
    return true;
}

void setSendTimeout(int fd) {
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

Tap::Tap(std::uint16_t upstreamPort, TapMode mode, std::uint64_t resetAfterBytes)
    : upstreamPort_(upstreamPort), mode_(mode), resetAfterBytes_(resetAfterBytes) {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (!listener_.valid() || ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 ||
        ::listen(listener_.get(), 4096) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
        throw std::runtime_error("tap: cannot listen on 127.0.0.1:0");
    }
    port_ = ntohs(sa.sin_port);
    epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener_.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &ev);
    ev.data.fd = stop_.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_.get(), &ev);
    thread_ = std::thread([this] { loop(); });
}

Tap::~Tap() {
    const std::uint64_t one = 1;
    if (::write(stop_.get(), &one, sizeof one) != sizeof one) {
        std::cerr << "tap: cannot signal the loop to stop\n";
    }
    thread_.join();
}

std::string Tap::firstPlaintextSample() const {
    std::lock_guard lock(sampleMu_);
    return sample_;
}

void Tap::loop() {
    epoll_event events[64];
    for (;;) {
        const int n = ::epoll_wait(epoll_.get(), events, 64, 1000);
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            if (fd == stop_.get()) {
                byFd_.clear();
                return;
            }
            if (fd == listener_.get()) {
                onAccept();
            } else {
                onReadable(fd);
            }
        }
    }
}

void Tap::onAccept() {
    for (;;) {
        UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!client.valid()) {
            return;
        }
        accepted_.fetch_add(1);
        auto p = std::make_shared<Pair>();
        p->mode = mode_.load();
        setSendTimeout(client.get());
        if (p->mode == TapMode::Forward || p->mode == TapMode::ResetMidTransfer) {
            UniqueFd up(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            sockaddr_in sa{};
            sa.sin_family = AF_INET;
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sa.sin_port = htons(upstreamPort_);
            if (!up.valid() ||
                ::connect(up.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
                continue;  // the backend is gone: lastmiled sees the connection close
            }
            setSendTimeout(up.get());
            p->upstream = std::move(up);
        }
        p->client = std::move(client);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.fd = p->client.get();
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, p->client.get(), &ev);
        byFd_[p->client.get()] = p;
        if (p->upstream.valid()) {
            ev.data.fd = p->upstream.get();
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, p->upstream.get(), &ev);
            byFd_[p->upstream.get()] = p;
        }
    }
}

void Tap::closePair(const std::shared_ptr<Pair>& p, bool reset) {
    for (UniqueFd* fd : {&p->client, &p->upstream}) {
        if (!fd->valid()) {
            continue;
        }
        if (reset) {
            resetOnClose(fd->get());
        }
        byFd_.erase(fd->get());
        fd->reset();  // close() drops it from the epoll set
    }
    if (reset) {
        resets_.fetch_add(1);
    }
}

void Tap::onReadable(int fd) {
    auto it = byFd_.find(fd);
    if (it == byFd_.end()) {
        return;
    }
    std::shared_ptr<Pair> p = it->second;
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        closePair(p, false);
        return;
    }
    const bool fromClient = fd == p->client.get();
    if (fromClient && p->first.size() < 2) {
        p->first.append(buf, std::min<std::size_t>(std::size_t(n), 2 - p->first.size()));
        if (p->first.size() == 2 && p->first != std::string("\x16\x03", 2)) {
            plaintext_.fetch_add(1);
            std::lock_guard lock(sampleMu_);
            if (sample_.empty()) {
                sample_.assign(buf, std::min<std::size_t>(std::size_t(n), 64));
            }
        }
    }
    switch (p->mode) {
    case TapMode::ResetOnHello:
        closePair(p, true);
        return;
    case TapMode::Blackhole:
        return;
    case TapMode::Forward:
    case TapMode::ResetMidTransfer:
        break;
    }
    const int to = fromClient ? p->upstream.get() : p->client.get();
    if (!sendFully(to, buf, std::size_t(n))) {
        closePair(p, false);
        return;
    }
    if (!fromClient) {
        p->downstream += std::uint64_t(n);
        if (p->mode == TapMode::ResetMidTransfer && p->downstream >= resetAfterBytes_) {
            closePair(p, true);
        }
    }
}

// ---- LoadGen.

LoadGen::LoadGen(std::vector<std::string> args) {
    thread_ = std::thread([this, args = std::move(args)]() mutable {
        try {
            auto r = test::runProcess(args, {}, "", std::chrono::seconds(240));
            if (r.exitCode != 0) {
                failure_ = "lm-loadgen exited " + std::to_string(r.exitCode) + ": " + r.err;
                return;
            }
            result_ = json::parse(r.out);
        } catch (const std::exception& e) {
            failure_ = std::string("lm-loadgen: ") + e.what();
        }
    });
}

LoadGen::~LoadGen() {
    if (thread_.joinable()) {
        thread_.join();
    }
}

json LoadGen::result() {
    if (thread_.joinable()) {
        thread_.join();
    }
    if (!failure_.empty()) {
        throw std::runtime_error(failure_);
    }
    return result_;
}

// ---- ChaosTest.

void ChaosTest::SetUpTestSuite() {
    // 10,000 idle clients hold ~10,000 descriptors here and ~20,000 in lastmiled, which
    // inherits this limit and raises its soft limit to it. Root may raise the hard limit.
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
        rlimit want{std::max<rlim_t>(r.rlim_max, 65536), std::max<rlim_t>(r.rlim_max, 65536)};
        if (::setrlimit(RLIMIT_NOFILE, &want) != 0) {
            r.rlim_cur = r.rlim_max;
            ::setrlimit(RLIMIT_NOFILE, &r);
        }
    }
}

void ChaosTest::TearDown() {
    if (HasFailure() && daemon_) {
        std::cerr << "---- lastmiled " << (alive() ? "is running" : "is gone")
                  << "; stderr (tail) ----\n";
        const std::string log = daemon_->stderrText();
        std::cerr << (log.size() > 4000 ? log.substr(log.size() - 4000) : log) << "\n";
    }
}

void ChaosTest::startDaemon(const std::string& timeouts, const std::string& extraConfig) {
    ++starts_;
    ::mkdir((dir_.path() + "/logs" + std::to_string(starts_)).c_str(), 0700);
    const std::string config = dir_.write(
        "lastmiled.yaml", "workers: 2\nbindAddress: 127.0.0.1\nconnectTimeout: " + timeouts +
                              "\nhandshakeTimeout: " + timeouts +
                              "\nidleTimeout: 30s\ndrainTimeout: 1s\n"
                              // The backends are on loopback, which the default refuses.
                              "allowedBackendNetworks: [\"127.0.0.0/8\", \"::1/128\"]\n" +
                              extraConfig);
    notify_ =
        std::make_unique<test::NotifySocket>(dir_.path() + "/notify" + std::to_string(starts_));
    std::vector<std::string> argv{test::requiredEnv("LASTMILED"), "--config",     config,
                                  "--state-dir",       stateDir(),     "--api-socket",
                                  socketPath(),        "--admin-http", "127.0.0.1:0"};
    daemon_ = std::make_unique<test::ChildProcess>(
        argv, std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_->path()}},
        dir_.path() + "/logs" + std::to_string(starts_));
    notify_->waitFor("READY=1");
    admin_ = test::adminAddress(daemon_->stderrText());
}

bool ChaosTest::alive() const {
    return daemon_ && ::kill(daemon_->pid(), 0) == 0 &&
           footprint(daemon_->pid()).rssKiB > 0;  // a zombie has no VmRSS line
}

test::Outcome ChaosTest::ctl(std::vector<std::string> args) {
    args.insert(args.begin(), test::requiredEnv("LASTMILECTL"));
    return test::runProcess(args, {{"LASTMILE_SERVER", "unix://" + socketPath()}});
}

test::Outcome ChaosTest::applyYaml(const std::string& yaml) {
    const std::string file = dir_.write("apply-" + std::to_string(++applied_) + ".yaml", yaml);
    return ctl({"apply", "-f", file});
}

void ChaosTest::apply(const std::string& yaml) {
    auto r = applyYaml(yaml);
    if (r.exitCode != 0) {
        throw std::runtime_error("lastmilectl apply failed: " + r.out + r.err + "\n" + yaml);
    }
}

json ChaosTest::getJson(const std::string& kind, const std::string& name) {
    auto r = ctl({"get", kind, name, "-o", "json"});
    if (r.exitCode != 0) {
        return json();
    }
    return json::parse(r.out, nullptr, false);
}

bool ChaosTest::gatewayProgrammed() {
    return test::conditionTrue(getJson("gateway", "edge"), "Programmed");
}

std::string ChaosTest::caConfigMap(const std::string& pem) { return test::caConfigMapYaml(pem); }

std::string ChaosTest::policy(const std::string& service) {
    return test::policyYaml(service, kHostname);
}

std::vector<std::string> ChaosTest::serve(const std::vector<Route>& routes) {
    std::vector<std::string> addresses;
    std::vector<test::RoutedService> services;
    for (const auto& [service, port, protocol] : routes) {
        const std::uint16_t listen = test::freePort();
        addresses.push_back("127.0.0.1:" + std::to_string(listen));
        services.push_back({service, listen, port, protocol, {}});
    }
    const std::string docs = test::edgeYaml(services, pki_.caPem(), kHostname);
    apply(docs);
    if (!eventually([&] { return gatewayProgrammed(); })) {
        throw std::runtime_error("Gateway edge is not Programmed: " +
                                 getJson("gateway", "edge").dump(2));
    }
    return addresses;
}

std::unique_ptr<test::TlsBackend> ChaosTest::startBackend(test::BackendMode mode,
                                                          unsigned workers) {
    test::TlsBackendOptions o;
    o.workers = workers;
    o.serverCert = pki_.issueServer(kHostname);
    o.mode = mode;
    auto backend = test::TlsBackend::start(std::move(o));
    if (!backend) {
        throw std::runtime_error("backend: " + backend.error().message());
    }
    return std::move(*backend);
}

double ChaosTest::metric(const std::string& series) {
    return test::metricValue(test::metricsText(admin_), series);
}

bool ChaosTest::echoes(const std::string& address) {
    try {
        UniqueFd fd = test::dial(address, nullptr, 3);
        const std::string payload = "still serving";
        return test::sendAll(fd.get(), payload) &&
               test::readExactly(fd.get(), payload.size()) == payload;
    } catch (const std::exception&) {
        return false;
    }
}

std::vector<std::string> ChaosTest::loadgen(const std::string& mode, const std::string& target,
                                            unsigned connections, double seconds) {
    return {test::requiredEnv("LM_LOADGEN"),
            "--mode",
            mode,
            "--target",
            target,
            "-c",
            std::to_string(connections),
            "-d",
            std::to_string(seconds)};
}

Footprint ChaosTest::settle(const Footprint& baseline, std::chrono::milliseconds timeout) {
    Footprint now;
    eventually(
        [&] {
            now = footprint(pid());
            return now.fds <= baseline.fds + kFdSlack;
        },
        timeout);
    // Buffers kept for reuse go back to the budget (and the heap) once unused for a second:
    // RSS means something only after the buffer gauge has fallen to nothing.
    eventually([&] { return metric("lastmile_buffer_memory_bytes") == 0; }, timeout);
    // lastmiled trims its heap after buffers come back: read RSS once it stopped falling
    // (bounded).
    for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(500ms);
        const Footprint next = footprint(pid());
        const bool stable = next.rssKiB + 64 >= now.rssKiB;
        now = next;
        if (stable && i >= 3) {
            break;
        }
    }
    now.heapKiB = static_cast<std::uint64_t>(metric("lastmile_heap_in_use_bytes")) / 1024;
    return now;
}

Rounds ChaosTest::twice(const std::function<void(int)>& round,
                        std::chrono::milliseconds settleTimeout) {
    Rounds r;
    r.baseline = footprint(pid());
    for (int i = 0; i < 2 && !HasFatalFailure(); ++i) {
        PeakSampler sampler(pid());
        round(i);
        r.peak = sampler.peak();
        r.after[i] = settle(r.baseline, settleTimeout);
    }
    return r;
}

void ChaosTest::expectSettled(const Rounds& r) {
    EXPECT_LE(r.after[1].fds, r.baseline.fds + kFdSlack) << "descriptors left after the fault";
    EXPECT_LE(r.after[1].rssKiB, r.baseline.rssKiB + kSettledRssSlackKiB)
        << "RSS did not come back after the fault";
    // Whether the allocator gave freed memory back to the kernel varies from round to round,
    // so a leak is looked for in what malloc still has handed out: a leak grows it by a
    // round's worth each time.
    EXPECT_LE(r.after[1].heapKiB, r.after[0].heapKiB + kRoundHeapSlackKiB)
        << "the heap in use grew from one identical round to the next: " << r.after[0].heapKiB
        << " -> " << r.after[1].heapKiB << " KiB";
}

void ChaosTest::report(const std::string& fault, const std::string& load, const std::string& result,
                       const Footprint& before, const Footprint& after, const Footprint& peak) {
    std::ostringstream line;
    line << "chaos-report | " << fault << " | " << load << " | " << result << " | " << before.fds
         << " -> " << after.fds << " | " << before.rssKiB << " -> " << after.rssKiB << " | ";
    if (peak.fds == 0) {
        line << "- |";
    } else {
        line << peak.fds << " / " << peak.rssKiB << " |";
    }
    std::cout << line.str() << std::endl;
    RecordProperty("report", line.str());
}

}  // namespace lastmile::chaos
