// SPDX-License-Identifier: Apache-2.0
// KernelEngine: installs a live session's keys with TLS_TX/TLS_RX; KernelSession handles the
// records the kernel hands back because they are not application data.
#include "drivers/ktls/ktls_engine.h"

#include <ifaddrs.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "drivers/tls/keys.h"
#include "drivers/tls/secrets.h"

namespace lastmile::drivers::ktls {
namespace {

constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;

constexpr std::uint8_t kRecordAlert = 21;
constexpr std::uint8_t kRecordHandshake = 22;
constexpr std::uint8_t kRecordApplicationData = 23;
constexpr std::uint8_t kNewSessionTicket = 4;
constexpr std::uint8_t kKeyUpdate = 24;

void putSequence(std::uint64_t seq, unsigned char (&out)[8]) {
    for (int i = 7; i >= 0; --i) {
        out[i] = static_cast<unsigned char>(seq & 0xff);
        seq >>= 8;
    }
}

// One direction's setsockopt(SOL_TLS) argument, as bytes (the ChaCha20 struct ends in a
// zero-size array, which cannot sit in a union); cleansed on destruction.
struct KernelCryptoInfo {
    alignas(8) unsigned char bytes[sizeof(tls12_crypto_info_aes_gcm_256)];
    socklen_t len = 0;

    KernelCryptoInfo(const tls::DirectionKeys& k, tls::Aead cipher, bool tls13) {
        const unsigned short version = tls13 ? TLS_1_3_VERSION : TLS_1_2_VERSION;
        // GCM: the kernel's salt is the first 4 IV bytes. TLS 1.3 puts the other 8 in `iv`
        // (XORed with the sequence); TLS 1.2 sends `iv` as the explicit nonce, which only has
        // to be unique: the sequence number is.
        auto store = [&](auto& info) {
            static_assert(sizeof info <= sizeof bytes);
            std::memcpy(bytes, &info, sizeof info);
            len = sizeof info;
            OPENSSL_cleanse(&info, sizeof info);
        };
        auto gcm = [&](auto info, int id) {
            info.info = {version, static_cast<unsigned short>(id)};
            std::memcpy(info.key, k.key.data(), sizeof info.key);
            std::memcpy(info.salt, k.iv.data(), sizeof info.salt);
            if (tls13) {
                std::memcpy(info.iv, k.iv.data() + sizeof info.salt, sizeof info.iv);
            } else {
                putSequence(k.sequence, info.iv);
            }
            putSequence(k.sequence, info.rec_seq);
            store(info);
        };
        switch (cipher) {
            case tls::Aead::Aes128Gcm:
                gcm(tls12_crypto_info_aes_gcm_128{}, TLS_CIPHER_AES_GCM_128);
                break;
            case tls::Aead::Aes256Gcm:
                gcm(tls12_crypto_info_aes_gcm_256{}, TLS_CIPHER_AES_GCM_256);
                break;
            case tls::Aead::Chacha20Poly1305: {
                tls12_crypto_info_chacha20_poly1305 info{};
                info.info = {version, TLS_CIPHER_CHACHA20_POLY1305};
                std::memcpy(info.key, k.key.data(), sizeof info.key);
                std::memcpy(info.iv, k.iv.data(), sizeof info.iv);
                putSequence(k.sequence, info.rec_seq);
                store(info);
                break;
            }
        }
    }
    KernelCryptoInfo(const KernelCryptoInfo&) = delete;
    KernelCryptoInfo& operator=(const KernelCryptoInfo&) = delete;
    ~KernelCryptoInfo() { OPENSSL_cleanse(bytes, sizeof bytes); }
};

class KernelSession final : public RecordSession {
public:
    KernelSession(int fd, bool kernelRekeys, std::atomic<std::uint64_t>& ticketsDropped)
        : fd_(fd), kernelRekeys_(kernelRekeys), ticketsDropped_(ticketsDropped) {}

