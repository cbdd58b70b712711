// SPDX-License-Identifier: Apache-2.0
// probeKernelTls: asks the running kernel, with real sockets, instead of guessing from its version.
#include "drivers/ktls/probe.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/tls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>

#include "base/unique_fd.h"

namespace lastmile::drivers::ktls {
namespace {

constexpr tls::Aead kAllCiphers[tls::kAeadCount] = {tls::Aead::Aes128Gcm, tls::Aead::Aes256Gcm,
                                                  tls::Aead::Chacha20Poly1305};

std::string errnoText(const char* what, int err) {
    return std::string(what) + ": " + std::strerror(err);
}

// Both ends of an established loopback TCP connection; the kernel only takes the ULP on
// an established socket.
struct TcpPair {
    UniqueFd client;
    UniqueFd server;
};

std::optional<TcpPair> connectLoopback(std::string& error) {
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener.valid()) {
        error = errnoText("creating a probe socket", errno);
        return std::nullopt;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) == -1 ||
        ::listen(listener.get(), 1) == -1 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == -1) {
        error = errnoText("listening on loopback", errno);
        return std::nullopt;
    }
    TcpPair pair;
    pair.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!pair.client.valid() ||
        ::connect(pair.client.get(), reinterpret_cast<sockaddr*>(&addr), len) == -1) {
        error = errnoText("connecting on loopback", errno);
        return std::nullopt;
    }
    // The handshake completed in the kernel's backlog: accept does not block.
    pair.server.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!pair.server.valid()) {
        error = errnoText("accepting on loopback", errno);
        return std::nullopt;
    }
    return pair;
}

// Installs zero keys: the kernel checks sizes and algorithms, not key values.
int setDummyKeys(int fd, int direction, tls::Aead cipher, unsigned short version) {
    union {
        tls12_crypto_info_aes_gcm_128 aes128;
        tls12_crypto_info_aes_gcm_256 aes256;
        tls12_crypto_info_chacha20_poly1305 chacha;
    } info;
    std::memset(&info, 0, sizeof info);
    socklen_t len = 0;
    switch (cipher) {
        case tls::Aead::Aes128Gcm:
            info.aes128.info = {version, TLS_CIPHER_AES_GCM_128};
            len = sizeof info.aes128;
            break;
        case tls::Aead::Aes256Gcm:
            info.aes256.info = {version, TLS_CIPHER_AES_GCM_256};
            len = sizeof info.aes256;
            break;
        case tls::Aead::Chacha20Poly1305:
            info.chacha.info = {version, TLS_CIPHER_CHACHA20_POLY1305};
            len = sizeof info.chacha;
            break;
    }
    return ::setsockopt(fd, SOL_TLS, direction, &info, len);
}

bool setUlp(int fd) { return ::setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == 0; }

DirectionSupport probeCipher(tls::Aead cipher, unsigned short version) {
    DirectionSupport s;
    auto pair = connectLoopback(s.error);
    if (!pair) {
        return s;
    }
    if (!setUlp(pair->client.get())) {
        s.error = errnoText("TCP_ULP", errno);
        return s;
    }
    if (setDummyKeys(pair->client.get(), TLS_TX, cipher, version) == 0) {
        s.tx = true;
    } else {
        s.error = errnoText("TLS_TX", errno);
    }
    if (setDummyKeys(pair->client.get(), TLS_RX, cipher, version) == 0) {
        s.rx = true;
    } else if (s.error.empty()) {
        s.error = errnoText("TLS_RX", errno);
    }
    return s;
}

