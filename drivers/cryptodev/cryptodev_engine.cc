// SPDX-License-Identifier: Apache-2.0
// CryptodevEngine: DPDK's EAL started once from the configuration, the first configured device
// that does AES-GCM, and per session a RecordLayer whose AEAD runs on that device.
#include "drivers/cryptodev/cryptodev_engine.h"

#include <pthread.h>
#include <rte_cryptodev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>

#include "base/log.h"
#include "drivers/cryptodev/device.h"
#include "drivers/tls/keys.h"
#include "drivers/tls/secrets.h"

namespace lastmile::drivers::cryptodev {
namespace {

constexpr const char* kLog = "cryptodev";
// Two device sessions (seal and open) per connection; more connections fall back to openssl.
constexpr std::uint32_t kDeviceSessions = 8192;
// The queue path: at most this many workers get a queue pair, each this deep.
constexpr std::uint16_t kMaxQueuePairs = 64;
constexpr std::uint32_t kQueueDescriptors = 2048;

bool hostHasHugepages() {
    std::ifstream meminfo("/proc/meminfo");
    std::string line;
    while (std::getline(meminfo, line)) {
        if (line.rfind("HugePages_Total:", 0) == 0) {
            return std::stoul(line.substr(16)) > 0;
        }
    }
    return false;
}

// rte_eal_init runs once per process and cannot be retried, so its outcome is kept.
struct Eal {
    Status started = fail(Errc::Unavailable, "not started");
    std::string runtimeDir;

