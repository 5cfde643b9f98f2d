/* SPDX-License-Identifier: Apache-2.0 */
/* moat spec: write a default config.json (runc's, hostname "moat"). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "moat/spec.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat spec [--bundle|-b DIR] [--rootless]\n\n"
                    "Writes a default config.json into DIR (default: the current directory):\n"
                    "args [\"sh\"] with a terminal, a read-only rootfs \"rootfs\". It refuses to\n"
                    "overwrite an existing config.json.\n\n"
                    "  --bundle, -b DIR   where to write config.json\n"
                    "  --rootless         a spec for a rootless container: a user namespace mapping\n"
                    "                     root to the caller, no network namespace, /sys bind-mounted\n");
}

int
moat_cmd_spec (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"bundle", required_argument, NULL, 'b'},
                {"rootless", no_argument, NULL, 'r'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *bundle = NULL;
        bool rootless = false;
        cleanup_free char *path = NULL;
        cleanup_free char *json = NULL;
        cleanup_close int fd = -1;
        size_t len;
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+b:h", opts, NULL)) != -1) {
                switch (c) {
                case 'b':
                        bundle = optarg;
                        break;
                case 'r':
                        rootless = true;
                        break;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        moat_cli_error ("spec: unknown option or missing value: %s (see moat spec --help)",
                                        argv[optind - 1]);
                        return 1;
                }
        }
        if (optind != argc) {
                moat_cli_error ("spec: unexpected argument \"%s\" (see moat spec --help)", argv[optind]);
                return 1;
        }
        if (bundle && *bundle == '\0') {
                moat_cli_error ("spec: --bundle must not be empty");
                return 1;
        }
        path = bundle ? xasprintf_r ("%s/config.json", bundle) : xstrdup ("config.json");
        if (bundle && access (bundle, F_OK) < 0) {
                moat_cli_error ("spec: bundle %s: %s", bundle, strerror (errno));
                return 1;
        }
        fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
                if (errno == EEXIST)
                        moat_cli_error ("spec: File %s exists. Remove it first", path);
                else
                        moat_cli_error ("spec: create %s: %s", path, strerror (errno));
                return 1;
        }
        json = moat_spec_default (rootless, geteuid (), getegid ());
        len = strlen (json);
        if (write_all (fd, json, len) != (ssize_t)len || close (steal_fd (&fd)) < 0) {
                moat_cli_error ("spec: write %s: %s", path, strerror (errno));
                unlink (path);
                return 1;
        }
        return 0;
}
