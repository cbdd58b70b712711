// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Host mode: connects from configured cgroups to a virtual address go to a lastmile listener.
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "counters.bpf.h"
#include "interception_abi.h"

// The libc headers cannot be used with -target bpf; these are the Linux ABI values.
#define AF_INET 2
#define SOCK_STREAM 1

// SO_MARK of lastmiled's own backend sockets, set by the loader: those connects must reach
// the real destination even when it is a virtual address, or lastmiled would loop to itself.
const volatile __u32 backend_mark = 0;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct lm_endpoint);   // virtual address:port
    __type(value, struct lm_endpoint); // listener address:port
} vips SEC(".maps");

// The original destination on the client socket (side CLIENT, for getpeername and for
// sockops to copy) and on the accepted socket (side ACCEPTED, read by lastmiled by fd).
struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct lm_origin);
} origins SEC(".maps");

// Carries the destination from the client socket to the accepted one. Also the fallback
// lastmiled reads when the listener's cgroup has no sockops program; LRU because an entry
// of a connection that never got accepted is never deleted.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct lm_tuple);
    __type(value, struct lm_origin);
} tuples SEC(".maps");

// Looks up the listener for `vip` unless the socket is one of lastmiled's own; on a match,
// remembers `vip` on the socket first, since a redirect whose origin is lost could not be
// routed by lastmiled (then the connect is left alone and counted).
static __always_inline struct lm_endpoint* take(struct bpf_sock* sk, struct lm_endpoint* vip)
{
    struct lm_endpoint* listener = bpf_map_lookup_elem(&vips, vip);
    if (!listener) {
        return 0;
    }
    if (backend_mark != 0 && sk->mark == backend_mark) {
        count(LM_COUNT_SKIPPED_BY_MARK);
        return 0;
    }
    struct lm_origin* origin = bpf_sk_storage_get(&origins, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!origin) {
        count(LM_COUNT_REFUSED);
        return 0;
    }
    origin->dst = *vip;
    origin->side = LM_SIDE_CLIENT;
    count(LM_COUNT_REDIRECTED);
    return listener;
}

SEC("cgroup/connect4")
int lm_connect4(struct bpf_sock_addr* ctx)
{
    struct bpf_sock* sk = ctx->sk;
    struct lm_endpoint vip = {};
    if (ctx->type != SOCK_STREAM || !sk) {
        return 1;
    }
    vip.addr[2] = bpf_htonl(0xffff);
    vip.addr[3] = ctx->user_ip4;
    vip.port = bpf_ntohs((__u16)ctx->user_port);
    // An IPv4 socket can only reach an IPv4 listener; the loader refuses other pairs.
    struct lm_endpoint* listener = take(sk, &vip);
    if (listener) {
        ctx->user_ip4 = listener->addr[3];
        ctx->user_port = bpf_htons(listener->port);
    }
    return 1;
}

// Also sees IPv4-mapped destinations of dual-stack sockets: connect4 never runs for those.
SEC("cgroup/connect6")
int lm_connect6(struct bpf_sock_addr* ctx)
{
    struct bpf_sock* sk = ctx->sk;
    struct lm_endpoint vip = {};
    if (ctx->type != SOCK_STREAM || !sk) {
        return 1;
    }
    vip.addr[0] = ctx->user_ip6[0];
    vip.addr[1] = ctx->user_ip6[1];
    vip.addr[2] = ctx->user_ip6[2];
    vip.addr[3] = ctx->user_ip6[3];
    vip.port = bpf_ntohs((__u16)ctx->user_port);
    struct lm_endpoint* listener = take(sk, &vip);
    if (listener) {
        ctx->user_ip6[0] = listener->addr[0];
        ctx->user_ip6[1] = listener->addr[1];
        ctx->user_ip6[2] = listener->addr[2];
        ctx->user_ip6[3] = listener->addr[3];
        ctx->user_port = bpf_htons(listener->port);
    }
    return 1;
}

// The client keeps seeing the address it asked for as its peer.
static __always_inline int peername(struct bpf_sock_addr* ctx, int v6)
{
    if (!ctx->sk) {
        return 1;
    }
    struct lm_origin* origin = bpf_sk_storage_get(&origins, ctx->sk, 0, 0);
    if (!origin || origin->side != LM_SIDE_CLIENT) {
        return 1;
    }
    if (v6) {
        ctx->user_ip6[0] = origin->dst.addr[0];
        ctx->user_ip6[1] = origin->dst.addr[1];
        ctx->user_ip6[2] = origin->dst.addr[2];
        ctx->user_ip6[3] = origin->dst.addr[3];
    } else {
        ctx->user_ip4 = origin->dst.addr[3];
    }
    ctx->user_port = bpf_htons(origin->dst.port);
    return 1;
}

