// SPDX-License-Identifier: Apache-2.0
// Manifests for the suites that drive a real lastmiled.
#include "tests/support/manifests.h"

#include <sstream>

namespace lastmile::test {
namespace {

std::string indentBlock(const std::string& text, const std::string& prefix) {
    std::string out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        out += prefix + line + "\n";
    }
    return out;
}

}  // namespace

std::string caConfigMapYaml(const std::string& pem, const std::string& name) {
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
           "\ndata:\n  ca.crt: |\n" + indentBlock(pem, "    ");
}

std::string policyYaml(const std::string& service, const std::string& hostname,
                       const std::map<std::string, std::string>& options) {
    std::string y =
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata:\n  name: " +
        service + "-tls\nspec:\n  targetRefs:\n  - group: \"\"\n    kind: Service\n    name: " +
        service + "\n  validation:\n    hostname: " + hostname +
        "\n    caCertificateRefs:\n    - group: \"\"\n      kind: ConfigMap\n      name: "
        "backend-ca\n";
    if (!options.empty()) {
        y += "  options:\n";
        for (const auto& [key, value] : options) {
            y += "    lastmile.dev/" + key + ": \"" + value + "\"\n";
        }
    }
    return y;
}

std::string edgeYaml(const std::vector<RoutedService>& services, const std::string& caPem,
                     const std::string& hostname) {
    std::string listeners;
    std::string docs = caConfigMapYaml(caPem);
    for (const auto& s : services) {
        listeners += "  - name: " + s.name + "\n    port: " + std::to_string(s.listenerPort) +
                     "\n    protocol: " + s.protocol + "\n";
        docs += s.protocol == "TCP"
                    ? "---\napiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n"
                    : "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n";
        docs += "metadata:\n  name: " + s.name +
                "\nspec:\n  parentRefs:\n  - name: edge\n    sectionName: " + s.name +
                "\n  rules:\n  - backendRefs:\n    - name: " + s.name + "\n      port: 443\n";
        docs += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " + s.name +
                "\nspec:\n  ports:\n  - name: https\n    port: 443\n";
        docs += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " +
                s.name + "\n  labels:\n    kubernetes.io/service-name: " + s.name +
                "\naddressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\nports:\n"
                "- name: https\n  port: " +
                std::to_string(s.endpointPort) + "\n";
        docs += "---\n" + policyYaml(s.name, hostname, s.policyOptions);
    }
    return docs +
           "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n"
           "  name: edge\nspec:\n  gatewayClassName: lastmile\n  addresses:\n"
           "  - type: IPAddress\n    value: 127.0.0.1\n  listeners:\n" +
           listeners;
}

}  // namespace lastmile::test
