/* SPDX-License-Identifier: Apache-2.0 */
/* moat list: the containers under --root, like runc list (a table with
 * ID PID STATUS BUNDLE CREATED OWNER, -q for ids only, or --format json).
 * STATUS is the live status (stopped once the stand-in or VMM is gone). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_gen.h>

#include "cli.h"
#include "moat/log.h"
#include "moat/paths.h"
#include "moat/state.h"
#include "moat/util.h"
#include "moat/json_gen.h"

struct entry {
        struct moat_state *st;
        const char *status;
        char *owner;
};

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat list [--quiet|-q] [--format|-f table|json]\n\n"
                    "Lists the containers under the state root (--root, default " MOAT_DEFAULT_ROOT ").\n\n"
                    "  --quiet, -q           print the container IDs only\n"
                    "  --format, -f FORMAT   table (default) or json (an array of OCI state objects)\n");
}

static int
cmp_name (const void *a, const void *b)
{
        return strcmp (*(char *const *)a, *(char *const *)b);
}

static char *
owner_of (const char *root, const char *id)
{
        cleanup_free char *dir = moat_state_dir (root, id);
        struct stat st;
        struct passwd *pw;
        if (stat (dir, &st) < 0)
                return xstrdup ("");
        pw = getpwuid (st.st_uid);
        return pw ? xstrdup (pw->pw_name) : xasprintf_r ("#%u", (unsigned)st.st_uid);
}

static void
print_json (struct entry *e, size_t n)
{
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;

        yajl_gen_array_open (g);
        for (size_t i = 0; i < n; i++) {
                const struct moat_state *st = e[i].st;
                yajl_gen_map_open (g);
                moat_gen_kv (g, "ociVersion", "1.0.2");
                moat_gen_kv (g, "id", st->id);
                moat_gen_str (g, "pid");
                yajl_gen_integer (g, strcmp (e[i].status, "stopped") == 0 ? 0 : st->pid);
                moat_gen_kv (g, "status", e[i].status);
                moat_gen_kv (g, "bundle", st->bundle);
                moat_gen_kv (g, "rootfs", st->rootfs);
                moat_gen_kv (g, "created", st->created);
                if (st->n_annotations) {
                        moat_gen_str (g, "annotations");
                        yajl_gen_map_open (g);
                        for (size_t k = 0; k < st->n_annotations; k++)
                                moat_gen_kv (g, st->annotation_keys[k], st->annotation_values[k]);
                        yajl_gen_map_close (g);
                }
                moat_gen_kv (g, "owner", e[i].owner);
                yajl_gen_map_close (g);
        }
        yajl_gen_array_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        fwrite (buf, 1, len, stdout);
        fputc ('\n', stdout);
        yajl_gen_free (g);
}

/* runc's tabwriter: every column but the last is max(12, widest + 3) wide. */
static void
print_table (struct entry *e, size_t n)
{
        static const char *const head[] = {"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"};
        size_t rows = n + 1;
        char *(*cells)[6] = xzalloc (rows * sizeof *cells);
        size_t w[6];

        for (int c = 0; c < 6; c++)
                cells[0][c] = xstrdup (head[c]);
        for (size_t i = 0; i < n; i++) {
                const struct moat_state *st = e[i].st;
                cells[i + 1][0] = xstrdup (st->id);
                cells[i + 1][1] = xasprintf_r ("%d", strcmp (e[i].status, "stopped") == 0 ? 0 : (int)st->pid);
                cells[i + 1][2] = xstrdup (e[i].status);
                cells[i + 1][3] = xstrdup (st->bundle ? st->bundle : "");
                cells[i + 1][4] = xstrdup (st->created ? st->created : "");
                cells[i + 1][5] = xstrdup (e[i].owner);
        }
        for (int c = 0; c < 6; c++) {
                w[c] = 12;
                for (size_t r = 0; r < rows; r++)
                        if (strlen (cells[r][c]) + 3 > w[c])
                                w[c] = strlen (cells[r][c]) + 3;
        }
        for (size_t r = 0; r < rows; r++) {
                for (int c = 0; c < 5; c++)
                        printf ("%-*s", (int)w[c], cells[r][c]);
                printf ("%s\n", cells[r][5]);
                for (int c = 0; c < 6; c++)
                        free (cells[r][c]);
        }
        free (cells);
}

int
moat_cmd_list (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"quiet", no_argument, NULL, 'q'},
                {"format", required_argument, NULL, 'f'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *format = "table";
        bool quiet = false;
        DIR *d;
        struct dirent *de;
        char **names = NULL;
        size_t n_names = 0, n = 0;
        struct entry *e;
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+qf:h", opts, NULL)) != -1) {
                switch (c) {
                case 'q':
                        quiet = true;
                        break;
                case 'f':
                        format = optarg;
                        break;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        moat_cli_error ("list: unknown option or missing value: %s (see moat list --help)",
                                        argv[optind - 1]);
                        return 1;
                }
        }
        if (optind != argc) {
                moat_cli_error ("list: unexpected argument \"%s\" (see moat list --help)", argv[optind]);
                return 1;
        }
        if (strcmp (format, "table") != 0 && strcmp (format, "json") != 0) {
                moat_cli_error ("list: --format: expected table or json, got \"%s\"", format);
                return 1;
        }

        d = opendir (g->root);
        if (d == NULL && errno != ENOENT) {
                moat_cli_error ("list: open %s: %s", g->root, strerror (errno));
                return 1;
        }
        while (d && (de = readdir (d)) != NULL) {
                if (de->d_name[0] == '.')
                        continue;
                if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
                        continue;
                names = xrealloc (names, (n_names + 1) * sizeof *names);
                names[n_names++] = xstrdup (de->d_name);
        }
        if (d)
                closedir (d);
        if (n_names)
                qsort (names, n_names, sizeof *names, cmp_name);

        e = xzalloc ((n_names ? n_names : 1) * sizeof *e);
        for (size_t i = 0; i < n_names; i++) {
                cleanup_error moat_error_t err = NULL;
                struct moat_state *st = NULL;
                /* a directory without a readable state is being created or
                 * is not ours: skip it, as runc does */
                if (moat_state_load (g->root, names[i], &st, &err) < 0) {
                        moat_debug ("list: skip %s: %s", names[i], err->msg);
                        continue;
                }
                e[n].st = st;
                e[n].status = moat_state_live_status (st);
                e[n].owner = owner_of (g->root, names[i]);
                n++;
        }

        if (quiet) {
                for (size_t i = 0; i < n; i++)
                        printf ("%s\n", e[i].st->id);
        } else if (strcmp (format, "json") == 0)
                print_json (e, n);
        else
                print_table (e, n);

        for (size_t i = 0; i < n; i++) {
                moat_state_free (e[i].st);
                free (e[i].owner);
        }
        free (e);
        for (size_t i = 0; i < n_names; i++)
                free (names[i]);
        free (names);
        return fflush (stdout) == 0 ? 0 : 1;
}
