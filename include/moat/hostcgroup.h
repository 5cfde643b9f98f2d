/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox's cgroup on the host: the config's linux.cgroupsPath, made in
 * every mounted hierarchy (cgroup v1 controllers, the cgroup2 mount), with
 * the VMM, moat-vsock and the stand-ins in it, so the host's accounting
 * covers the whole sandbox, and limits on it (memory, CPU, pids) so that
 * the VM cannot take more of the host than its container was given (the
 * container's own limits apply in the guest too). Creation and limits go
 * through libcgroup; see hostcgroup.c for the parts done by hand. */
#ifndef MOAT_HOSTCGROUP_H
#define MOAT_HOSTCGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/error.h"

/* The cgroupfs path for a config's cgroupsPath: "/a/b" and "a/b" as given
 * (relative paths go below the root too: moat has no parent cgroup of its
 * own); with systemd=true or a "slice:prefix:name" value, the systemd form
 * is converted to its cgroupfs path ("a-b.slice:pfx:n" ->
 * "/a.slice/a-b.slice/pfx-n.scope"). Returns a malloc'd path starting
 * with '/'.
 * No cgroupsPath: a default that no other moat state root (--root) can
 * have for any id, so that two instances with different roots may use the
 * same id: "/moat/<id>" (systemd: "/system.slice/moat-<id>.scope") for the
 * default root /run/moat, "/moat/<id>@<h>" ("moat-<id>@<h>.scope") for
 * any other, where <h> is 16 hex digits of a hash (FNV-1a 64) of the
 * root's canonical path. (runc's default is "<id>" below the parent of
 * its own cgroup, crun's systemd scope "crun-<id>.scope": both collide
 * across roots.) */
int moat_hostcg_resolve (const char *cgroups_path, const char *root, const char *id, bool systemd, char **out,
                         moat_error_t *err);

/* moat_hostcg_resolve for the default root (root NULL). Kept for callers
 * that do not pass their root yet: the default path of any other root
 * must come from moat_hostcg_resolve. */
int moat_hostcg_path (const char *cgroups_path, const char *id, bool systemd, char **out, moat_error_t *err);

/* Host-side limits of a sandbox's cgroup; 0 in a field: not limited. */
struct moat_hostcg_limits {
        uint64_t memory_bytes; /* memory.limit_in_bytes (v1), memory.max (v2) */
        uint64_t cpu_quota_us; /* cpu.cfs_quota_us, or cpu.max's quota */
        uint64_t cpu_period_us;
        uint64_t pids; /* pids.max */
};

/* Creates path in every hierarchy (cpuset: cpus/mems copied from the
 * parent), sets lim (NULL: no limits) and moves each pid in pids
 * (0-terminated) into it. */
int moat_hostcg_enter_limited (const char *path, const struct moat_hostcg_limits *lim, const pid_t *pids,
                               moat_error_t *err);

/* moat_hostcg_enter_limited without limits. */
int moat_hostcg_enter (const char *path, const pid_t *pids, moat_error_t *err);

/* Changes the limits of an existing cgroup: only the non-zero fields. */
int moat_hostcg_set_limits (const char *path, const struct moat_hostcg_limits *lim, moat_error_t *err);

/* The CPU quota and period of an update's linux.resources JSON ("cpu":
 * {"quota", "period"}), as moat_hostcg_set_limits takes them: *lim zeroed,
 * then the fields the JSON sets (a quota of -1 or 0: none). Returns 1 if
 * there is a quota to apply, 0 if not, -1 on a malformed JSON. */
int moat_hostcg_limits_from_update (const char *resources_json, struct moat_hostcg_limits *lim, moat_error_t *err);

/* What the host's cgroups offer moat (moat check): "v1", "hybrid" or "v2"
 * and whether memory, cpu and pids limits can be set. */
struct moat_hostcg_info {
        const char *mode; /* "v1", "hybrid", "v2", or "none" */
        bool memory, cpu, pids;
        const char *error; /* libcgroup's message if it could not start */
};
void moat_hostcg_probe (struct moat_hostcg_info *info);

/* Moves one more process in (a stand-in started later). */
int moat_hostcg_add (const char *path, pid_t pid, moat_error_t *err);

/* Removes path from every hierarchy (waits up to timeout_ms for it to
 * empty). Missing directories are fine. */
int moat_hostcg_remove (const char *path, int timeout_ms, moat_error_t *err);

#endif
