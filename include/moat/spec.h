/* SPDX-License-Identifier: Apache-2.0 */
/* What `moat spec` and `moat features` print: the default config.json (the
 * same document runc spec writes, hostname "moat") and the runtime-spec
 * features document, fixed at build time. */
#ifndef MOAT_SPEC_H
#define MOAT_SPEC_H

#include <stdbool.h>
#include <sys/types.h>

/* The default config.json, tab-indented like runc's (malloc'd). rootless:
 * no network namespace and no device cgroup rules, a user namespace mapping
 * uid/gid 0 to `uid`/`gid`, /sys bind-mounted instead of a new sysfs, and
 * no gid= option on devpts. */
char *moat_spec_default (bool rootless, uid_t uid, gid_t gid);

/* The features document (runtime-spec features.md) as pretty JSON
 * (malloc'd). Claims only what moat implements: the guest agent's mount
 * options, namespaces and seccomp actions, cgroup v2 in the guest. */
char *moat_features_json (void);

#endif
