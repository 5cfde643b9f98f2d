/* SPDX-License-Identifier: Apache-2.0 */
/* moat events: container statistics in runc's event JSON, one object per
 * line: --stats prints once; otherwise one "stats" event every --interval
 * (default 5s) until the container stops or is deleted. The numbers come
 * from the container's cgroup inside the guest (StatsContainer). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat events [--stats] [--interval DURATION] ID\n\n"
                    "Prints statistics of container ID as runc's JSON events\n"
                    "({\"type\":\"stats\",\"id\":...,\"data\":{\"cpu\":...,\"memory\":...,\"pids\":...}}).\n\n"
                    "  --stats             print the statistics once and exit\n"
                    "  --interval D        time between events (default 5s; e.g. 500ms, 2s, 1m)\n");
}

static volatile sig_atomic_t stop;

static void
on_signal (int sig)
{
        stop = 1;
}

/* Prints one stats event; 1 when the container is gone (stop quietly). */
static int
emit (const struct moat_context *ctx, const char *id, moat_error_t *err)
{
        struct moat_stats s;
        cleanup_free char *json = NULL;

        if (moat_container_stats (ctx, id, &s, err) < 0) {
                struct moat_state *st = NULL;
                moat_error_t e2 = NULL;
                int gone = moat_state_load (ctx->root, id, &st, &e2) < 0 ||
                           strcmp (moat_state_live_status (st), "stopped") == 0;
                moat_state_free (st);
                moat_error_release (&e2);
                if (gone) {
                        moat_error_release (err);
                        return 1;
                }
                return -1;
        }
        json = moat_stats_event_json (id, &s);
        moat_stats_clear (&s);
        printf ("%s\n", json);
        if (fflush (stdout) != 0)
                return moat_make_error (err, errno, "write stdout");
        return 0;
}

int
moat_cmd_events (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"stats", no_argument, NULL, 's'},
                {"interval", required_argument, NULL, 'i'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        bool once = false;
        const char *interval = "5s", *id = NULL;
        int64_t ms;
        cleanup_error moat_error_t err = NULL;
        struct moat_context ctx = moat_cli_context (g);
        int c, rc = 1;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        once = true;
                        break;
                case 'i':
                        interval = optarg;
                        break;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        moat_cli_error ("events: unknown option or missing value: %s (see moat events --help)",
                                        argv[optind - 1]);
                        return 1;
                }
        }
        if (optind + 1 != argc) {
                moat_cli_error ("events: expected exactly one container ID (usage: moat events [--stats] ID)");
                return 1;
        }
        id = argv[optind];
        if (moat_parse_duration ("--interval", interval, &ms, &err) < 0)
                goto out;
        if (moat_container_expect_status (&ctx, id, "created running paused", "running", &err) < 0)
                goto out;

        signal (SIGPIPE, SIG_IGN);
        signal (SIGINT, on_signal);
        signal (SIGTERM, on_signal);
        for (;;) {
                int r = emit (&ctx, id, &err);
                if (r < 0)
                        goto out;
                if (r > 0 || once)
                        break;
                for (int64_t deadline = now_ms () + ms; !stop && now_ms () < deadline;) {
                        int64_t left = deadline - now_ms ();
                        struct timespec ts = {0, (left > 100 ? 100 : left) * 1000000L};
                        nanosleep (&ts, NULL);
                }
                if (stop)
                        break;
        }
        rc = 0;
out:
        if (err) {
                moat_error_wrap (&err, "events %s", id ? id : "");
                moat_error_print (&err, "moat");
        }
        return rc;
}
