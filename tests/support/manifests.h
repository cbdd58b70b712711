// SPDX-License-Identifier: Apache-2.0
// Manifests for the suites that drive a real lastmiled: a Gateway routing to covered Services.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lastmile::test {

// ConfigMap `name` holding `pem` as ca.crt.
std::string caConfigMapYaml(const std::string& pem, const std::string& name = "backend-ca");

// BackendTLSPolicy "<service>-tls" covering Service `service`: trusts ConfigMap backend-ca,
// checks `hostname`; `options` are keys without the lastmile.dev/ prefix.
std::string policyYaml(const std::string& service, const std::string& hostname,
                       const std::map<std::string, std::string>& options = {});

// A Service behind its own listener of Gateway "edge".
struct RoutedService {
    std::string name;              // the Service's, its listener's and its route's name
    std::uint16_t listenerPort;    // lastmiled's listener on 127.0.0.1
    std::uint16_t endpointPort;    // the one endpoint, at 127.0.0.1
    std::string protocol = "TCP";  // or "HTTP"
    std::map<std::string, std::string> policyOptions;  // see policyYaml
};

// Gateway "edge" on 127.0.0.1 with one listener per service, each routed to its Service
// (port 443), covered by policyYaml(service, hostname, its options); plus caConfigMapYaml(caPem).
std::string edgeYaml(const std::vector<RoutedService>& services, const std::string& caPem,
                     const std::string& hostname);

}  // namespace lastmile::test
