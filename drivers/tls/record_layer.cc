// SPDX-License-Identifier: Apache-2.0
// RecordLayer: RFC 8446 §5 (TLS 1.3) and RFC 5288 (TLS 1.2 AES-GCM) record protection, with
// the AEAD of a batch of records handed to an AeadRunner in one call.
#include "drivers/tls/record_layer.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace lastmile::drivers::tls {
namespace {

constexpr std::uint8_t kAlert = 21;
constexpr std::uint8_t kHandshake = 22;
constexpr std::uint8_t kApplicationData = 23;
constexpr std::uint8_t kNewSessionTicket = 4;
constexpr std::uint8_t kKeyUpdate = 24;
constexpr std::size_t kExplicitNonce = 8;  // TLS 1.2 GCM: carried in each record
constexpr std::size_t kHandshakeHeader = 4;

void putBe(std::uint64_t v, std::uint8_t* out, std::size_t n) {
    for (std::size_t i = n; i-- > 0;) {
        out[i] = static_cast<std::uint8_t>(v & 0xff);
        v >>= 8;
    }
}

std::string typeText(std::uint8_t type) { return std::to_string(static_cast<unsigned>(type)); }

// The AEAD nonce and additional data of the record `seq` whose header starts at `record`
// (for TLS 1.2 with its explicit nonce already in place): TLS 1.3 (RFC 8446 §5.2-5.3) XORs
// the IV with the sequence number and authenticates the header; TLS 1.2 GCM (RFC 5288 §3)
// uses the salt and the explicit nonce, and authenticates sequence number, type, version
// and content length.
void setNonceAndAad(AeadJob& job, const DirectionKeys& keys, std::uint64_t seq, bool tls13,
                    const std::uint8_t* record, std::uint8_t type, std::size_t contentLen) {
    if (tls13) {
        std::copy(keys.iv.begin(), keys.iv.end(), job.nonce.begin());
        std::uint8_t be[8];
        putBe(seq, be, sizeof be);
        for (std::size_t i = 0; i < sizeof be; ++i) {
            job.nonce[4 + i] ^= be[i];
        }
        std::copy(record, record + kRecordHeader, job.aad.begin());
        job.aadLen = kRecordHeader;
        return;
    }
    std::copy(keys.iv.begin(), keys.iv.begin() + 4, job.nonce.begin());
    std::copy(record + kRecordHeader, record + kRecordHeader + kExplicitNonce,
              job.nonce.begin() + 4);
    putBe(seq, job.aad.data(), 8);
    job.aad[8] = type;
    job.aad[9] = 0x03;
    job.aad[10] = 0x03;
    putBe(contentLen, job.aad.data() + 11, 2);
    job.aadLen = 13;
}

}  // namespace

Result<std::unique_ptr<RecordLayer>> RecordLayer::create(const SessionKeys& keys,
                                                         std::unique_ptr<AeadRunner> runner,
                                                         std::uint64_t rekeyAfter) {
    if (keys.cipher != Aead::Aes128Gcm && keys.cipher != Aead::Aes256Gcm) {
        return fail(Errc::Invalid, "the userspace record layer carries AES-GCM, not " +
                                       std::string(aeadName(keys.cipher)));
    }
    if (keys.version != TLS1_2_VERSION && keys.version != TLS1_3_VERSION) {
        return fail(Errc::Invalid, "the userspace record layer carries TLS 1.2 and 1.3");
    }
    LM_TRY(runner->setKey(AeadDirection::Seal, {keys.tx.key.data(), keys.tx.keyLen}));
    LM_TRY(runner->setKey(AeadDirection::Open, {keys.rx.key.data(), keys.rx.keyLen}));
    return std::unique_ptr<RecordLayer>(
        new RecordLayer(keys, std::move(runner), std::max<std::uint64_t>(rekeyAfter, 1)));
}

std::size_t RecordLayer::overhead() const noexcept {
    return kRecordHeader + kAeadTag + (tls13() ? 1 : kExplicitNonce);
}

