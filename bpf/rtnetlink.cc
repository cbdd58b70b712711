// SPDX-License-Identifier: Apache-2.0
// Adds and removes the routed-mode rule and route with raw rtnetlink requests.
#include "bpf/rtnetlink.h"

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace lastmile::bpf {
namespace {

constexpr std::uint32_t kAllBits = 0xffffffff;
constexpr int kMaxStale = 64;  // bounds the clean-up loop whatever the table holds

// One request: header, family-specific body and attributes, built in place.
class Request {
public:
    Request(std::uint16_t type, std::uint16_t flags, const void* body, std::size_t bodyLength) {
        header()->nlmsg_type = type;
        header()->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
        header()->nlmsg_len = NLMSG_LENGTH(static_cast<std::uint32_t>(bodyLength));
        std::memcpy(NLMSG_DATA(header()), body, bodyLength);
    }
    void u32(std::uint16_t type, std::uint32_t value) {
        auto* attr = reinterpret_cast<rtattr*>(buffer_.data() + NLMSG_ALIGN(header()->nlmsg_len));
        attr->rta_type = type;
        attr->rta_len = RTA_LENGTH(sizeof(value));
        std::memcpy(RTA_DATA(attr), &value, sizeof(value));
        header()->nlmsg_len = NLMSG_ALIGN(header()->nlmsg_len) + RTA_ALIGN(attr->rta_len);
    }
    nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_.data()); }

private:
    alignas(nlmsghdr) std::array<char, 256> buffer_{};
};

// Sends `request` and waits (bounded by SO_RCVTIMEO) for its acknowledgement.
Status transact(int fd, Request& request, const char* what) {
    static std::uint32_t sequence = 0;
    request.header()->nlmsg_seq = ++sequence;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd, request.header(), request.header()->nlmsg_len, 0,
                 reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) == -1) {
        return failErrno(what);
    }
    alignas(nlmsghdr) std::array<char, 4096> reply{};
    for (;;) {
        const ssize_t n = ::recv(fd, reply.data(), reply.size(), 0);
        if (n == -1) {
            return failErrno(what);
        }
        auto* header = reinterpret_cast<nlmsghdr*>(reply.data());
        for (auto left = static_cast<std::uint32_t>(n); NLMSG_OK(header, left);
             header = NLMSG_NEXT(header, left)) {
            if (header->nlmsg_seq != request.header()->nlmsg_seq ||
                header->nlmsg_type != NLMSG_ERROR) {
                continue;
            }
            const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
            if (error->error != 0) {
                return fail(std::error_code(-error->error, std::generic_category()), what);
            }
            return {};
        }
    }
}

constexpr std::uint8_t kFamilies[] = {AF_INET, AF_INET6};

Request rule(std::uint8_t family, std::uint16_t type, std::uint16_t flags, std::uint32_t mark,
             std::uint32_t table, std::uint32_t priority) {
    fib_rule_hdr body{};
    body.family = family;
    body.action = FR_ACT_TO_TBL;
    Request request(type, flags, &body, sizeof(body));
    request.u32(FRA_PRIORITY, priority);
    request.u32(FRA_FWMARK, mark);
    request.u32(FRA_FWMASK, kAllBits);
    request.u32(FRA_TABLE, table);
    return request;
}

Request route(std::uint8_t family, std::uint16_t type, std::uint16_t flags, std::uint32_t table) {
    rtmsg body{};
    body.rtm_family = family;
    body.rtm_table = RT_TABLE_UNSPEC;  // RTA_TABLE carries tables above 255
    body.rtm_type = RTN_LOCAL;
    if (type == RTM_NEWROUTE) {
        body.rtm_protocol = RTPROT_STATIC;
        body.rtm_scope = RT_SCOPE_HOST;
    } else {
        body.rtm_scope = RT_SCOPE_NOWHERE;  // on delete: any scope
    }
    Request request(type, flags, &body, sizeof(body));
    request.u32(RTA_TABLE, table);
    if (type == RTM_NEWROUTE) {
        request.u32(RTA_OIF, ::if_nametoindex("lo"));
    }
    return request;
}

}  // namespace

LocalDelivery::LocalDelivery(UniqueFd socket, std::uint32_t mark, std::uint32_t table,
                             std::uint32_t priority)
    : socket_(std::move(socket)), mark_(mark), table_(table), priority_(priority) {}

LocalDelivery::~LocalDelivery() { removeAll(); }

void LocalDelivery::removeAll() noexcept {
    for (std::uint8_t family : kFamilies) {
        for (int i = 0; i < kMaxStale; ++i) {
            auto request = rule(family, RTM_DELRULE, 0, mark_, table_, priority_);
            if (!transact(socket_.get(), request, "removing the rule")) {
                break;
            }
        }
        for (int i = 0; i < kMaxStale; ++i) {
            auto request = route(family, RTM_DELROUTE, 0, table_);
            if (!transact(socket_.get(), request, "removing the route")) {
                break;
            }
        }
    }
}

Result<std::unique_ptr<LocalDelivery>> LocalDelivery::install(std::uint32_t mark,
                                                               std::uint32_t table,
                                                               std::uint32_t priority) {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd.valid()) {
        return failErrno("opening an rtnetlink socket");
    }
    const timeval timeout{2, 0};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) == -1) {
        return failErrno("bounding rtnetlink replies");
    }
    std::unique_ptr<LocalDelivery> delivery(new LocalDelivery(std::move(fd), mark, table, priority));
    delivery->removeAll();  // left over by a run that was killed
    for (std::uint8_t family : kFamilies) {
        const std::string where = std::string(family == AF_INET ? " (IPv4" : " (IPv6") +
                                  ", table " + std::to_string(table) + ")";
        auto addRoute = route(family, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, table);
        auto added = transact(delivery->socket_.get(), addRoute,
                              ("adding the local route" + where).c_str());
        if (!added && family == AF_INET6 && added.error().code().value() == EAFNOSUPPORT) {
            continue;  // a kernel without IPv6 receives no IPv6 virtual addresses either
        }
        LM_TRY(added);
        auto addRule = rule(family, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, mark, table, priority);
        LM_TRY(transact(delivery->socket_.get(), addRule,
                        ("adding the fwmark rule" + where).c_str()));
    }
    return delivery;
}

}  // namespace lastmile::bpf
