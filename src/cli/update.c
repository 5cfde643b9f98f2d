/* SPDX-License-Identifier: Apache-2.0 */
/* moat update: change a container's resource limits, applied by the agent
 * to the container's cgroup (v2) inside the guest. runc's flags and units.
 * No state lock: nothing is written on the host, and the agent serialises
 * the cgroup writes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/json_gen.h"
#include "moat/log.h"
#include "moat/oci.h"
#include "moat/resources.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat update [options] ID\n\n"
                    "Changes the resource limits of container ID inside its VM (cgroup v2).\n\n"
                    "  --resources, -r FILE    an OCI linux.resources JSON object from FILE, or - for\n"
                    "                          stdin; the other options are then ignored, as in runc\n"
                    "  --memory N              memory limit in bytes (units k, m, g accepted; -1: none)\n"
                    "  --memory-swap N         memory + swap limit (-1: unlimited swap)\n"
                    "  --memory-reservation N  memory soft limit (memory.low)\n"
                    "  --pids-limit N          maximum number of pids (-1: none, 0: unchanged)\n"
                    "  --cpu-quota N           CPU time in usecs per period (-1: none)\n"
                    "  --cpu-period N          CPU period in usecs\n"
                    "  --cpu-share N           relative CPU weight (also --cpu-shares)\n"
                    "  --cpuset-cpus LIST      CPUs of the guest to use (e.g. 0-1)\n"
                    "  --cpuset-mems LIST      memory nodes of the guest to use\n\n"
                    "Accepted and ignored with a warning (the guest has no such control):\n"
                    "--blkio-weight, --cpu-rt-period, --cpu-rt-runtime, --kernel-memory,\n"
                    "--kernel-memory-tcp. Refused (no Intel RDT in the guest): --l3-cache-schema,\n"
                    "--mem-bw-schema. Without any option, update changes nothing (as runc).\n");
}

static bool
update_flags_given (const struct moat_update_flags *f)
{
        return f->memory || f->memory_swap || f->memory_reservation || f->pids_limit || f->cpu_quota || f->cpu_period ||
               f->cpu_shares || f->cpuset_cpus || f->cpuset_mems;
}

/* runc reads a zero (or "") in these fields of an update as "leave it as
 * it is": Docker sends {"memory":{"limit":0,...},"cpu":{"quota":0,...}}
 * for `docker update --blkio-weight N`, and containerd and the CRI send
 * whole resource objects. The agent would apply them literally
 * (memory.max 0 kills the container), so they are dropped here. */
static bool
unchanged_field (const char *section, const char *key, yajl_val v)
{
        static const struct {
                const char *section, *key;
        } zero_means_unchanged[] = {
                {"memory", "limit"},        {"memory", "reservation"}, {"memory", "swap"},        {"memory", "kernel"},
                {"memory", "kernelTCP"},    {"cpu", "shares"},         {"cpu", "quota"},          {"cpu", "period"},
                {"cpu", "realtimeRuntime"}, {"cpu", "realtimePeriod"}, {"cpu", "cpus"},           {"cpu", "mems"},
                {"pids", "limit"},          {"blockIO", "weight"},     {"blockIO", "leafWeight"},
        };
        bool zero = YAJL_IS_NULL (v) || (YAJL_IS_STRING (v) && *YAJL_GET_STRING (v) == '\0') ||
                    (YAJL_IS_NUMBER (v) && strspn (YAJL_GET_NUMBER (v), "-0.eE+") == strlen (YAJL_GET_NUMBER (v)));

        if (!zero)
                return false;
        for (size_t i = 0; i < sizeof zero_means_unchanged / sizeof zero_means_unchanged[0]; i++)
                if (strcmp (section, zero_means_unchanged[i].section) == 0 &&
                    strcmp (key, zero_means_unchanged[i].key) == 0)
                        return true;
        return false;
}

/* Writes the value of top-level member `section`, leaving out the fields
 * unchanged_field() names when it is an object. */
static void
gen_section (yajl_gen g, yajl_val v, const char *section)
{
        if (!YAJL_IS_OBJECT (v)) {
                moat_gen_value (g, v);
                return;
        }
        yajl_gen_map_open (g);
        for (size_t i = 0; i < v->u.object.len; i++) {
                const char *k = v->u.object.keys[i];
                if (unchanged_field (section, k, v->u.object.values[i]))
                        continue;
                moat_gen_str (g, k);
                moat_gen_value (g, v->u.object.values[i]);
        }
        yajl_gen_map_close (g);
}

/* The resources JSON without the fields runc would leave unchanged, and
 * without "devices". */
static int
drop_unchanged (const char *json, char **out, moat_error_t *err)
{
        char ebuf[256] = "";
        yajl_val tree = yajl_tree_parse (json, ebuf, sizeof ebuf);
        yajl_gen g;
        const unsigned char *buf;
        size_t len;

        if (tree == NULL || !YAJL_IS_OBJECT (tree)) {
                yajl_tree_free (tree);
                return moat_make_error (err, 0, "resources: expected a JSON object%s%s", *ebuf ? ": " : "", ebuf);
        }
        g = yajl_gen_alloc (NULL);
        yajl_gen_map_open (g);
        for (size_t i = 0; i < tree->u.object.len; i++) {
                /* runc's update never changes the device rules (containerd
                 * and the CRI send the container's whole list back) */
                if (strcmp (tree->u.object.keys[i], "devices") == 0)
                        continue;
                moat_gen_str (g, tree->u.object.keys[i]);
                gen_section (g, tree->u.object.values[i], tree->u.object.keys[i]);
        }
        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        *out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        yajl_tree_free (tree);
        return 0;
}

