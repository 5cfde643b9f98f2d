/* SPDX-License-Identifier: Apache-2.0 */
/* moat ps: the processes of a container. runc prints host pids (json) or
 * filters the host's `ps -ef` (table). A moat container's processes live in
 * its VM and have no host pids, so:
 *  - --format json prints host pids, as clients expect (containerd's shim
 *    answers `docker top` with them, and dockerd then filters the host's
 *    `ps -ef` by them): the stand-ins that represent the container's
 *    processes on the host, the init's (the state's pid) and those of the
 *    running `moat exec` processes (recorded by exec, moat/execrec.h);
 *  - the table prints the guest pids (the container cgroup's members, as
 *    the agent reports them), for people;
 * and host ps options cannot apply. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/execrec.h"
#include "moat/state.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat ps [--format|-f table|json] ID\n\n"
                    "Lists the processes of container ID. They run inside the container's VM:\n"
                    "  table (the default)  a PID column of guest pids (as the VM's init sees them,\n"
                    "                       not the container's own pid namespace)\n"
                    "  json                 an array of HOST pids, as runc prints: those of the\n"
                    "                       stand-ins, the host processes that represent the\n"
                    "                       container's init (the state's pid) and each running\n"
                    "                       `moat exec` process (what `docker top` shows)\n"
                    "`ps` options (which runc passes to the host's ps) are not supported.\n\n"
                    "  --format, -f FORMAT   table or json\n");
}

int
moat_cmd_ps (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"format", required_argument, NULL, 'f'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *format = "table", *id = NULL;
        cleanup_error moat_error_t err = NULL;
        struct moat_state *st = NULL;
        struct moat_stats s = {0};
        cleanup_free pid_t *execs = NULL;
        size_t n_execs = 0;
        int c, rc = 1;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+f:h", opts, NULL)) != -1) {
                switch (c) {
                case 'f':
                        format = optarg;
                        break;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        moat_cli_error ("ps: unknown option or missing value: %s (see moat ps --help)",
                                        argv[optind - 1]);
                        return 1;
                }
        }
        if (strcmp (format, "table") != 0 && strcmp (format, "json") != 0) {
                moat_cli_error ("ps: --format: expected table or json, got \"%s\"", format);
                return 1;
        }
        if (optind >= argc) {
                moat_cli_error ("ps: expected a container ID (usage: moat ps [--format table|json] ID)");
                return 1;
        }
        id = argv[optind++];
        if (optind < argc && strcmp (argv[optind], "--") == 0)
                optind++;
        if (optind < argc) {
                moat_cli_error ("ps %s: ps options (\"%s\"...) are not supported: the container's processes run "
                                "inside its VM, not on the host",
                                id, argv[optind]);
                return 1;
        }

        /* as runc: a stopped container has no processes (not an error) */
        if (moat_state_load (g->root, id, &st, &err) < 0)
                goto out;
        if (strcmp (format, "json") == 0) {
                /* host pids: the init's stand-in, then the execs' */
                bool live = strcmp (moat_state_live_status (st), "stopped") != 0;
                if (live && moat_execrec_list (st->dir, &execs, &n_execs, &err) < 0)
                        goto out;
                /* no pid yet while creating: no stand-in to list */
                live = live && st->pid > 0;
                printf ("[");
                if (live)
                        printf ("%d", (int)st->pid);
                for (size_t i = 0; live && i < n_execs; i++)
                        printf (",%d", (int)execs[i]);
                printf ("]\n");
                rc = fflush (stdout) == 0 ? 0 : 1;
                goto out;
        }
        if (strcmp (moat_state_live_status (st), "stopped") != 0) {
                struct moat_context ctx = moat_cli_context (g);
                if (moat_container_stats (&ctx, id, &s, &err) < 0)
                        goto out;
        }
        printf ("PID\n");
        for (size_t i = 0; i < s.n_pids; i++)
                printf ("%u\n", s.pids[i]);
        rc = fflush (stdout) == 0 ? 0 : 1;
out:
        moat_stats_clear (&s);
        moat_state_free (st);
        if (err) {
                moat_error_wrap (&err, "ps %s", id);
                moat_error_print (&err, "moat");
        }
        return rc;
}
