/* SPDX-License-Identifier: Apache-2.0 */
/* moat exec [options] ID CMD [ARGS...]   or   moat exec --process FILE ID
 *
 * Runs a new process in a running container (moat_container_exec): the
 * container's own process with the command line and the options applied,
 * or a process.json (--process). With --detach its stand-in outlives moat
 * exec (its pid goes to --pid-file); else moat exec is the stand-in, which
 * relays stdio and signals and exits with the process's status.
 * --preserve-fds N relays the caller's fds 3..3+N-1 like create does
 * (docs/limits.md). */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat exec [options] ID COMMAND [ARGS...]\n"
                    "       moat exec [options] --process FILE ID\n\n"
                    "Run a new process inside a running container.\n\n"
                    "Options:\n"
                    "  -p, --process FILE        the process as OCI process JSON\n"
                    "  -t, --tty                 allocate a pseudo-terminal\n"
                    "      --console-socket SOCK send the pty master to the Unix socket SOCK\n"
                    "      --cwd DIR             working directory\n"
                    "  -e, --env NAME=VALUE      set an environment variable (repeatable)\n"
                    "  -u, --user UID[:GID]      user and group ids (the container's gid stays without :GID)\n"
                    "  -g, --additional-gids GID add a supplementary group (repeatable, or GID,GID...)\n"
                    "  -c, --cap CAP             add a capability (repeatable)\n"
                    "      --no-new-privs        set no_new_privs\n"
                    "  -d, --detach              return at once; a stand-in process stays\n"
                    "      --pid-file FILE       write the stand-in's pid to FILE\n"
                    "      --preserve-fds N      pass fds 3..3+N-1 to the process (relayed into the VM\n"
                    "                            as byte streams; see docs/limits.md)\n"
                    "  -h, --help                this help\n");
}

/* --additional-gids "N" or "N,M,...": appended to o->gids. */
static int
parse_gids (const char *s, struct moat_container_exec_opts *o)
{
        const char *p = s;
        for (;;) {
                char *end;
                unsigned long long v;
                if (*p < '0' || *p > '9')
                        return -1;
                errno = 0;
                v = strtoull (p, &end, 10);
                if (errno || v > UINT32_MAX || (*end && *end != ','))
                        return -1;
                o->gids = xrealloc (o->gids, (o->n_gids + 1) * sizeof *o->gids);
                o->gids[o->n_gids++] = v;
                if (*end == '\0')
                        return 0;
                p = end + 1;
        }
}

int
moat_cmd_exec (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"process", required_argument, NULL, 'p'},
                {"tty", no_argument, NULL, 't'},
                {"console-socket", required_argument, NULL, 'C'},
                {"cwd", required_argument, NULL, 'w'},
                {"env", required_argument, NULL, 'e'},
                {"user", required_argument, NULL, 'u'},
                {"cap", required_argument, NULL, 'c'},
                {"no-new-privs", no_argument, NULL, 'N'},
                {"detach", no_argument, NULL, 'd'},
                {"pid-file", required_argument, NULL, 'P'},
                {"preserve-fds", required_argument, NULL, 'F'},
                {"additional-gids", required_argument, NULL, 'g'},
                {"apparmor", required_argument, NULL, 'A'},
                {"process-label", required_argument, NULL, 'L'},
                {"ignore-paused", no_argument, NULL, 'I'},
                {"cgroup", required_argument, NULL, 'G'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct moat_container_exec_opts o = {0};
        struct moat_context ctx = moat_cli_context (g);
        const char *id;
        cleanup_error moat_error_t err = NULL;
        cleanup_free uint32_t *gids = NULL;
        cleanup_free char **env = xzalloc (argc * sizeof (char *));
        cleanup_free char **caps = xzalloc (argc * sizeof (char *));
        int c, code = 0;

        o.env = env;
        o.caps = caps;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+p:te:u:c:dg:h", opts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        o.process_file = optarg;
                        break;
                case 't':
                        o.tty = true;
                        break;
                case 'C':
                        o.console_socket = optarg;
                        break;
                case 'w':
                        o.cwd = optarg;
                        break;
                case 'e':
                        if (strchr (optarg, '=') == NULL) {
                                fprintf (stderr, "moat: exec: --env \"%s\": expected NAME=VALUE\n", optarg);
                                return 1;
                        }
                        o.env[o.n_env++] = optarg;
                        break;
                case 'u':
                        o.user = optarg;
                        break;
                case 'c':
                        o.caps[o.n_caps++] = optarg;
                        break;
                case 'N':
                        o.no_new_privs = true;
                        break;
                case 'd':
                        o.detach = true;
                        break;
                case 'P':
                        o.pid_file = optarg;
                        break;
                case 'F': {
                        char *end;
                        long v = strtol (optarg, &end, 10);
                        if (*end || end == optarg || v < 0 || v > 65536) {
                                fprintf (stderr, "moat: exec: --preserve-fds: expected a number, got \"%s\"\n", optarg);
                                return 1;
                        }
                        o.preserve_fds = v;
                        break;
                }
                case 'g':
                        if (parse_gids (optarg, &o) < 0) {
                                moat_cli_error ("exec: --additional-gids \"%s\": expected a group id 0..4294967295 "
                                                "(or a comma-separated list)",
                                                optarg);
                                return 1;
                        }
                        break;
                case 'A':
                case 'L':
                case 'I':
                case 'G':
                        break;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        fprintf (stderr, "moat: exec: unknown option or missing value: %s\n", argv[optind - 1]);
                        return 1;
                }
        }
        if (optind >= argc) {
                fprintf (stderr, "moat: exec: expected a container ID (see moat exec --help)\n");
                return 1;
        }
        gids = o.gids;
        id = argv[optind++];
        o.args = argv + optind;
        if (o.process_file == NULL && optind >= argc) {
                fprintf (stderr, "moat: exec %s: expected a command (or --process FILE)\n", id);
                return 1;
        }
        if (moat_container_exec (&ctx, id, &o, &code, &err) < 0) {
                moat_error_wrap (&err, "exec %s", id);
                moat_error_print (&err, "moat");
                return 255;
        }
        return code;
}
