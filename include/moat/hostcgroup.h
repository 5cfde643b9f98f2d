/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox's cgroup on the host: the config's linux.cgroupsPath, made in
 * every mounted hierarchy (cgroup v1 controllers, the cgroup2 mount), with
 * the VMM, moat-vsock and the stand-ins in it, so the host's accounting
 * covers the whole sandbox (the container's own limits apply in the guest). */
#ifndef MOAT_HOSTCGROUP_H
#define MOAT_HOSTCGROUP_H

#include <stdbool.h>
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

/* Creates path in every hierarchy (cpuset: cpus/mems copied from the
 * parent) and moves each pid in pids (0-terminated) into it. */
int moat_hostcg_enter (const char *path, const pid_t *pids, moat_error_t *err);

/* Moves one more process in (a stand-in started later). */
int moat_hostcg_add (const char *path, pid_t pid, moat_error_t *err);

/* Removes path from every hierarchy (waits up to timeout_ms for it to
 * empty). Missing directories are fine. */
int moat_hostcg_remove (const char *path, int timeout_ms, moat_error_t *err);

#endif