enum {
        O_MEMORY = 256,
        O_SWAP,
        O_RESV,
        O_PIDS,
        O_QUOTA,
        O_PERIOD,
        O_SHARES,
        O_CPUS,
        O_MEMS,
        O_IGNORED,
        O_UNSUPPORTED,
};

int
moat_cmd_update (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"resources", required_argument, NULL, 'r'},
                {"memory", required_argument, NULL, O_MEMORY},
                {"memory-swap", required_argument, NULL, O_SWAP},
                {"memory-reservation", required_argument, NULL, O_RESV},
                {"pids-limit", required_argument, NULL, O_PIDS},
                {"cpu-quota", required_argument, NULL, O_QUOTA},
                {"cpu-period", required_argument, NULL, O_PERIOD},
                {"cpu-share", required_argument, NULL, O_SHARES},
                {"cpu-shares", required_argument, NULL, O_SHARES},
                {"cpuset-cpus", required_argument, NULL, O_CPUS},
                {"cpuset-mems", required_argument, NULL, O_MEMS},
                {"blkio-weight", required_argument, NULL, O_IGNORED},
                {"cpu-rt-period", required_argument, NULL, O_IGNORED},
                {"cpu-rt-runtime", required_argument, NULL, O_IGNORED},
                {"kernel-memory", required_argument, NULL, O_IGNORED},
                {"kernel-memory-tcp", required_argument, NULL, O_IGNORED},
                {"l3-cache-schema", required_argument, NULL, O_UNSUPPORTED},
                {"mem-bw-schema", required_argument, NULL, O_UNSUPPORTED},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct moat_update_flags f = {0};
        const char *resources = NULL, *id;
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;
        cleanup_free char *json = NULL, *sent = NULL;
        int c, idx = 0, rc = 1;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+r:h", opts, &idx)) != -1) {
                switch (c) {
                case 'r':
                        resources = optarg;
                        break;
                case O_MEMORY:
                        f.memory = optarg;
                        break;
                case O_SWAP:
                        f.memory_swap = optarg;
                        break;
                case O_RESV:
                        f.memory_reservation = optarg;
                        break;
                case O_PIDS:
                        f.pids_limit = optarg;
                        break;
                case O_QUOTA:
                        f.cpu_quota = optarg;
                        break;
                case O_PERIOD:
                        f.cpu_period = optarg;
                        break;
                case O_SHARES:
                        f.cpu_shares = optarg;
                        break;
                case O_CPUS:
                        f.cpuset_cpus = optarg;
                        break;
                case O_MEMS:
                        f.cpuset_mems = optarg;
                        break;
                case O_IGNORED:
                        /* runc ignores kernel memory with a warning, and the
                         * real-time knobs on cgroup v2. The guest's cgroup
                         * has no rt or io weight either: warn and go on, as
                         * for the same fields in --resources JSON (which
                         * is how containerd sends them). */
                        moat_warn ("update: --%s is ignored: the guest's cgroup has no such control", opts[idx].name);
                        break;
                case O_UNSUPPORTED:
                        moat_cli_error ("update: --%s: Intel RDT is not enabled in the guest", opts[idx].name);
                        return 1;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        moat_cli_error ("update: unknown option or missing value: %s (see moat update --help)",
                                        argv[optind - 1]);
                        return 1;
                }
        }
        if (optind + 1 != argc) {
                moat_cli_error ("update: expected exactly one container ID (usage: moat update [options] ID)");
                return 1;
        }
        id = argv[optind];

        if (resources) {
                struct oci_resources *res = NULL;
                cleanup_free char *what = xasprintf_r ("--resources %s", resources);
                if (strcmp (resources, "-") == 0) {
                        size_t cap = 4096, len = 0;
                        ssize_t r;
                        json = xmalloc (cap);
                        while ((r = read (STDIN_FILENO, json + len, cap - len - 1)) > 0) {
                                len += r;
                                if (cap - len < 2)
                                        json = xrealloc (json, cap *= 2);
                        }
                        if (r < 0) {
                                moat_make_error (&err, errno, "read stdin");
                                goto fail;
                        }
                        json[len] = '\0';
                } else if (read_file (resources, &json, NULL, &err) < 0)
                        goto fail;
                if (oci_resources_parse (json, what, &res, &err) < 0)
                        goto fail;
                oci_resources_free (res);
        } else if (!update_flags_given (&f)) {
                /* runc: nothing to change is not an error, but the
                 * container must still be there and running */
                if (moat_container_update (&ctx, id, NULL, &err) < 0)
                        goto fail;
                moat_debug ("update %s: no limit given, nothing changed", id);
                rc = 0;
                goto fail;
        } else if (moat_update_resources_json (&f, &json, &err) < 0)
                goto fail;

        if (drop_unchanged (json, &sent, &err) < 0)
                goto fail;
        moat_debug ("update %s: %s", id, sent);
        if (moat_container_update (&ctx, id, sent, &err) < 0)
                goto fail;
        rc = 0;
fail:
        if (err) {
                moat_error_wrap (&err, "update %s", id ? id : "");
                moat_error_print (&err, "moat");
        }
        return rc;
}
