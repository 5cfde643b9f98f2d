/* SPDX-License-Identifier: Apache-2.0 */
/* `moat update` flags -> an OCI linux.resources JSON object, with runc's
 * flag semantics and units; and what of such an object an update leaves
 * unchanged. */
#ifndef MOAT_RESOURCES_H
#define MOAT_RESOURCES_H

#include <stdint.h>

#include "moat/error.h"

/* Each field is the flag's text as given, NULL when the flag is absent. */
struct moat_update_flags {
        const char *memory;             /* --memory: bytes, units k/m/g/t/p accepted; -1 unlimited */
        const char *memory_swap;        /* --memory-swap: memory + swap; -1 unlimited */
        const char *memory_reservation; /* --memory-reservation */
        const char *pids_limit;         /* --pids-limit: 0 leaves it unchanged, -1 unlimited */
        const char *cpu_quota;          /* --cpu-quota: usecs per period, -1 unlimited */
        const char *cpu_period;         /* --cpu-period: usecs */
        const char *cpu_shares;         /* --cpu-share(s): relative weight */
        const char *cpuset_cpus;        /* --cpuset-cpus: "0-1,3" */
        const char *cpuset_mems;        /* --cpuset-mems */
};

/* A size like docker's RAMInBytes: "1024", "64m", "64MiB", "1.5g" (binary
 * multiples, case-insensitive); "-1" means unlimited. `flag` names the
 * input in errors. */
int moat_parse_bytes (const char *flag, const char *s, int64_t *out, moat_error_t *err);

/* The linux.resources JSON for the flags given (malloc'd in *out). Fails,
 * naming the flag, on a malformed value; with no flag at all, fails with
 * EINVAL "nothing to update". */
int moat_update_resources_json (const struct moat_update_flags *f, char **out, moat_error_t *err);

/* The resources JSON (an object) an update applies, as runc reads it:
 * without "devices" (an update never changes the device rules; containerd
 * and the CRI send the whole list back) and without the fields whose zero
 * (or "", null) means "leave it as it is" (memory limit, reservation,
 * swap, cpu shares, quota, period, cpus, mems, pids limit, blockIO
 * weight...: Docker and containerd send whole objects). malloc'd. */
int moat_resources_drop_unchanged (const char *json, char **out, moat_error_t *err);

#endif
