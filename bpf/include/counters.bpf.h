/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The per-CPU counters map each interception object keeps (enum lm_counter), and count(). */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "interception_abi.h"

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LM_COUNT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 index)
{
    __u64* value = bpf_map_lookup_elem(&counters, &index);
    if (value) {
        *value += 1;
    }
}