// Kernels without TLS 1.3 rekey refuse any second TLS_TX (EBUSY); kernels with it accept
// new keys of the same cipher and version, which is exactly what a KeyUpdate installs.
void probeRekey(KernelTlsCapabilities& caps) {
    std::optional<tls::Aead> cipher;
    for (tls::Aead c : kAllCiphers) {
        if (caps.of(c).tls13.tx) {
            cipher = c;
            break;
        }
    }
    if (!cipher) {
        caps.rekeyDetail = "no TLS 1.3 transmit cipher to try";
        return;
    }
    std::string error;
    auto pair = connectLoopback(error);
    if (!pair) {
        caps.rekeyDetail = error;
        return;
    }
    if (!setUlp(pair->client.get()) ||
        setDummyKeys(pair->client.get(), TLS_TX, *cipher, TLS_1_3_VERSION) != 0) {
        caps.rekeyDetail = errnoText("first TLS_TX", errno);
        return;
    }
    if (setDummyKeys(pair->client.get(), TLS_TX, *cipher, TLS_1_3_VERSION) == 0) {
        caps.rekey = true;
        caps.rekeyDetail = "a second TLS_TX was accepted";
    } else {
        caps.rekeyDetail = errnoText("second TLS_TX", errno);
    }
}

struct FeatureIndexes {
    int tx = -1;
    int rx = -1;
    std::uint32_t count = 0;
};

// The positions of the TLS feature strings in the kernel's feature table. The table is the
// kernel's, not the driver's, so one lookup serves every interface.
std::optional<FeatureIndexes> tlsFeatureIndexes(int sock, const char* ifname, std::string& error) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);

    alignas(ethtool_sset_info) unsigned char
        infoBuf[sizeof(ethtool_sset_info) + sizeof(std::uint32_t)]{};
    auto* info = reinterpret_cast<ethtool_sset_info*>(infoBuf);
    info->cmd = ETHTOOL_GSSET_INFO;
    info->sset_mask = 1ULL << ETH_SS_FEATURES;
    ifr.ifr_data = reinterpret_cast<char*>(info);
    if (::ioctl(sock, SIOCETHTOOL, &ifr) == -1) {
        error = errnoText("ETHTOOL_GSSET_INFO", errno);
        return std::nullopt;
    }
    if ((info->sset_mask & (1ULL << ETH_SS_FEATURES)) == 0) {
        error = "the kernel has no feature string set";
        return std::nullopt;
    }
    FeatureIndexes idx;
    std::uint32_t count = 0;
    std::memcpy(&count, infoBuf + sizeof(ethtool_sset_info), sizeof count);
    idx.count = count;

    std::vector<std::uint64_t> stringsBuf(
        (sizeof(ethtool_gstrings) + std::size_t{count} * ETH_GSTRING_LEN + 7) / 8);
    auto* strings = reinterpret_cast<ethtool_gstrings*>(stringsBuf.data());
    strings->cmd = ETHTOOL_GSTRINGS;
    strings->string_set = ETH_SS_FEATURES;
    strings->len = count;
    ifr.ifr_data = reinterpret_cast<char*>(strings);
    if (::ioctl(sock, SIOCETHTOOL, &ifr) == -1) {
        error = errnoText("ETHTOOL_GSTRINGS", errno);
        return std::nullopt;
    }
    const auto* names = reinterpret_cast<const char*>(stringsBuf.data()) + sizeof(ethtool_gstrings);
    for (std::uint32_t i = 0; i < count && i < strings->len; ++i) {
        std::string_view name(names + std::size_t{i} * ETH_GSTRING_LEN,
                              strnlen(names + std::size_t{i} * ETH_GSTRING_LEN, ETH_GSTRING_LEN));
        if (name == "tls-hw-tx-offload") {
            idx.tx = static_cast<int>(i);
        } else if (name == "tls-hw-rx-offload") {
            idx.rx = static_cast<int>(i);
        }
    }
    return idx;
}

