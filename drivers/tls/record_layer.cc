// SPDX-License-Identifier: Apache-2.0
// RecordLayer: RFC 8446 §5 (TLS 1.3) and RFC 5288 (TLS 1.2 AES-GCM) record protection, with
// the AEAD of a batch of records handed to an AeadRunner in one call.
#include "drivers/tls/record_layer.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace lastmile::drivers::tls {
namespace {

constexpr std::uint8_t kAlert = 21;
constexpr std::uint8_t kHandshake = 22;
constexpr std::uint8_t kApplicationData = 23;
constexpr std::uint8_t kNewSessionTicket = 4;
constexpr std::uint8_t kKeyUpdate = 24;
constexpr std::size_t kExplicitNonce = 8;  // TLS 1.2 GCM: carried in each record
constexpr std::size_t kHandshakeHeader = 4;
// A chunk holds sixteen whole records; one runner call per chunk's worth.
constexpr std::size_t kBatch = 16;

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
                               std::uint8_t* out, AeadJob& job) {
    DirectionKeys& tx = keys_.tx;
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
        putBe(tx.sequence, out + kRecordHeader, kExplicitNonce);
    }
    job = AeadJob{};
    setNonceAndAad(job, tx, tx.sequence, tls13(), out, type, len);
    job.text[0] = {text, textLen};
    job.tag = text + textLen;
    ++tx.sequence;
    return kRecordHeader + bodyLen;
}

Status RecordLayer::sealControl(std::uint8_t type, std::span<const std::uint8_t> content,
                                Chunk& toPeer) {
    if (toPeer.room() < overhead() + content.size()) {
        return fail(Errc::Unavailable, "no room for a TLS record to the backend yet");
    }
    AeadJob job;
    const std::size_t size = frame(type, content.data(), content.size(), toPeer.tail(), job);
    LM_TRY(runner_->run(AeadDirection::Seal, {&job, 1}));
    toPeer.commit(size);
    ++sealedUnderKey_;
    return {};
}

Status RecordLayer::updateSendingKeys(Chunk& toPeer, bool requestPeerUpdate) {
    const std::uint8_t message[] = {kKeyUpdate, 0, 0, 1,
                                    static_cast<std::uint8_t>(requestPeerUpdate ? 1 : 0)};
    LM_TRY(sealControl(kHandshake, message, toPeer));
    LM_TRY(nextGeneration(keys_, keys_.tx));
    LM_TRY(runner_->setKey(AeadDirection::Seal, {keys_.tx.key.data(), keys_.tx.keyLen}));
    sealedUnderKey_ = 0;
    keyUpdateOwed_ = false;
    ++keyUpdatesSent_;
    return {};
}

Result<std::size_t> RecordLayer::seal(Chunk& plain, Chunk& toPeer) {
    std::size_t total = 0;
    for (;;) {
        if (toPeer.room() < Chunk::kRecordRoom) {
            toPeer.compact();  // the caller lets no send read toPeer while it seals
        }
        if (tls13() && (keyUpdateOwed_ || sealedUnderKey_ >= rekeyAfter_)) {
            if (auto s = updateSendingKeys(toPeer, false); !s) {
                if (s.error().code() == make_error_code(Errc::Unavailable)) {
                    return total;  // the KeyUpdate goes first, once the wire has room
                }
                return fail(std::move(s).error());
            }
        }
        std::array<AeadJob, kBatch> jobs;
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
                              toPeer.tail() + produced, jobs[n]);
            consumed += len;
            ++n;
        }
        if (n == 0) {
            return total;
        }
        LM_TRY(runner_->run(AeadDirection::Seal, {jobs.data(), n}));
        toPeer.commit(produced);
        plain.consume(consumed);
        sealedUnderKey_ += n;
        total += consumed;
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
        if (plain.room() < Chunk::kRecordRoom) {
            plain.compact();  // the caller lets no send read plain while it opens
        }
        std::array<AeadJob, kBatch> jobs;
        // Each record's text goes to its own slot at plain's tail, decrypted there in place;
        // a TLS 1.3 record's last byte (its inner type, or padding) goes to `innerType` so
        // that, without padding, one record's content ends where the next one's begins.
        std::array<std::uint8_t, kBatch> innerType{};
        std::array<std::uint8_t, kBatch> outerType{};
        std::array<std::size_t, kBatch> slot{};
        std::array<std::size_t, kBatch> textLen{};
        std::array<std::size_t, kBatch> recordLen{};
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
            AeadJob& job = jobs[n];
            std::uint8_t* to = plain.tail() + used;
            if (tls13()) {
                std::memcpy(to, p + kRecordHeader, text - 1);
                innerType[n] = p[kRecordHeader + text - 1];
                job.text = {AeadJob::Span{to, text - 1}, AeadJob::Span{&innerType[n], 1}};
            } else {
                std::memcpy(to, p + kRecordHeader + kExplicitNonce, text);
                job.text = {AeadJob::Span{to, text}, AeadJob::Span{}};
            }
            setNonceAndAad(job, keys_.rx, keys_.rx.sequence + n, tls13(), p, type, text);
            // Opening only reads the tag: it stays where it arrived.
            job.tag = const_cast<std::uint8_t*>(p + kRecordHeader + len - kAeadTag);
            outerType[n] = type;
            slot[n] = used;
            textLen[n] = text;
            recordLen[n] = kRecordHeader + len;
            used += text;
            p += kRecordHeader + len;
            left -= kRecordHeader + len;
            ++n;
        }
        if (n == 0) {
            break;
        }
        LM_TRY(runner_->run(AeadDirection::Open, {jobs.data(), n}));

        std::uint8_t* out = plain.tail();  // where the next application bytes belong
        std::size_t consumed = 0;
        bool stale = false;  // a KeyUpdate made the rest of the batch's keys wrong
        for (std::size_t i = 0; i < n && !stale && !result.closeNotify; ++i) {
            if (!jobs[i].authentic) {
                return fail(Errc::Unavailable,
                            "a TLS record from the backend did not authenticate (bad_record_mac)");
            }
            ++keys_.rx.sequence;
            consumed += recordLen[i];
            std::uint8_t* content = plain.tail() + slot[i];
            std::size_t len = textLen[i];
            std::uint8_t type = outerType[i];
            if (tls13()) {
                // The content type is the last non-zero byte; zeros after it are padding.
                len = textLen[i] - 1;
                type = innerType[i];
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
                    return fail(Errc::Unavailable,
                                "backend sent TLS alert " + typeText(content[1]));
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
        OPENSSL_cleanse(out, static_cast<std::size_t>(plain.tail() + used - out));
        fromPeer.consume(consumed);
        const auto produced = static_cast<std::size_t>(out - plain.tail());
        plain.commit(produced);
        result.plaintext += produced;
    }
    return result;
}

Status RecordLayer::closeNotify(Chunk& toPeer) {
    static constexpr std::uint8_t kCloseNotify[] = {1, 0};  // warning, close_notify
    return sealControl(kAlert, kCloseNotify, toPeer);
}

}  // namespace lastmile::drivers::tls
