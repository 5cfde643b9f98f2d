/* SPDX-License-Identifier: Apache-2.0 */
/* Host-side OCI hooks (prestart, createRuntime, createContainer, poststart,
 * poststop). Each runs with its args as given, its env as given (the
 * runtime's own environment when the hook has none, as runc does), the
 * bundle as its working directory, the OCI state JSON on stdin, and its
 * timeout (its process group is killed when it is exceeded).
 * createContainer runs in the stand-in's network namespace; startContainer
 * runs in the guest. */
#ifndef MOAT_HOOKS_H
#define MOAT_HOOKS_H

#include <stdbool.h>
#include <sys/types.h>

#include "moat/error.h"
#include "moat/oci.h"

/* Where a hook runs: moat's own namespaces, except the mount namespace
 * at mnt_fd (>= 0: moat create works in a private one). */
struct moat_hook_ns {
        int mnt_fd;
};

/* Runs the hooks of `kind` in order (ns NULL: in moat's namespaces). Stops at the first failure (non-zero
 * exit, signal, timeout, exec failure) and returns it, with the hook's
 * stderr tail in the message, unless keep_going: then every hook runs and a
 * failure is only logged as a warning (poststop). */
int moat_hooks_run (const struct oci_config *cfg, enum oci_hook_kind kind, const char *state_json, bool keep_going,
                    const struct moat_hook_ns *ns, moat_error_t *err);

/* How long the hooks of `kind` may take in all: the sum of their timeouts,
 * a hook without one counting as a day (as under runc, it may hang). */
int moat_hooks_time_ms (const struct oci_config *cfg, enum oci_hook_kind kind);

#endif
