/* SPDX-License-Identifier: Apache-2.0 */
/* moat create [--bundle|-b DIR] [--pid-file F] [--console-socket S]
 *             [--preserve-fds N] [--no-pivot] [--no-new-keyring] ID
 *
 * Boots the sandbox VM and creates the container in it, held before its
 * process runs (moat_container_create, src/lib/container.c, has the
 * decisions). The VM outlives this command: its processes are in their
 * own session and get reparented to the caller's subreaper or init. The
 * stand-in is a direct child, so that it too is reparented to the
 * caller's subreaper, like runc's init process. Exits 0 leaving the
 * stand-in behind. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat create [options] ID\n\n"
                    "Create a container in a new VM. Its process is held until `moat start ID`.\n"
                    "A stand-in process stays on the host: its pid is in --pid-file and the state.\n\n"
                    "Options:\n"
                    "  -b, --bundle DIR          bundle directory (default: the current directory)\n"
                    "      --pid-file FILE       write the stand-in's pid to FILE\n"
                    "      --console-socket SOCK send the pty master to the Unix socket SOCK\n"
                    "                            (needed when process.terminal is true)\n"
                    "      --preserve-fds N      pass fds 3..3+N-1 to the process (relayed into the VM\n"
                    "                            as byte streams; see docs/limits.md)\n"
                    "      --no-pivot            accepted (the guest always uses pivot_root)\n"
                    "      --no-new-keyring      accepted (the guest kernel has its own keyrings)\n"
                    "  -h, --help                this help\n");
}

int
moat_parse_create_opts (const char *verb, int argc, char **argv, struct moat_container_create_opts *o, bool *detach,
                        bool *keep)
{
        static const struct option opts[] = {
                {"bundle", required_argument, NULL, 'b'},
                {"pid-file", required_argument, NULL, 'p'},
                {"console-socket", required_argument, NULL, 'c'},
                {"preserve-fds", required_argument, NULL, 'F'},
                {"no-pivot", no_argument, NULL, 'P'},
                {"no-new-keyring", no_argument, NULL, 'K'},
                {"detach", no_argument, NULL, 'd'},
                {"keep", no_argument, NULL, 'k'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        bool is_run = strcmp (verb, "run") == 0;
        int c;

        o->bundle = ".";
        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, is_run ? "+b:dh" : "+b:h", opts, NULL)) != -1) {
                switch (c) {
                case 'b':
                        o->bundle = optarg;
                        break;
                case 'p':
                        o->pid_file = optarg;
                        break;
                case 'c':
                        o->console_socket = optarg;
                        break;
                case 'F': {
                        char *end;
                        long v = strtol (optarg, &end, 10);
                        if (*end || v < 0 || v > 65536) {
                                fprintf (stderr, "moat: %s: --preserve-fds: expected a number, got \"%s\"\n", verb,
                                         optarg);
                                return 1;
                        }
                        o->preserve_fds = v;
                        break;
                }
                case 'P':
                case 'K':
                        break;
                case 'd':
                case 'k':
                        if (!is_run)
                                goto unknown;
                        if (c == 'd')
                                *detach = true;
                        else
                                *keep = true;
                        break;
                case 'h':
                        return 2;
                default:
                unknown:
                        if (optopt && c == '?')
                                fprintf (stderr, "moat: %s: option needs a value or is unknown: %s\n", verb,
                                         argv[optind - 1]);
                        else
                                fprintf (stderr, "moat: %s: unknown option %s\n", verb, argv[optind - 1]);
                        return 1;
                }
        }
        if (optind + 1 != argc) {
                fprintf (stderr, "moat: %s: expected exactly one container ID (see moat %s --help)\n", verb, verb);
                return 1;
        }
        o->id = argv[optind];
        return 0;
}

int
moat_cmd_create (struct moat_global *g, int argc, char **argv)
{
        struct moat_container_create_opts o = {0};
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;
        int r = moat_parse_create_opts ("create", argc, argv, &o, NULL, NULL);
        if (r == 2) {
                usage (stdout);
                return 0;
        }
        if (r)
                return 1;
        if (moat_container_create (&ctx, &o, &err) < 0) {
                moat_error_wrap (&err, "create %s", o.id);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}
