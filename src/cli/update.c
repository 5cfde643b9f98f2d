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

#include "cli.h"
#include "moat/container.h"
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
        cleanup_free char *json = NULL;
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

        if (moat_container_update (&ctx, id, json, &err) < 0)
                goto fail;
        rc = 0;
fail:
        if (err) {
                moat_error_wrap (&err, "update %s", id ? id : "");
                moat_error_print (&err, "moat");
        }
        return rc;
}