std::size_t RecordLayer::frame(std::uint8_t type, const std::uint8_t* content, std::size_t len,
                               std::uint8_t* out, std::uint64_t seq, AeadJob& job) {
    const std::size_t textLen = tls13() ? len + 1 : len;
    const std::size_t bodyLen = textLen + kAeadTag + (tls13() ? 0 : kExplicitNonce);
    // TLS 1.3 hides the type inside; the outer one always says application data.
    out[0] = tls13() ? kApplicationData : type;
    out[1] = 0x03;
    out[2] = 0x03;
    putBe(bodyLen, out + 3, 2);
    std::uint8_t* text = out + kRecordHeader + (tls13() ? 0 : kExplicitNonce);
    std::memcpy(text, content, len);
    if (tls13()) {
        text[len] = type;
    } else {
        // The explicit nonce only has to be unique per key: the sequence number is.
        putBe(seq, out + kRecordHeader, kExplicitNonce);
    }
    job = AeadJob{};
    setNonceAndAad(job, keys_.tx, seq, tls13(), out, type, len);
    job.text[0] = {text, textLen};
    job.tag = text + textLen;
    return kRecordHeader + bodyLen;
}

Status RecordLayer::startControl(Control control, std::uint8_t type,
                                 std::span<const std::uint8_t> content, Chunk& toPeer) {
    if (toPeer.room() < overhead() + content.size()) {
        return fail(Errc::Unavailable, "no room for a TLS record to the backend yet");
    }
    const std::size_t size = frame(type, content.data(), content.size(), toPeer.tail(),
                                   keys_.tx.sequence, sealing_.jobs[0]);
    LM_TRY(runner_->start(AeadDirection::Seal, {sealing_.jobs.data(), 1}));
    sealing_.n = 1;
    sealing_.produced = size;
    sealing_.consumed = 0;
    sealing_.control = control;
    return {};
}

Result<bool> RecordLayer::settleSeal(Chunk& toPeer) {
    auto done = runner_->finished(AeadDirection::Seal);
    if (!done || !*done) {
        return done;
    }
    toPeer.commit(sealing_.produced);
    keys_.tx.sequence += sealing_.n;
    sealedUnderKey_ += sealing_.n;
    sealing_.n = 0;
    switch (std::exchange(sealing_.control, Control::None)) {
        case Control::KeyUpdate:
            LM_TRY(nextGeneration(keys_, keys_.tx));
            LM_TRY(runner_->setKey(AeadDirection::Seal, {keys_.tx.key.data(), keys_.tx.keyLen}));
            sealedUnderKey_ = 0;
            keyUpdateOwed_ = false;
            ++keyUpdatesSent_;
            break;
        case Control::CloseNotify:
            closeNotifySent_ = true;
            break;
        case Control::None:
            break;
    }
    return true;
}

Result<std::size_t> RecordLayer::seal(Chunk& plain, Chunk& toPeer) {
    std::size_t total = 0;
    for (;;) {
        if (sealing_.n != 0) {
            const std::size_t carried = sealing_.consumed;
            auto settled = settleSeal(toPeer);
            if (!settled) {
                return fail(std::move(settled).error());
            }
            if (!*settled) {
                return total;  // still on the device
            }
            plain.consume(carried);
            total += carried;
        }
        if (toPeer.room() < Chunk::kRecordRoom) {
            toPeer.compact();  // the caller lets no send read toPeer while it seals
        }
        if (tls13() && (keyUpdateOwed_ || sealedUnderKey_ >= rekeyAfter_)) {
            // RFC 8446 §4.6.3: update_not_requested; the peer's own schedule is its business.
            static constexpr std::uint8_t kMessage[] = {kKeyUpdate, 0, 0, 1, 0};
            if (auto s = startControl(Control::KeyUpdate, kHandshake, kMessage, toPeer); !s) {
                if (s.error().code() == make_error_code(Errc::Unavailable)) {
                    return total;  // the KeyUpdate goes first, once there is room
                }
                return fail(std::move(s).error());
            }
            continue;
        }
        std::size_t n = 0;
        std::size_t consumed = 0;
        std::size_t produced = 0;
        while (n < kBatch && consumed < plain.size() &&
               (!tls13() || sealedUnderKey_ + n < rekeyAfter_)) {
            const std::size_t room = toPeer.room() - produced;
            if (room < overhead() + 1) {
                break;
            }
            const std::size_t len =
                std::min({plain.size() - consumed, kMaxRecordPlaintext, room - overhead()});
            produced += frame(kApplicationData, plain.data() + consumed, len,
                              toPeer.tail() + produced, keys_.tx.sequence + n, sealing_.jobs[n]);
            consumed += len;
            ++n;
        }
        if (n == 0) {
            return total;
        }
        if (auto s = runner_->start(AeadDirection::Seal, {sealing_.jobs.data(), n}); !s) {
            if (s.error().code() == make_error_code(Errc::Unavailable)) {
                return total;  // the device is full: its lane says when to come back
            }
            return fail(std::move(s).error());
        }
        sealing_.n = n;
        sealing_.produced = produced;
        sealing_.consumed = consumed;
    }
}