void probeNics(KernelTlsCapabilities& caps) {
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock.valid()) {
        caps.nicError = errnoText("creating the ethtool socket", errno);
        return;
    }
    struct if_nameindex* list = ::if_nameindex();
    if (list == nullptr) {
        caps.nicError = errnoText("listing interfaces", errno);
        return;
    }
    std::optional<FeatureIndexes> idx;
    for (struct if_nameindex* it = list; it->if_index != 0 && it->if_name != nullptr; ++it) {
        if (!idx) {
            idx = tlsFeatureIndexes(sock.get(), it->if_name, caps.nicError);
            if (!idx) {
                continue;
            }
        }
        if (idx->tx < 0 && idx->rx < 0) {
            caps.nicError = "the kernel has no tls-hw-*-offload features";
            break;
        }
        const std::uint32_t blocks = (idx->count + 31) / 32;
        std::vector<std::uint64_t> buf(
            (sizeof(ethtool_gfeatures) + blocks * sizeof(ethtool_get_features_block) + 7) / 8);
        auto* features = reinterpret_cast<ethtool_gfeatures*>(buf.data());
        features->cmd = ETHTOOL_GFEATURES;
        features->size = blocks;
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, it->if_name, IFNAMSIZ - 1);
        ifr.ifr_data = reinterpret_cast<char*>(features);
        if (::ioctl(sock.get(), SIOCETHTOOL, &ifr) == -1) {
            caps.nicError =
                errnoText((std::string("ETHTOOL_GFEATURES on ") + it->if_name).c_str(), errno);
            continue;
        }
        auto active = [&](int bit) {
            return bit >= 0 && (features->features[bit / 32].active & (1U << (bit % 32))) != 0;
        };
        caps.nics.push_back(NicTlsOffload{it->if_name, active(idx->tx), active(idx->rx)});
    }
    ::if_freenameindex(list);
}

}  // namespace

bool KernelTlsCapabilities::supports(tls::Aead c, bool tls13) const noexcept {
    const DirectionSupport& d = tls13 ? of(c).tls13 : of(c).tls12;
    return ulp && d.tx && d.rx;
}

bool KernelTlsCapabilities::usable() const noexcept {
    for (tls::Aead c : kAllCiphers) {
        if (supports(c, false) || supports(c, true)) {
            return true;
        }
    }
    return false;
}

std::string KernelTlsCapabilities::describe() const {
    if (!ulp) {
        return "TCP_ULP tls unavailable (" + ulpError + ")";
    }
    std::string out = "ulp ok";
    for (bool tls13 : {false, true}) {
        out += tls13 ? "; tls1.3" : "; tls1.2";
        std::string list;
        for (tls::Aead c : kAllCiphers) {
            const DirectionSupport& d = tls13 ? of(c).tls13 : of(c).tls12;
            if (d.tx || d.rx) {
                list += std::string(list.empty() ? " " : ",") + std::string(tls::aeadName(c)) +
                        (d.tx && d.rx ? ""
                         : d.tx       ? "(tx only)"
                                      : "(rx only)");
            }
        }
        out += list.empty() ? " none" : list;
    }
    out += std::string("; rekey ") + (rekey ? "yes" : "no");
    std::string nicList;
    for (const NicTlsOffload& n : nics) {
        if (n.tx || n.rx) {
            nicList += " " + n.interface + (n.tx && n.rx ? "(tx,rx)" : n.tx ? "(tx)" : "(rx)");
        }
    }
    out += "; nic offload" + (nicList.empty() ? std::string(" none") : nicList);
    return out;
}

KernelTlsCapabilities probeKernelTls() {
    KernelTlsCapabilities caps;
    for (tls::Aead c : kAllCiphers) {
        caps.ciphers[static_cast<std::size_t>(c)].cipher = c;
    }
    probeNics(caps);

    auto pair = connectLoopback(caps.ulpError);
    if (!pair) {
        return caps;
    }
    if (!setUlp(pair->client.get())) {
        const int err = errno;
        caps.ulpError = errnoText("TCP_ULP tls", err);
        if (err == ENOENT) {
            caps.ulpError += " (the tls module is not loaded or the kernel lacks CONFIG_TLS)";
        }
        return caps;
    }
    caps.ulp = true;
    for (tls::Aead c : kAllCiphers) {
        CipherSupport& s = caps.ciphers[static_cast<std::size_t>(c)];
        s.tls12 = probeCipher(c, TLS_1_2_VERSION);
        s.tls13 = probeCipher(c, TLS_1_3_VERSION);
        caps.tls13Rx = caps.tls13Rx || s.tls13.rx;
    }
    probeRekey(caps);
    return caps;
}

}  // namespace lastmile::drivers::ktls
