// SPDX-License-Identifier: Apache-2.0
// The user's own BackendTLSPolicy example (spec/seed-backendtlspolicy.txt), verbatim.
#pragma once

namespace lastmile::test {

inline constexpr const char* kSeedPolicyYaml = R"(apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: secure-backend
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: my-backend
  validation:
    hostname: backend.example.com
    wellKnownCACertificates: System
)";

}  // namespace lastmile::test