    std::string_view engine() const noexcept override { return "kernel"; }
    Framing framing() const noexcept override { return Framing::Kernel; }

    Result<std::size_t> seal(Chunk&) override {
        return fail(Errc::Internal, "sealing a kernel-framed session: the kernel seals");
    }

    Result<OpenResult> open(Chunk& plain) override {
        if (plain.room() < kMaxRecordPlaintext) {
            plain.compact();
            if (plain.room() < kMaxRecordPlaintext) {
                return OpenResult{};  // a control record must arrive whole: wait for room
            }
        }
        iovec iov{plain.tail(), plain.room()};
        alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(unsigned char))];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return OpenResult{};
            }
            return failErrno("receiving a TLS record from the kernel");
        }
        const auto len = static_cast<std::size_t>(n);
        // The kernel always reports the type of a non-data record (or fails with EIO);
        // data records may come without it.
        std::uint8_t type = kRecordApplicationData;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) {
                type = *CMSG_DATA(c);
            }
        }
        const std::uint8_t* record = plain.tail();
        switch (type) {
            case kRecordApplicationData:
                plain.commit(len);
                return OpenResult{len, false};
            case kRecordHandshake:
                LM_TRY(handshakeRecord(record, len));
                return OpenResult{};
            case kRecordAlert:
                if (len != 2) {
                    return fail(Errc::Unavailable, "backend sent a malformed TLS alert record");
                }
                if (record[1] == 0) {
                    return OpenResult{0, true};
                }
                return fail(Errc::Unavailable, std::string("backend sent TLS alert ") +
                                                   std::to_string(record[1]) + " (" +
                                                   SSL_alert_desc_string_long(record[1]) + ")");
            default:
                return fail(Errc::Unavailable, "backend sent a TLS record of type " +
                                                   std::to_string(type) + " after the handshake");
        }
    }

    Result<bool> closeNotify() override {
        unsigned char alert[2] = {1, 0};  // warning, close_notify
        iovec iov{alert, sizeof alert};
        alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(unsigned char))]{};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_TLS;
        c->cmsg_type = TLS_SET_RECORD_TYPE;
        c->cmsg_len = CMSG_LEN(sizeof(unsigned char));
        *CMSG_DATA(c) = kRecordAlert;
        const ssize_t n = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == -1 && errno == EAGAIN) {
            return false;  // the socket buffer is full
        }
        if (n == -1) {
            return failErrno("sending close_notify through the kernel");
        }
        if (n != sizeof alert) {
            return fail(Errc::Internal, "the kernel took part of the close_notify alert");
        }
        return true;
    }

private:
    // Every message of one handshake record; one split across records is refused, since the
    // kernel hands records over one at a time and tickets need no reassembly in practice.
    Status handshakeRecord(const std::uint8_t* p, std::size_t len) {
        if (len == 0) {
            return fail(Errc::Unavailable, "backend sent an empty TLS handshake record");
        }
        std::uint64_t tickets = 0;
        std::size_t off = 0;
        while (off < len) {
            if (len - off < 4) {
                return fail(Errc::Unavailable, "backend split a TLS handshake message header");
            }
            const std::size_t bodyLen = std::size_t{p[off + 1]} << 16 |
                                        std::size_t{p[off + 2]} << 8 | std::size_t{p[off + 3]};
            if (len - off - 4 < bodyLen) {
                return fail(Errc::Unavailable,
                            "backend split a TLS handshake message across records");
            }
            switch (p[off]) {
                case kNewSessionTicket:
                    ++tickets;
                    break;
                case kKeyUpdate:
                    return fail(Errc::Unavailable,
                                kernelRekeys_
                                    ? "backend sent a TLS KeyUpdate and the kernel engine does "
                                      "not rekey"
                                    : "backend sent a TLS KeyUpdate and this kernel cannot rekey");
                default:
                    return fail(Errc::Unavailable, "backend sent TLS handshake message type " +
                                                       std::to_string(p[off]) +
                                                       " after the handshake");
            }
            off += 4 + bodyLen;
        }
        ticketsDropped_.fetch_add(tickets, std::memory_order_relaxed);
        return {};
    }

    int fd_;
    bool kernelRekeys_;
    std::atomic<std::uint64_t>& ticketsDropped_;
};