Status RecordLayer::onHandshake(std::span<const std::uint8_t> messages, bool& rekeyed) {
    while (!messages.empty()) {
        if (messages.size() < kHandshakeHeader) {
            return fail(Errc::Unavailable, "backend split a TLS handshake message header");
        }
        const std::size_t len = std::size_t{messages[1]} << 16 | std::size_t{messages[2]} << 8 |
                                messages[3];
        if (messages.size() - kHandshakeHeader < len) {
            return fail(Errc::Unavailable, "backend split a TLS handshake message across records");
        }
        const std::uint8_t type = messages[0];
        const std::span<const std::uint8_t> body = messages.subspan(kHandshakeHeader, len);
        messages = messages.subspan(kHandshakeHeader + len);
        if (type == kNewSessionTicket) {
            // Resumption would need the resumption secret, which this layer does not keep.
            ++ticketsDropped_;
            continue;
        }
        if (type != kKeyUpdate) {
            return fail(Errc::Unavailable,
                        "backend sent TLS handshake message type " + typeText(type) +
                            " after the handshake");
        }
        // RFC 8446 §5.1: a KeyUpdate ends its record, since the next one uses the new keys.
        if (body.size() != 1 || body[0] > 1 || !messages.empty()) {
            return fail(Errc::Unavailable, "backend sent a malformed TLS KeyUpdate");
        }
        LM_TRY(nextGeneration(keys_, keys_.rx));
        LM_TRY(runner_->setKey(AeadDirection::Open, {keys_.rx.key.data(), keys_.rx.keyLen}));
        ++keyUpdatesReceived_;
        keyUpdateOwed_ = keyUpdateOwed_ || body[0] == 1;
        rekeyed = true;
    }
    return {};
}

Result<OpenResult> RecordLayer::open(Chunk& fromPeer, Chunk& plain) {
    OpenResult result;
    const std::size_t maxBody = kMaxRecordPlaintext + (tls13() ? 256 : 2048);
    const std::size_t minBody = kAeadTag + (tls13() ? 1 : kExplicitNonce);
    while (!result.closeNotify) {
        if (opening_.n != 0) {
            auto settled = settleOpen(fromPeer, plain, result);
            if (!settled) {
                return fail(std::move(settled).error());
            }
            if (!*settled) {
                break;  // still on the device
            }
            continue;
        }
        if (plain.room() < Chunk::kRecordRoom) {
            plain.compact();  // the caller lets no send read plain while it opens
        }
        OpenBatch& b = opening_;
        // Each record's text goes to its own slot at plain's tail, decrypted there in place.
        const std::uint8_t* p = fromPeer.data();
        std::size_t left = fromPeer.size();
        std::size_t used = 0;
        std::size_t n = 0;
        while (n < kBatch && left >= kRecordHeader) {
            const std::size_t len = std::size_t{p[3]} << 8 | p[4];
            const std::uint8_t type = p[0];
            if (len > maxBody || len < minBody) {
                return fail(Errc::Unavailable, "backend sent a TLS record of " +
                                                   std::to_string(len) + " bytes");
            }
            if (type != kApplicationData && (tls13() || type != kAlert)) {
                return fail(Errc::Unavailable,
                            "backend sent a TLS record of type " + typeText(type) +
                                (type == kHandshake ? " (renegotiation is not supported)" : ""));
            }
            if (left - kRecordHeader < len) {
                break;  // the rest of the record is still on its way
            }
            const std::size_t text = len - minBody + (tls13() ? 1 : 0);
            if (plain.room() - used < text) {
                break;
            }
            AeadJob& job = b.jobs[n];
            job = AeadJob{};
            std::uint8_t* to = plain.tail() + used;
            if (tls13()) {
                std::memcpy(to, p + kRecordHeader, text - 1);
                b.innerType[n] = p[kRecordHeader + text - 1];
                job.text = {AeadJob::Span{to, text - 1}, AeadJob::Span{&b.innerType[n], 1}};
            } else {
                std::memcpy(to, p + kRecordHeader + kExplicitNonce, text);
                job.text = {AeadJob::Span{to, text}, AeadJob::Span{}};
            }
            setNonceAndAad(job, keys_.rx, keys_.rx.sequence + n, tls13(), p, type, text);
            // Opening only reads the tag: it stays where it arrived.
            job.tag = const_cast<std::uint8_t*>(p + kRecordHeader + len - kAeadTag);
            b.outerType[n] = type;
            b.textLen[n] = text;
            b.recordLen[n] = kRecordHeader + len;
            used += text;
            p += kRecordHeader + len;
            left -= kRecordHeader + len;
            ++n;
        }
        if (n == 0) {
            break;
        }
        if (auto s = runner_->start(AeadDirection::Open, {b.jobs.data(), n}); !s) {
            if (s.error().code() == make_error_code(Errc::Unavailable)) {
                break;  // the device is full: its lane says when to come back
            }
            return fail(std::move(s).error());
        }
        b.n = n;
    }
    return result;
}

