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
 * "/a.slice/a-b.slice/pfx-n.scope"). NULL cgroupsPath: "/moat/<id>".
 * Returns a malloc'd path starting with '/'. */
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
