// SPDX-License-Identifier: Apache-2.0
// lm-test-backend as a child process: the readiness line, --verbose JSON, workers, SIGTERM exit.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "dataplane/tls/openssl_handles.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"

extern char** environ;

namespace lastmile::test {
namespace {

constexpr int kWaitMs = 10000;

// The backend binary with stdout on a pipe, so readiness is read, not polled for.
class BackendProcess {
public:
    explicit BackendProcess(std::vector<std::string> args) {
        const char* bin = std::getenv("LM_TEST_BACKEND");
        if (bin == nullptr) {
            throw std::runtime_error("LM_TEST_BACKEND is not set");
        }
        args.insert(args.begin(), bin);
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) == -1) {
            throw std::runtime_error("pipe2");
        }
        UniqueFd readEnd(fds[0]);
        UniqueFd writeEnd(fds[1]);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), STDOUT_FILENO);
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        int rc = posix_spawn(&pid_, bin, &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) {
            throw std::runtime_error("posix_spawn: " + std::string(std::strerror(rc)));
        }
        out_ = std::move(readEnd);
    }
    ~BackendProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    // The next stdout line; empty on EOF or after kWaitMs without one.
    std::string readLine() {
        for (;;) {
            auto nl = buffered_.find('\n');
            if (nl != std::string::npos) {
                std::string line = buffered_.substr(0, nl);
                buffered_.erase(0, nl + 1);
                return line;
            }
            pollfd p{out_.get(), POLLIN, 0};
            if (::poll(&p, 1, kWaitMs) != 1) {
                return {};
            }
            char buf[4096];
            ssize_t n = ::read(out_.get(), buf, sizeof buf);
            if (n <= 0) {
                return {};
            }
            buffered_.append(buf, static_cast<std::size_t>(n));
        }
    }

    // Sends `sig` and returns the exit status once stdout closes (bounded by kWaitMs).
    int stopWith(int sig) {
        ::kill(pid_, sig);
        while (!readLine().empty()) {
        }
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

private:
    pid_t pid_ = -1;
    UniqueFd out_;
    std::string buffered_;
};

std::uint16_t portOf(const std::string& listeningLine) {
    const std::string prefix = "listening 127.0.0.1:";
    if (listeningLine.rfind(prefix, 0) != 0) {
        throw std::runtime_error("unexpected readiness line: " + listeningLine);
    }
    return static_cast<std::uint16_t>(std::stoul(listeningLine.substr(prefix.size())));
}

UniqueFd connectTcp(std::uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == -1) {
        throw std::runtime_error("connect");
    }
    return fd;
}

TEST(LmTestBackendTest, ServesTlsReportsVerboseJsonAndExitsZeroOnSigterm) {
    // A backend that closes early must fail the assertions below, not kill the test binary.
    ::signal(SIGPIPE, SIG_IGN);
    TestPki pki;
    IssuedCert leaf = pki.issueServer("bench.test");
    TempDir dir;
    BackendProcess backend({"--cert", dir.write("chain.pem", leaf.chainPem), "--key",
                            dir.write("key.pem", leaf.keyPem), "--mode", "source",
                            "--source-bytes", "100000", "--alpn", "h2,http/1.1", "--verbose"});
    std::uint16_t port = portOf(backend.readLine());

    UniqueFd fd = connectTcp(port);
    tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    tls::BioPtr bio(BIO_new_mem_buf(pki.caPem().data(), static_cast<int>(pki.caPem().size())));
    tls::X509Ptr ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca.get());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    static const unsigned char kAlpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn - 1);
    tls::SslPtr ssl(SSL_new(ctx.get()));
    SSL_set_fd(ssl.get(), fd.get());
    SSL_set_tlsext_host_name(ssl.get(), "bench.test");
    SSL_set1_host(ssl.get(), "bench.test");
    ASSERT_EQ(SSL_connect(ssl.get()), 1);
    std::size_t total = 0;
    char buf[65536];
    int n;
    while ((n = SSL_read(ssl.get(), buf, sizeof buf)) > 0) {
        total += static_cast<std::size_t>(n);
    }
    EXPECT_EQ(SSL_get_error(ssl.get(), n), SSL_ERROR_ZERO_RETURN)
        << ERR_error_string(ERR_peek_error(), nullptr) << ", errno " << errno;
    EXPECT_EQ(total, 100000u);
    EXPECT_EQ(SSL_shutdown(ssl.get()), 1) << errno;

    auto line = nlohmann::json::parse(backend.readLine());
    EXPECT_EQ(line["sni"], "bench.test");
    EXPECT_EQ(line["alpn"], "http/1.1");
    EXPECT_EQ(line["version"], "TLSv1.3");
    EXPECT_EQ(line["client_cn"], "");
    EXPECT_EQ(line["resumed"], false);
    EXPECT_EQ(line["bytes"], 0);
    EXPECT_EQ(backend.stopWith(SIGTERM), 0);
}

TEST(LmTestBackendTest, PlainEchoOnTwoWorkersSharesOnePortAndExitsZeroOnSigint) {
    BackendProcess backend({"--plain", "--workers", "2"});
    std::uint16_t port = portOf(backend.readLine());
    for (int i = 0; i < 8; ++i) {
        UniqueFd fd = connectTcp(port);
        std::string msg = "hello " + std::to_string(i);
        ASSERT_EQ(::send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(msg.size()));
        ::shutdown(fd.get(), SHUT_WR);
        std::string got;
        char buf[256];
        ssize_t r;
        while ((r = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) {
            got.append(buf, static_cast<std::size_t>(r));
        }
        EXPECT_EQ(got, msg);
    }
    EXPECT_EQ(backend.stopWith(SIGINT), 0);
}

TEST(LmTestBackendTest, RefusesTlsWithoutCertificate) {
    const char* bin = std::getenv("LM_TEST_BACKEND");
    ASSERT_NE(bin, nullptr);
    Outcome o = runProcess({bin, "--mode", "echo"});
    EXPECT_NE(o.exitCode, 0);
    EXPECT_EQ(o.out, "");
}

}  // namespace
}  // namespace lastmile::test