Result<bool> RecordLayer::settleOpen(Chunk& fromPeer, Chunk& plain, OpenResult& result) {
    auto done = runner_->finished(AeadDirection::Open);
    if (!done || !*done) {
        return done;
    }
    OpenBatch& b = opening_;
    const std::size_t n = std::exchange(b.n, 0);
    std::uint8_t* out = plain.tail();  // where the next application bytes belong
    std::size_t consumed = 0;
    bool stale = false;  // a KeyUpdate made the rest of the batch's keys wrong
    for (std::size_t i = 0; i < n && !stale && !result.closeNotify; ++i) {
        if (!b.jobs[i].authentic) {
            return fail(Errc::Unavailable,
                        "a TLS record from the backend did not authenticate (bad_record_mac)");
        }
        ++keys_.rx.sequence;
        consumed += b.recordLen[i];
        std::uint8_t* content = b.jobs[i].text[0].data;
        std::size_t len = b.textLen[i];
        std::uint8_t type = b.outerType[i];
        if (tls13()) {
            // The content type is the last non-zero byte; zeros after it are padding.
            len = b.textLen[i] - 1;
            type = b.innerType[i];
            while (type == 0 && len > 0) {
                type = content[--len];
            }
            if (type == 0) {
                return fail(Errc::Unavailable, "backend sent a TLS record with no content type");
            }
        }
        if (type == kApplicationData) {
            if (content != out) {
                std::memmove(out, content, len);
            }
            out += len;
        } else if (type == kAlert) {
            if (len != 2) {
                return fail(Errc::Unavailable, "backend sent a malformed TLS alert record");
            }
            if (content[1] != 0) {
                return fail(Errc::Unavailable, "backend sent TLS alert " + typeText(content[1]));
            }
            result.closeNotify = true;
        } else if (type == kHandshake && tls13()) {
            LM_TRY(onHandshake({content, len}, stale));
        } else {
            return fail(Errc::Unavailable,
                        "backend sent a TLS record of content type " + typeText(type));
        }
    }
    // Plaintext of records left for the next round (after a KeyUpdate) is not kept.
    const std::uint8_t* end = b.jobs[n - 1].text[0].data + b.jobs[n - 1].text[0].len;
    OPENSSL_cleanse(out, static_cast<std::size_t>(end - out));
    fromPeer.consume(consumed);
    const auto produced = static_cast<std::size_t>(out - plain.tail());
    plain.commit(produced);
    result.plaintext += produced;
    return true;
}

Result<bool> RecordLayer::closeNotify(Chunk& toPeer) {
    static constexpr std::uint8_t kCloseNotify[] = {1, 0};  // warning, close_notify
    if (sealing_.n != 0 && sealing_.consumed != 0) {
        return false;  // its plaintext is settled by seal(), called while there is any
    }
    // A KeyUpdate on its way goes first, then the alert.
    for (int round = 0; round < 2 && !closeNotifySent_; ++round) {
        if (sealing_.n == 0) {
            if (auto s = startControl(Control::CloseNotify, kAlert, kCloseNotify, toPeer); !s) {
                if (s.error().code() == make_error_code(Errc::Unavailable)) {
                    return false;  // no room, or the device is full
                }
                return fail(std::move(s).error());
            }
        }
        auto settled = settleSeal(toPeer);
        if (!settled || !*settled) {
            return settled;
        }
    }
    return true;
}

}  // namespace lastmile::drivers::tls
