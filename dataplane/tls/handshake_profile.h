// SPDX-License-Identifier: Apache-2.0
// HandshakeProfile: a compiled ProfileSpec that owns its SSL_CTX; immutable once built.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "dataplane/tls/certificate_info.h"
#include "dataplane/tls/openssl_handles.h"
#include "dataplane/tls/profile_spec.h"
#include "drivers/engines.h"

namespace lastmile::tls {

class HandshakeProfile {
public:
    // Builds the SSL_CTX: trust store (bundle or system), verification of the hostname or of
    // the SAN list (spec section 4), versions, ciphers, groups, signature algorithms, ALPN,
    // client session cache, client certificate, then security level 2 or above. Every list
    // entry must pass its allow-list (option_names.h). Errc::Invalid when the spec's content
    // cannot be honoured (the context says why: refused cipher, malformed bundle, no system
    // store...);
    // any other code is an internal failure. A spec with failClosedReason set compiles to a
    // fail-closed profile.
    // The record engines that serve the spec's `offload` preference prepare the SSL_CTX
    // (drivers::RecordEngine::prepareContext); null: none (tests of the handshake alone).
    static Result<std::shared_ptr<const HandshakeProfile>> compile(
        const ProfileSpec& spec, const drivers::EngineSet* engines = nullptr);

    // A profile that refuses every connection with `reason`.
    static std::shared_ptr<const HandshakeProfile> failClosed(ProfileSpec spec, std::string reason);

    const ProfileSpec& spec() const noexcept { return spec_; }
    bool isFailClosed() const noexcept { return !spec_.failClosedReason.empty(); }
    const std::string& failClosedReason() const noexcept { return spec_.failClosedReason; }
    // Trust anchors of the bundle; empty for the system store.
    const std::vector<CertificateInfo>& trustAnchors() const noexcept { return anchors_; }

    // A client session with SNI, the verification target and a cached session for resumption
    // applied; the caller attaches its transport (an fd, or the dataplane's wire BIO).
    // Must not be called on a fail-closed profile (Errc::Invalid).
    Result<SslPtr> newSession() const;

    // Whether a peer's chain (leaf first), verified by a session of another profile, passes
    // this profile's verification as a handshake would: trust store, verification
    // parameters, hostname or subjectAltNames. How an open session survives a policy change
    // (CA rotation, new names). False on a fail-closed profile.
    bool verifiesChain(STACK_OF(X509)* chain) const;

    HandshakeProfile(const HandshakeProfile&) = delete;
    HandshakeProfile& operator=(const HandshakeProfile&) = delete;
    ~HandshakeProfile();

private:
    struct SessionCache;
    HandshakeProfile(ProfileSpec spec, SslCtxPtr ctx, std::vector<CertificateInfo> anchors);

    const ProfileSpec spec_;
    const SslCtxPtr ctx_;  // null for fail-closed profiles
    const std::vector<CertificateInfo> anchors_;
    const std::unique_ptr<SessionCache> sessions_;
};

// Whether a completed handshake may carry traffic: the peer presented a certificate and it
// verified. The verify callback already fails bad certificates; this also catches a handshake
// that completed without one (an anonymous suite), which OpenSSL reports as X509_V_OK.
bool peerVerified(const SSL* ssl);

// Why verification of `ssl`'s peer failed, for 502 bodies and logs: the expected name or SANs,
// the names the certificate had, the chain problem, or a completed handshake without a
// certificate. Empty when verification passed or the handshake failed for another reason.
std::string verifyFailureReason(const SSL* ssl);

}  // namespace lastmile::tls