std::string errnoText(int err) { return std::strerror(err); }

// What OpenSSL reported receiving while openTickets ran (its message callback).
struct PostHandshakeSeen {
    bool other = false;  // a handshake message that is not a NewSessionTicket, or data
};

void notePostHandshake(int writeP, int, int contentType, const void* buf, std::size_t len, SSL*,
                       void* arg) {
    auto* seen = static_cast<PostHandshakeSeen*>(arg);
    if (writeP != 0 || len == 0) {
        return;
    }
    const auto first = *static_cast<const std::uint8_t*>(buf);
    if ((contentType == SSL3_RT_HANDSHAKE && first != kNewSessionTicket) ||
        (contentType == SSL3_RT_INNER_CONTENT_TYPE && first != kRecordHandshake)) {
        seen->other = true;
    }
}

// Whole TLS records at the front of `bytes`, or nullopt when they end inside one.
std::optional<std::uint64_t> wholeRecords(const Chunk& bytes) {
    const std::uint8_t* p = bytes.data();
    std::size_t left = bytes.size();
    std::uint64_t records = 0;
    while (left >= 5) {
        const std::size_t length = std::size_t{p[3]} << 8 | p[4];
        if (left - 5 < length) {
            return std::nullopt;
        }
        p += 5 + length;
        left -= 5 + length;
        ++records;
    }
    return left == 0 ? std::optional(records) : std::nullopt;
}

// TLS 1.3 servers may send their session tickets right behind the handshake (Go's
// crypto/tls always does, GnuTLS often), so they wait in `fromPeer` when the session comes
// here. When the buffered bytes are whole records holding nothing but tickets, OpenSSL
// opens them (its session cache keeps the tickets for resumption) and the kernel starts at
// the record after them. Returns how many records were opened; Errc::Unavailable when the
// bytes hold anything else (application data, a KeyUpdate, a partial record), which then
// stays with OpenSSL for the openssl engine.
Result<std::uint64_t> openTickets(SSL* ssl, const Chunk& fromPeer) {
    const auto records = wholeRecords(fromPeer);
    if (!records) {
        return fail(Errc::Unavailable, "a partial record from the backend is buffered in userspace");
    }
    PostHandshakeSeen seen;
    SSL_set_msg_callback(ssl, notePostHandshake);
    SSL_set_msg_callback_arg(ssl, &seen);
    unsigned char byte = 0;
    std::size_t got = 0;
    // SSL_peek handles the tickets and stops at application data without taking it, so a
    // decline leaves every byte for the openssl engine.
    const int peeked = SSL_peek_ex(ssl, &byte, 1, &got);
    const int error = peeked == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, peeked);
    SSL_set_msg_callback(ssl, nullptr);
    SSL_set_msg_callback_arg(ssl, nullptr);
    ERR_clear_error();
    if (peeked == 1 || seen.other) {
        return fail(Errc::Unavailable, "the backend sent more than session tickets before the "
                                       "kernel could take the session");
    }
    if (error != SSL_ERROR_WANT_READ) {
        return fail(Errc::Unavailable, "OpenSSL could not open the records buffered after the "
                                       "handshake");
    }
    return *records;
}

// The interface that owns the local address of the connected socket `fd`: the one its
// packets leave through on any host that does not route one interface's addresses out of
// another. Empty when it cannot be told.
std::string egressInterface(int fd) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == -1) {
        return {};
    }
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == -1) {
        return {};
    }
    std::string found;
    for (const ifaddrs* a = list; a != nullptr && found.empty(); a = a->ifa_next) {
        if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != local.ss_family) {
            continue;
        }
        const bool same =
            local.ss_family == AF_INET
                ? reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr ==
                      reinterpret_cast<const sockaddr_in*>(&local)->sin_addr.s_addr
                : std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a->ifa_addr)->sin6_addr,
                              &reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr,
                              sizeof(in6_addr)) == 0;
        if (same) {
            found = a->ifa_name;
        }
    }
    ::freeifaddrs(list);
    return found;
}

