/* SPDX-License-Identifier: Apache-2.0 */
/* `moat setup`: registers moat as a runtime with a client's own
 * configuration, and takes exactly that back out (--remove).
 *   podman      a containers.conf drop-in, [engine.runtimes] moat
 *   docker      "runtimes": {"moat": {"path": ...}} merged into daemon.json
 *               (every other key kept; the previous file saved as
 *               daemon.json.moat-backup)
 *   containerd  a config drop-in (conf.d/moat.toml) for config.toml's
 *               imports: runtime handlers "moat" (io.containerd.moat.v2)
 *               and "moat-runc" (io.containerd.runc.v2 with moat as its
 *               runc binary); where config.toml does not import it, the
 *               snippet to paste instead
 * Idempotent: a file that already says the same is left as it is. Every
 * change (or, with dry_run, what would change) is reported on `out`. */
#ifndef MOAT_SETUP_H
#define MOAT_SETUP_H

#include <stdbool.h>
#include <stdio.h>

#include "moat/error.h"

enum moat_setup_client { MOAT_SETUP_PODMAN, MOAT_SETUP_DOCKER, MOAT_SETUP_CONTAINERD };

struct moat_setup_opts {
        const char *root_dir;   /* prefix of the clients' /etc paths ("" or NULL: /) */
        const char *moat_path;  /* the runtime binary to register (absolute) */
        const char *containerd; /* the containerd binary that checks imports (NULL: none) */
        bool remove, dry_run;
};

/* "podman", "docker", "containerd" -> client; -1 if unknown */
int moat_setup_client_lookup (const char *name);
int moat_setup (enum moat_setup_client client, const struct moat_setup_opts *o, FILE *out, moat_error_t *err);

/* The files, for tests and messages (malloc'd, under root_dir). */
char *moat_setup_path (enum moat_setup_client client, const char *root_dir);

#endif
