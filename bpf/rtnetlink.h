// SPDX-License-Identifier: Apache-2.0
// The policy rule and local route that deliver fwmarked packets to this host, via rtnetlink.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lastmile::bpf {

// "ip rule add pref PRIORITY fwmark MARK lookup TABLE" plus
// "ip route add local 0.0.0.0/0 dev lo table TABLE", and the same for IPv6 (local ::/0), in
// the network namespace of the thread that installs them. They are static and match no address: only packets the routed-mode tc
// program marks take them, so they black-hole nothing once that program is gone. Left-overs
// of an earlier run (same priority, mark and table) are removed first; the destructor removes
// what install() added.
class LocalDelivery {
public:
    static Result<std::unique_ptr<LocalDelivery>> install(std::uint32_t mark, std::uint32_t table,
                                                          std::uint32_t priority);
    ~LocalDelivery();
    LocalDelivery(const LocalDelivery&) = delete;
    LocalDelivery& operator=(const LocalDelivery&) = delete;

private:
    LocalDelivery(UniqueFd socket, std::uint32_t mark, std::uint32_t table, std::uint32_t priority);
    void removeAll() noexcept;

    UniqueFd socket_;  // NETLINK_ROUTE, bound to the namespace the rules live in
    std::uint32_t mark_;
    std::uint32_t table_;
    std::uint32_t priority_;
};

}  // namespace lastmile::bpf
