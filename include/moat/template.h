/* SPDX-License-Identifier: Apache-2.0 */
/* VM templates (src/lib/template.c): a VM booted once until its agent is
 * idle, with no device and no container data, saved under
 * moat_cache_dir()/templates/<key hash>/ and restored by every sandbox
 * whose VM has the same key (kernel, initramfs, backend and its version,
 * accelerator, memory, vCPUs, command line). */
#ifndef MOAT_TEMPLATE_H
#define MOAT_TEMPLATE_H

#include <stdbool.h>

#include "moat/error.h"
#include "moat/hypervisor.h"

/* MOAT_TEMPLATE: "off" (or 0/no/false) turns templates off, "on" (or
 * 1/yes/true) on; unset: MOAT_TEMPLATE_DEFAULT. */
#define MOAT_TEMPLATE_DEFAULT true
bool moat_template_enabled (void);
/* MOAT_TEMPLATE=force: try templates even where the backend's probe said
 * it cannot restore them (tests of the fallback). */
bool moat_template_forced (void);

/* 1 when backend hv can restore templates here (its probe, run once per
 * backend binary and cached in the template cache), else 0 with *why
 * (malloc'd). */
int moat_template_supported (const struct moat_hypervisor *hv, const struct moat_vm_config *c, char **why);

/* A template for a VM: its key and where it lives. cmdline is the
 * template's kernel command line (the cold one plus the template's
 * parameters); a sandbox restoring it boots with that one. */
struct moat_template {
        char *key;     /* the key text (also dir/key) */
        char *dir;     /* <cache>/templates/<hash> */
        char *state;   /* dir/MOAT_TEMPLATE_STATE */
        char *cmdline; /* the template's kernel command line */
};

/* Fills t for backend hv and VM c (c->cmdline: the cold command line).
 * Fails (quietly: the caller cold-boots) when hv has no templates or a
 * file of the key cannot be read. */
int moat_template_lookup (const struct moat_hypervisor *hv, const struct moat_vm_config *c, struct moat_template *t,
                          moat_error_t *err);
/* The template is on disk with a matching key. */
bool moat_template_ready (const struct moat_template *t);
/* Builds t (boots c as a template and saves it). EBUSY: another process is
 * building it right now. */
int moat_template_build (const struct moat_hypervisor *hv, const struct moat_vm_config *c,
                         const struct moat_template *t, moat_error_t *err);
/* An earlier build of t failed (its <dir>.failed marker holds why). */
bool moat_template_failed (const struct moat_template *t);
/* Leaves <dir>.failed with why: later sandboxes boot cold without
 * building t again (until its key changes, or a build clears it). */
void moat_template_mark_failed (const struct moat_template *t, const char *why);
/* Removes a template that failed to restore (the next sandbox rebuilds it). */
void moat_template_discard (const struct moat_template *t);
void moat_template_clear (struct moat_template *t);

/* `moat template build`: builds (unless it is ready) the template of the
 * VM a container without resources gets; *dir its directory. ENOTSUP
 * where the backend cannot restore templates (unless forced). */
int moat_template_build_default (bool debug, char **dir, moat_error_t *err);

/* For `moat check` and `moat env`: whether the default-sized QEMU template
 * (no resources in the config) is ready here, as one line (malloc'd). */
char *moat_template_describe (void);

#endif
