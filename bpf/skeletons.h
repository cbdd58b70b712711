// SPDX-License-Identifier: Apache-2.0
// The bpftool skeletons of host.bpf.c and routed.bpf.c, included with the warnings their
// generated C code trips.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include "host.skel.h"
#include "routed.skel.h"
#pragma GCC diagnostic pop