SEC("cgroup/getpeername4")
int lm_getpeername4(struct bpf_sock_addr* ctx)
{
    return peername(ctx, 0);
}

SEC("cgroup/getpeername6")
int lm_getpeername6(struct bpf_sock_addr* ctx)
{
    return peername(ctx, 1);
}

// clang 14 merges a family-dependent ctx read (local_ip4 or local_ip6[3]) into one load from
// a computed ctx offset, which the verifier rejects ("dereference of modified ctx ptr").
// Every field is therefore read unconditionally through a volatile load, then selected.
#define LM_CTX_READ(field) (*(volatile __u32*)&(field))

struct lm_ops_addrs {
    __u32 local[4];
    __u32 remote[4];
};

static __always_inline void opsAddrs(struct bpf_sock_ops* ctx, struct lm_ops_addrs* a)
{
    __u32 family = LM_CTX_READ(ctx->family);
    __u32 l4 = LM_CTX_READ(ctx->local_ip4), r4 = LM_CTX_READ(ctx->remote_ip4);
    __u32 l0 = LM_CTX_READ(ctx->local_ip6[0]), l1 = LM_CTX_READ(ctx->local_ip6[1]);
    __u32 l2 = LM_CTX_READ(ctx->local_ip6[2]), l3 = LM_CTX_READ(ctx->local_ip6[3]);
    __u32 r0 = LM_CTX_READ(ctx->remote_ip6[0]), r1 = LM_CTX_READ(ctx->remote_ip6[1]);
    __u32 r2 = LM_CTX_READ(ctx->remote_ip6[2]), r3 = LM_CTX_READ(ctx->remote_ip6[3]);
    if (family == AF_INET) {
        a->local[0] = a->local[1] = a->remote[0] = a->remote[1] = 0;
        a->local[2] = a->remote[2] = bpf_htonl(0xffff);
        a->local[3] = l4;
        a->remote[3] = r4;
    } else {
        a->local[0] = l0;
        a->local[1] = l1;
        a->local[2] = l2;
        a->local[3] = l3;
        a->remote[0] = r0;
        a->remote[1] = r1;
        a->remote[2] = r2;
        a->remote[3] = r3;
    }
}

// remote_port holds the network-order port in the upper 16 bits (on little-endian), so
// bpf_ntohl of it is the host-order port; local_port is already in host order.
#define LM_OPS_REMOTE_PORT(ctx) ((__u16)bpf_ntohl((ctx)->remote_port))

SEC("sockops")
int lm_sockops(struct bpf_sock_ops* ctx)
{
    struct bpf_sock* sk = ctx->sk;
    struct lm_tuple tuple = {};
    struct lm_ops_addrs a;
    struct lm_origin* origin;
    if (!sk) {
        return 1;
    }
    opsAddrs(ctx, &a);
    switch (ctx->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
        // The client socket, after connect4/6: its local port is bound only now.
        origin = bpf_sk_storage_get(&origins, sk, 0, 0);
        if (!origin || origin->side != LM_SIDE_CLIENT) {
            return 1;
        }
        __builtin_memcpy(tuple.client, a.local, sizeof(tuple.client));
        __builtin_memcpy(tuple.listener, a.remote, sizeof(tuple.listener));
        tuple.client_port = (__u16)ctx->local_port;
        tuple.listener_port = LM_OPS_REMOTE_PORT(ctx);
        bpf_map_update_elem(&tuples, &tuple, origin, BPF_ANY);
        break;
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
        // The accepted socket; this runs in the cgroup of the listening socket.
        __builtin_memcpy(tuple.client, a.remote, sizeof(tuple.client));
        __builtin_memcpy(tuple.listener, a.local, sizeof(tuple.listener));
        tuple.client_port = LM_OPS_REMOTE_PORT(ctx);
        tuple.listener_port = (__u16)ctx->local_port;
        struct lm_origin* carried = bpf_map_lookup_elem(&tuples, &tuple);
        if (!carried) {
            return 1;
        }
        origin = bpf_sk_storage_get(&origins, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
        if (!origin) {
            return 1;  // the tuple entry stays: lastmiled falls back to it
        }
        origin->dst = carried->dst;
        origin->side = LM_SIDE_ACCEPTED;
        bpf_map_delete_elem(&tuples, &tuple);
        break;
    }
    }
    return 1;
}

// The socket storage helpers are GPL-only.
char LICENSE[] SEC("license") = "Dual BSD/GPL";
