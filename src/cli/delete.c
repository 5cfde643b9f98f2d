/* SPDX-License-Identifier: Apache-2.0 */
/* moat delete [--force|-f] ID: delete a stopped container: power its VM
 * off (if the stand-in left it on), stop moat-vsock, detach the share,
 * remove the host cgroup, then run the poststop hooks, then remove the
 * state.
 * A created, running or paused container is refused without --force (the
 * runtime spec says so for created too; runc deletes those). A create
 * killed before the container existed leaves "creating" with nobody
 * holding the lock: that is stopped, and a plain delete cleans it. --force kills
 * what is left even when the VMM or the stand-in died, and succeeds for an
 * unknown ID, as runc does. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat delete [--force|-f] ID\n\n"
                    "Delete a stopped container: its VM, host resources and state.\n\n"
                    "Options:\n"
                    "  -f, --force  also kill and delete a created, running or paused container\n"
                    "               (and succeed if ID does not exist)\n"
                    "  -h, --help   this help\n");
}

int
moat_cmd_delete (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;
        bool force = false;
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+fh", opts, NULL)) != -1) {
                if (c == 'f')
                        force = true;
                else if (c == 'h') {
                        usage (stdout);
                        return 0;
                } else {
                        fprintf (stderr, "moat: delete: unknown option %s\n", argv[optind - 1]);
                        return 1;
                }
        }
        if (optind + 1 != argc) {
                fprintf (stderr, "moat: delete: expected exactly one container ID (see moat delete --help)\n");
                return 1;
        }
        if (moat_container_delete (&ctx, argv[optind], force, &err) < 0) {
                moat_error_wrap (&err, "delete %s", argv[optind]);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}