    ~Eal() {
        if (started) {
            rte_eal_cleanup();
            // EAL leaves its per-process directory behind; the prefix is ours alone.
            ::rmdir(runtimeDir.c_str());
        }
    }
};

Eal& eal() {
    static Eal instance;
    return instance;
}

const Status& startEal(const CryptodevConfig& config) {
    static std::once_flag once;
    std::call_once(once, [&config] {
        std::vector<std::string> args = {
            "lastmiled", "-l", "0", "--no-shconf", "--no-telemetry",
            "--file-prefix=lastmile-" + std::to_string(::getpid()),
        };
        if (!hostHasHugepages() &&
            std::none_of(config.eal.begin(), config.eal.end(),
                         [](const std::string& a) { return a.rfind("--huge-dir=", 0) == 0; })) {
            args.emplace_back("--no-huge");
        }
        if (std::none_of(config.eal.begin(), config.eal.end(),
                         [](const std::string& a) { return a.rfind("--allow=", 0) == 0; })) {
            args.emplace_back("--no-pci");
        }
        args.insert(args.end(), config.eal.begin(), config.eal.end());
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        // EAL pins the calling thread to its main lcore; the workers it would pass that on to
        // are started later by this thread, so the mask goes back as it was.
        cpu_set_t affinity;
        const bool savedAffinity =
            ::pthread_getaffinity_np(::pthread_self(), sizeof affinity, &affinity) == 0;
        rte_openlog_stream(stderr);  // not syslog too: the journal already has stderr
        const int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
        if (savedAffinity) {
            ::pthread_setaffinity_np(::pthread_self(), sizeof affinity, &affinity);
        }
        if (rc < 0) {
            eal().started = fail(Errc::Unavailable, std::string("starting DPDK (rte_eal_init): ") +
                                                        rte_strerror(rte_errno));
            return;
        }
        eal().runtimeDir = rte_eal_get_runtime_dir();
        eal().started = {};
    });
    return eal().started;
}

}  // namespace

namespace {

class CryptodevSession final : public RecordSession {
public:
    CryptodevSession(std::unique_ptr<tls::RecordLayer> layer, Wire& wire)
        : layer_(std::move(layer)), wire_(wire) {}
    std::string_view engine() const noexcept override { return "cryptodev"; }
    Result<std::size_t> seal(Chunk& plain) override { return layer_->seal(plain, *wire_.toPeer); }
    Result<OpenResult> open(Chunk& plain) override { return layer_->open(*wire_.fromPeer, plain); }
    Result<bool> closeNotify() override { return layer_->closeNotify(*wire_.toPeer); }
    bool unsettled() const noexcept override { return layer_->unsettled(); }
    bool onDevice() const noexcept override { return layer_->onDevice(); }

private:
    std::unique_ptr<tls::RecordLayer> layer_;
    Wire& wire_;
};

}  // namespace

CryptodevEngine::CryptodevEngine(const CryptodevConfig& config) {
    if (config.devices.empty()) {
        probe_ = {false, "no crypto device configured (cryptodev.devices)", {}, {}};
        return;
    }
    if (auto s = checkEalArguments(config.eal); !s) {
        probe_ = {false, s.error().message(), {}, {}};
        return;
    }
    if (const Status& started = startEal(config); !started) {
        probe_ = {false, started.error().message(), {}, {}};
        return;
    }
    std::string problems;
    for (const auto& name : config.devices) {
        EngineDevice seen{name, {}};
        const int id = rte_cryptodev_get_dev_id(name.c_str());
        if (id < 0) {
            problems += (problems.empty() ? "" : "; ") + name + ": no such crypto device";
            probe_.devices.push_back(std::move(seen));
            continue;
        }
        rte_cryptodev_info info{};
        rte_cryptodev_info_get(static_cast<std::uint8_t>(id), &info);
        rte_cryptodev_sym_capability_idx idx{};
        idx.type = RTE_CRYPTO_SYM_XFORM_AEAD;
        idx.algo.aead = RTE_CRYPTO_AEAD_AES_GCM;
        const auto* cap = rte_cryptodev_sym_capability_get(static_cast<std::uint8_t>(id), &idx);
        auto gcm = [&](std::uint16_t key, std::uint16_t aad) {
            return cap != nullptr &&
                   rte_cryptodev_sym_capability_check_aead(cap, key, tls::kAeadTag, aad, 12) == 0;
        };
        const bool aes128 = gcm(16, 5) && gcm(16, 13);
        const bool aes256 = gcm(32, 5) && gcm(32, 13);
        const bool cpuCrypto = (info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO) != 0;
        seen.features = {{"driver_" + std::string(info.driver_name), true},
                         {"aes_128_gcm", aes128},
                         {"aes_256_gcm", aes256},
                         {"cpu_crypto", cpuCrypto}};
        probe_.devices.push_back(std::move(seen));
        if (device_ || !(aes128 || aes256)) {
            continue;
        }
        rte_cryptodev_config conf{};
        conf.socket_id = rte_cryptodev_socket_id(static_cast<std::uint8_t>(id));
        // The queue path gives each worker a queue pair of its own.
        conf.nb_queue_pairs =
            cpuCrypto ? 1 : std::min<std::uint16_t>(info.max_nb_queue_pairs, kMaxQueuePairs);
        conf.ff_disable = RTE_CRYPTODEV_FF_ASYMMETRIC_CRYPTO | RTE_CRYPTODEV_FF_SECURITY;
        auto device = std::make_unique<Device>();
        device->id = static_cast<std::uint8_t>(id);
        device->name = name;
        device->aes128 = aes128;
        device->aes256 = aes256;
        device->cpuCrypto = cpuCrypto;
        const std::string pool = "lm_sess_" + std::to_string(id);
        device->sessions = rte_cryptodev_sym_session_pool_create(
            pool.c_str(), kDeviceSessions, rte_cryptodev_sym_get_private_session_size(device->id),
            0, 0, conf.socket_id);
        bool ready = device->sessions != nullptr && rte_cryptodev_configure(device->id, &conf) == 0;
        rte_cryptodev_qp_conf qp{};
        qp.nb_descriptors = kQueueDescriptors;
        qp.mp_session = device->sessions;
        for (std::uint16_t q = 0; ready && !cpuCrypto && q < conf.nb_queue_pairs; ++q) {
            ready = rte_cryptodev_queue_pair_setup(device->id, q, &qp, conf.socket_id) == 0;
        }
        if (!ready || rte_cryptodev_start(device->id) < 0) {
            problems += (problems.empty() ? "" : "; ") + name + ": setting it up failed (" +
                        rte_strerror(rte_errno) + ")";
            continue;
        }
        device->queuePairs = cpuCrypto ? 0 : conf.nb_queue_pairs;
        for (std::uint16_t q = device->queuePairs; q-- > 0;) {
            device->freeQueuePairs.push_back(q);  // handed out from the back: 0 first
        }
        device_ = std::move(device);
    }
    if (device_) {
        probe_.usable = true;
        probe_.detail = device_->name + " (AES-GCM" + (device_->aes128 ? " 128" : "") +
                        (device_->aes256 ? " 256" : "") + ", " +
                        (device_->cpuCrypto
                             ? std::string("CPU crypto")
                             : std::to_string(device_->queuePairs) + " queue pairs") +
                        ")" +
                        (problems.empty() ? "" : "; " + problems);
    } else {
        probe_.detail = problems.empty() ? "no configured device does AES-GCM" : problems;
    }
    LM_LOG(Info, kLog, probe_.detail);
}

CryptodevEngine::~CryptodevEngine() = default;

std::unique_ptr<EngineLane> CryptodevEngine::openLane() {
    if (!device_) {
        return nullptr;
    }
    return std::make_unique<Lane>(*device_);
}

void CryptodevEngine::prepareContext(SSL_CTX* ctx, const ContextFacts&) const {
    tls::captureTrafficSecrets(ctx);
}

void CryptodevEngine::passOver(SSL* ssl) const noexcept { tls::forgetTrafficSecrets(ssl); }

std::vector<std::pair<std::string_view, std::uint64_t>> CryptodevEngine::declines() const {
    return declines_.snapshot();
}

Attach CryptodevEngine::decline(Decline why, std::string reason) {
    declines_.add(why);
    return Attach::declined("cryptodev: " + std::move(reason));
}

Attach CryptodevEngine::attach(SSL* ssl, int, Wire& wire) {
    const int version = SSL_version(ssl);
    if (version != TLS1_2_VERSION && version != TLS1_3_VERSION) {
        return decline(Decline::Version,
                       std::string("carries TLS 1.2 and 1.3, not ") + SSL_get_version(ssl));
    }
    const SSL_CIPHER* suite = SSL_get_current_cipher(ssl);
    const auto aead = tls::aeadOf(suite);
    if (!device_ || !aead || (*aead == tls::Aead::Aes128Gcm && !device_->aes128) ||
        (*aead == tls::Aead::Aes256Gcm && !device_->aes256) ||
        *aead == tls::Aead::Chacha20Poly1305) {
        return decline(Decline::Cipher, std::string("the device does not do ") +
                                            (suite != nullptr ? SSL_CIPHER_get_name(suite)
                                                              : "(no cipher)"));
    }
    // Records in wire.fromPeer are the record layer's to open (tickets included); records
    // OpenSSL already took out of it are not.
    if (SSL_has_pending(ssl) != 0) {
        return decline(Decline::BufferedRecords, "OpenSSL holds records from the backend");
    }
    if (wire.toPeer != nullptr && !wire.toPeer->empty()) {
        return decline(Decline::UnsentRecords, "handshake records to the backend are not sent yet");
    }
    Lane* lane = Lane::of(*device_);
    if (!device_->cpuCrypto && (lane == nullptr || !lane->queuePair())) {
        return decline(Decline::QueuePairs, "this worker has no queue pair on " + device_->name +
                                                " (it has " +
                                                std::to_string(device_->queuePairs) + ")");
    }
    auto keys = tls::deriveClientKeys(ssl);
    if (!keys) {
        const bool noSecrets = keys.error().code() == make_error_code(Errc::Unavailable);
        return decline(noSecrets ? Decline::NoSecrets : Decline::Keys, keys.error().message());
    }
    const bool tls13 = version == TLS1_3_VERSION;
    std::unique_ptr<tls::AeadRunner> runner;
    if (device_->cpuCrypto) {
        runner = std::make_unique<CpuCryptoRunner>(*device_, tls13);
    } else {
        runner = std::make_unique<QueueRunner>(*device_, tls13, *lane, wire);
    }
    auto layer = tls::RecordLayer::create(*keys, std::move(runner));
    if (!layer) {
        return decline(Decline::DeviceSessions, layer.error().message());
    }
    tls::forgetTrafficSecrets(ssl);
    return Attach::taken(std::make_unique<CryptodevSession>(std::move(*layer), wire));
}

}  // namespace lastmile::drivers::cryptodev
