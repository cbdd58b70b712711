/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The structs and indexes the interception programs share with their C++ loader. */
#pragma once

#include <linux/types.h>

/* Addresses are kept in IPv6 form, IPv4 as ::ffff:a.b.c.d (network order), so that an
 * IPv4-mapped destination on a dual-stack socket finds the same entry as a plain IPv4 one.
 * Ports are in host order. */
struct lm_endpoint {
    __u32 addr[4];
    __u16 port;
    __u16 pad;
};

/* Which socket a remembered destination belongs to: getpeername must rewrite only the
 * client's view, never what lastmiled's accepted socket reports. */
enum lm_side {
    LM_SIDE_CLIENT = 1,
    LM_SIDE_ACCEPTED = 2,
};

/* Host mode: the destination a client asked for, kept in socket storage and in the tuple map. */
struct lm_origin {
    struct lm_endpoint dst;
    __u32 side;
    __u32 pad;
};

/* Host mode: a connection as the client sees it (its own address, the listener's). */
struct lm_tuple {
    __u32 client[4];
    __u32 listener[4];
    __u16 client_port;
    __u16 listener_port;
};

/* Per-CPU counters of either object (a PERCPU_ARRAY indexed by these). */
enum lm_counter {
    LM_COUNT_REDIRECTED = 0,  /* connect rewritten (host) or SYN steered (routed) */
    LM_COUNT_SKIPPED_BY_MARK, /* host: a socket carrying the backend mark */
    LM_COUNT_REFUSED,         /* matched a VIP but could not be taken over, left alone */
    LM_COUNT_MAX,
};
