// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Routed mode: SYNs for a virtual address arriving on configured interfaces reach a listener.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "counters.bpf.h"
#include "interception_abi.h"

#define AF_INET 2
#define IPPROTO_TCP 6
// tcx verdict "continue with the next program" (UAPI 6.6; the build's headers may be older).
#define LM_TCX_NEXT -1

// Zero only for BPF_PROG_TEST_RUN, which refuses a non-zero ingress_ifindex.
const volatile __u32 filter_interfaces = 1;
// The fwmark whose policy rule delivers a packet locally; never lastmiled's backend mark.
const volatile __u32 deliver_mark = 0;

// Listening sockets, by slot. Userspace writes fds; the kernel drops a socket when it closes.
struct {
    __uint(type, BPF_MAP_TYPE_SOCKMAP);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, __u64);
} listeners SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct lm_endpoint); // virtual address:port
    __type(value, __u32);            // slot in listeners
} vips SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32); // ifindex
    __type(value, __u8);
} interfaces SEC(".maps");

// Never SK_DROP: whatever is not ours, or cannot be assigned, takes the regular lookup.
SEC("sk_lookup")
int lm_sk_lookup(struct bpf_sk_lookup* ctx)
{
    struct lm_endpoint vip = {};
    // Unconditional volatile loads: clang 14 would otherwise merge the family-dependent
    // reads into one load from a computed ctx offset, which the verifier rejects.
    __u32 family = *(volatile __u32*)&ctx->family;
    __u32 l4 = *(volatile __u32*)&ctx->local_ip4;
    __u32 l0 = *(volatile __u32*)&ctx->local_ip6[0], l1 = *(volatile __u32*)&ctx->local_ip6[1];
    __u32 l2 = *(volatile __u32*)&ctx->local_ip6[2], l3 = *(volatile __u32*)&ctx->local_ip6[3];
    __u32 ifindex = *(volatile __u32*)&ctx->ingress_ifindex;
    if (ctx->protocol != IPPROTO_TCP) {
        return SK_PASS;
    }
    if (filter_interfaces && !bpf_map_lookup_elem(&interfaces, &ifindex)) {
        return SK_PASS;
    }
    if (family == AF_INET) {
        vip.addr[2] = bpf_htonl(0xffff);
        vip.addr[3] = l4;
    } else {
        vip.addr[0] = l0;
        vip.addr[1] = l1;
        vip.addr[2] = l2;
        vip.addr[3] = l3;
    }
    vip.port = (__u16)ctx->local_port;
    __u32* slot = bpf_map_lookup_elem(&vips, &vip);
    if (!slot) {
        return SK_PASS;
    }
    struct bpf_sock* sk = bpf_map_lookup_elem(&listeners, slot);
    if (!sk) {
        count(LM_COUNT_REFUSED);
        return SK_PASS;
    }
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    count(err ? LM_COUNT_REFUSED : LM_COUNT_REDIRECTED);
    return SK_PASS;
}

// Marks TCP packets for a virtual address:port arriving on a configured interface, so that
// the static rules "fwmark deliver_mark lookup <table>" deliver them locally. It is attached
// by a tcx bpf_link, which dies with lastmiled: then nothing is marked, the rules match
// nothing and the traffic is forwarded again (fail open, never a black hole).
// Constant offsets only: a variable one (IPv4 ihl * 4, IPv6 extension headers) is pointer
// arithmetic the verifier allows only with CAP_PERFMON. Such packets stay forwarded.
SEC("tc")
int lm_tc_mark(struct __sk_buff* skb)
{
    void* data = (void*)(long)skb->data;
    void* end = (void*)(long)skb->data_end;
    struct ethhdr* eth = data;
    struct tcphdr* tcp;
    struct lm_endpoint vip = {};
    if ((void*)(eth + 1) > end) {
        return LM_TCX_NEXT;
    }
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr* ip = (void*)(eth + 1);
        if ((void*)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl != 5) {
            return LM_TCX_NEXT;
        }
        tcp = (void*)(ip + 1);
        vip.addr[2] = bpf_htonl(0xffff);
        vip.addr[3] = ip->daddr;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = (void*)(eth + 1);
        if ((void*)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP) {
            return LM_TCX_NEXT;
        }
        tcp = (void*)(ip6 + 1);
        __builtin_memcpy(vip.addr, &ip6->daddr, sizeof(vip.addr));
    } else {
        return LM_TCX_NEXT;
    }
    if ((void*)(tcp + 1) > end) {
        return LM_TCX_NEXT;
    }
    vip.port = bpf_ntohs(tcp->dest);
    if (bpf_map_lookup_elem(&vips, &vip)) {
        skb->mark = deliver_mark;
    }
    return LM_TCX_NEXT;
}

// bpf_sk_assign and bpf_sk_release are GPL-only.
char LICENSE[] SEC("license") = "Dual BSD/GPL";