bool offloadsTx(const KernelTlsCapabilities& caps, const std::string& interface) {
    return std::any_of(caps.nics.begin(), caps.nics.end(), [&](const NicTlsOffload& nic) {
        return nic.tx && nic.interface == interface;
    });
}

}  // namespace

KernelEngine::KernelEngine() : KernelEngine(probeKernelTls()) {}

KernelEngine::KernelEngine(KernelTlsCapabilities caps, Mode mode)
    : caps_(std::move(caps)), mode_(mode) {}

std::string_view KernelEngine::name() const noexcept {
    return mode_ == Mode::Nic ? "nic" : "kernel";
}

bool KernelEngine::serves(Offload preference) const noexcept {
    return preference == Offload::Auto ||
           preference == (mode_ == Mode::Nic ? Offload::Nic : Offload::Kernel);
}

EngineProbe KernelEngine::probe() const {
    EngineProbe probe{caps_.usable(), caps_.describe(), {}, {}};
    probe.features.emplace_back("ulp", caps_.ulp);
    for (const auto& c : caps_.ciphers) {
        std::string name(tls::aeadName(c.cipher));
        std::transform(name.begin(), name.end(), name.begin(), [](char ch) {
            return ch == '-' ? '_' : static_cast<char>(std::tolower(ch));
        });
        probe.features.emplace_back("tls12_" + name, caps_.supports(c.cipher, false));
        probe.features.emplace_back("tls13_" + name, caps_.supports(c.cipher, true));
    }
    probe.features.emplace_back("tls13_rx", caps_.tls13Rx);
    probe.features.emplace_back("rekey", caps_.rekey);
    if (mode_ == Mode::Software) {
        return probe;
    }
    std::string offloading;
    for (const auto& nic : caps_.nics) {
        probe.devices.push_back({nic.interface, {{"tx", nic.tx}, {"rx", nic.rx}}});
        if (nic.tx) {
            offloading += (offloading.empty() ? "" : ", ") + nic.interface;
        }
    }
    if (offloading.empty()) {
        probe.usable = false;
        probe.detail = "no interface has tls-hw-tx-offload enabled" +
                       (caps_.nicError.empty() ? "" : " (" + caps_.nicError + ")");
    } else if (probe.usable) {
        probe.detail = "TLS transmit offload on " + offloading + "; " + probe.detail;
    }
    return probe;
}

void KernelEngine::prepareContext(SSL_CTX* ctx, const ContextFacts& facts) const {
    tls::captureTrafficSecrets(ctx);
    if (mode_ == Mode::Nic && !facts.ciphersChosen) {
        // Only the client's preference: the backend still chooses among what both offer.
        SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                      "TLS_CHACHA20_POLY1305_SHA256");
        SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:DEFAULT");
    }
}

void KernelEngine::passOver(SSL* ssl) const noexcept { tls::forgetTrafficSecrets(ssl); }

std::vector<std::pair<std::string_view, std::uint64_t>> KernelEngine::declines() const {
    return declines_.snapshot();
}

Attach KernelEngine::decline(Decline why, std::string reason) {
    declines_.add(why);
    return why == Decline::KernelRefused ? Attach::broken(std::move(reason))
                                         : Attach::declined(std::move(reason));
}

