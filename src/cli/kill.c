/* SPDX-License-Identifier: Apache-2.0 */
/* moat kill [--all|-a] ID [SIGNAL]: send a signal (name with or without
 * SIG in any case, or number; default SIGTERM) to the container's process,
 * or with --all to every process of the container, through the agent.
 * Signal 0 only checks that the container's process is alive. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/oci.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat kill [--all|-a] ID [SIGNAL]\n\n"
                    "Send SIGNAL (default SIGTERM; KILL, SIGKILL or 9) to the container's process.\n\n"
                    "Options:\n"
                    "  -a, --all    signal every process of the container\n"
                    "  -h, --help   this help\n");
}

int
moat_cmd_kill (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"all", no_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;
        const char *id, *sigs = "SIGTERM";
        bool all = false;
        int c, sig;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+ah", opts, NULL)) != -1) {
                if (c == 'a')
                        all = true;
                else if (c == 'h') {
                        usage (stdout);
                        return 0;
                } else {
                        moat_cli_error ("kill: unknown option %s", argv[optind - 1]);
                        return 1;
                }
        }
        if (optind >= argc || argc - optind > 2) {
                moat_cli_error ("kill: expected ID [SIGNAL] (see moat kill --help)");
                return 1;
        }
        id = argv[optind];
        if (argc - optind == 2)
                sigs = argv[optind + 1];
        /* runc accepts 0 (does the container's process exist?) */
        sig = strcmp (sigs, "0") == 0 ? 0 : oci_signal_parse (sigs);
        if (sig < 0) {
                moat_cli_error ("kill %s: unknown signal \"%s\"", id, sigs);
                return 1;
        }
        if (moat_container_kill (&ctx, id, sig, all, &err) < 0) {
                moat_error_wrap (&err, "kill %s", id);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}
