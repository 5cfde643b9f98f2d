/* SPDX-License-Identifier: Apache-2.0 */
/* moat setup podman|docker|containerd [--remove]: registers moat as a
 * runtime with that client (src/lib/setup.c does the work). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "moat/paths.h"
#include "moat/setup.h"
#include "moat/util.h"

static void
help (void)
{
        printf ("Usage: moat setup [--remove] [--dry-run] [--root-dir DIR] [--runtime-path PATH] CLIENT\n\n"
                "Registers moat as a runtime with CLIENT, idempotently, and --remove takes exactly\n"
                "that back out:\n"
                "  podman      writes /etc/containers/containers.conf.d/moat.conf\n"
                "              ([engine.runtimes] moat): podman --runtime moat run ...\n"
                "  docker      merges \"runtimes\": {\"moat\": {\"path\": ...}} into /etc/docker/daemon.json,\n"
                "              keeping every other key (the previous file is saved as\n"
                "              daemon.json.moat-backup; a malformed file is reported, left untouched)\n"
                "  containerd  writes /etc/containerd/conf.d/moat.toml with the CRI runtime handlers\n"
                "              moat (io.containerd.moat.v2) and moat-runc (runc shim, moat binary)\n"
                "              when config.toml imports it (asked to containerd config dump); else\n"
                "              prints the imports line and the snippet to add by hand\n\n"
                "Options:\n"
                "  --remove             undo what moat setup CLIENT added\n"
                "  --dry-run            print what would change, change nothing\n"
                "  --root-dir DIR       the clients' files under DIR/etc instead of /etc\n"
                "  --runtime-path PATH  the moat binary to register (default: this one)\n");
}

/* the first executable NAME on PATH, NULL if none */
static char *
on_path (const char *name)
{
        const char *path = getenv ("PATH");
        cleanup_free char *copy = xstrdup (path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
        char *save = NULL;
        for (char *d = strtok_r (copy, ":", &save); d; d = strtok_r (NULL, ":", &save)) {
                char *p = xasprintf_r ("%s/%s", d, name);
                if (*d == '/' && access (p, X_OK) == 0)
                        return p;
                free (p);
        }
        return NULL;
}

int
moat_cmd_setup (struct moat_global *g, int argc, char **argv)
{
        struct moat_setup_opts o = {0};
        cleanup_error moat_error_t err = NULL;
        cleanup_free char *self = NULL;
        cleanup_free char *containerd = NULL;
        const char *client_name = NULL;
        int client;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
                        help ();
                        return 0;
                } else if (strcmp (a, "--remove") == 0)
                        o.remove = true;
                else if (strcmp (a, "--dry-run") == 0)
                        o.dry_run = true;
                else if (strcmp (a, "--root-dir") == 0 || strcmp (a, "--runtime-path") == 0) {
                        if (i + 1 >= argc) {
                                moat_cli_error ("setup: %s needs a value", a);
                                return 1;
                        }
                        if (a[2] == 'r' && a[3] == 'o')
                                o.root_dir = argv[++i];
                        else
                                o.moat_path = argv[++i];
                } else if (strncmp (a, "--root-dir=", 11) == 0)
                        o.root_dir = a + 11;
                else if (strncmp (a, "--runtime-path=", 15) == 0)
                        o.moat_path = a + 15;
                else if (a[0] == '-') {
                        moat_cli_error ("setup: unknown option %s (see moat setup --help)", a);
                        return 1;
                } else if (client_name == NULL)
                        client_name = a;
                else {
                        moat_cli_error ("setup: unexpected argument \"%s\" (see moat setup --help)", a);
                        return 1;
                }
        }
        if (client_name == NULL) {
                moat_cli_error ("setup: which client? podman, docker or containerd (see moat setup --help)");
                return 1;
        }
        client = moat_setup_client_lookup (client_name);
        if (client < 0) {
                moat_cli_error ("setup: unknown client \"%s\" (known: podman, docker, containerd)", client_name);
                return 1;
        }
        if (o.root_dir && o.root_dir[0] != '/') {
                moat_cli_error ("setup: --root-dir %s: must be an absolute path", o.root_dir);
                return 1;
        }
        if (o.moat_path == NULL) {
                if (moat_self_dir () == NULL) {
                        moat_cli_error (
                                "setup: cannot tell where this moat is (no /proc/self/exe); use --runtime-path");
                        return 1;
                }
                self = xasprintf_r ("%s/moat", moat_self_dir ());
                o.moat_path = self;
        }
        if (client == MOAT_SETUP_CONTAINERD)
                o.containerd = containerd = on_path ("containerd");
        if (moat_setup (client, &o, stdout, &err) < 0) {
                fflush (stdout);
                moat_cli_error ("setup %s: %s", client_name, err->msg);
                return 1;
        }
        return fflush (stdout) == 0 ? 0 : 1;
}