Attach KernelEngine::attach(SSL* ssl, int fd, Wire& wire) {
    if (!caps_.ulp) {
        return decline(Decline::NoUlp, "kernel TLS: no TLS ULP (" + caps_.ulpError + ")");
    }
    if (mode_ == Mode::Nic) {
        const std::string interface = egressInterface(fd);
        if (!offloadsTx(caps_, interface)) {
            return decline(Decline::NotOffloaded,
                           "kernel TLS: " + (interface.empty() ? "the route's interface"
                                                               : interface) +
                               " has no TLS transmit offload");
        }
    }
    const int version = SSL_version(ssl);
    if (version != TLS1_2_VERSION && version != TLS1_3_VERSION) {
        return decline(Decline::Version, std::string("kernel TLS: carries TLS 1.2 and 1.3, not ") +
                                             SSL_get_version(ssl));
    }
    const bool tls13 = version == TLS1_3_VERSION;
    const SSL_CIPHER* suite = SSL_get_current_cipher(ssl);
    const auto cipher = tls::aeadOf(suite);
    if (!cipher) {
        return decline(Decline::Cipher, std::string("kernel TLS: cipher ") +
                           (suite != nullptr ? SSL_CIPHER_get_name(suite) : "(none)") +
                           " is not AES-GCM or ChaCha20-Poly1305");
    }
    if (!caps_.supports(*cipher, tls13)) {
        return decline(Decline::Cipher, "kernel TLS: this kernel does not offer " +
                           std::string(tls::aeadName(*cipher)) +
                           (tls13 ? " for TLS 1.3" : " for TLS 1.2"));
    }
    // Once TLS_TX is set, bytes written to the socket are sealed again.
    if (wire.toPeer != nullptr && !wire.toPeer->empty()) {
        return decline(Decline::UnsentRecords,
                       "kernel TLS: handshake records to the backend are not sent yet");
    }
    auto keys = tls::deriveClientKeys(ssl);
    if (!keys) {
        const bool noSecrets = keys.error().code() == make_error_code(Errc::Unavailable);
        return decline(noSecrets ? Decline::NoSecrets : Decline::Keys,
                       "kernel TLS: " + keys.error().message());
    }
    // Records already pulled into userspace cannot be handed back to the kernel, except
    // TLS 1.3 session tickets, which OpenSSL opens here (see openTickets). Last of the checks,
    // since opened tickets are gone from the wire: after this only a refused TCP_ULP can
    // decline, which would refuse the next kernel-framed engine too.
    std::uint64_t ticketRecords = 0;
    if (tls13 && SSL_has_pending(ssl) == 0 && wire.fromPeer != nullptr &&
        !wire.fromPeer->empty()) {
        auto opened = openTickets(ssl, *wire.fromPeer);
        if (!opened) {
            return decline(Decline::BufferedRecords, "kernel TLS: " + opened.error().message());
        }
        ticketRecords = *opened;
    }
    if ((wire.fromPeer != nullptr && !wire.fromPeer->empty()) || SSL_has_pending(ssl) != 0) {
        return decline(Decline::BufferedRecords,
                       "kernel TLS: records from the backend are already buffered in userspace");
    }
    keys->rx.sequence += ticketRecords;
    const KernelCryptoInfo tx(keys->tx, *cipher, tls13);
    const KernelCryptoInfo rx(keys->rx, *cipher, tls13);

    if (::setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == -1) {
        return decline(Decline::UlpRefused, "kernel TLS: setting TCP_ULP tls: " + errnoText(errno));
    }
    if (::setsockopt(fd, SOL_TLS, TLS_TX, tx.bytes, tx.len) == -1) {
        return decline(Decline::KernelRefused,
                       "kernel TLS: TLS_TX refused after TCP_ULP, the connection is lost: " +
                           errnoText(errno));
    }
    if (::setsockopt(fd, SOL_TLS, TLS_RX, rx.bytes, rx.len) == -1) {
        return decline(Decline::KernelRefused,
                       "kernel TLS: TLS_RX refused after TLS_TX, the connection is lost: " +
                           errnoText(errno));
    }
    // The kernel holds the keys now; in userspace OpenSSL keeps its own.
    tls::forgetTrafficSecrets(ssl);
    return Attach::taken(std::make_unique<KernelSession>(fd, caps_.rekey, ticketsDropped_));
}

}  // namespace lastmile::drivers::ktls
