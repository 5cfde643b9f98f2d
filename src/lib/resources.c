/* SPDX-License-Identifier: Apache-2.0 */
/* `moat update` flags -> OCI linux.resources JSON. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "moat/resources.h"
#include "moat/util.h"
#include "moat/json_gen.h"

int
moat_parse_bytes (const char *flag, const char *s, int64_t *out, moat_error_t *err)
{
        const char *p = s;
        double num;
        char *end;
        int shift = 0;

        if (s == NULL || *s == '\0')
                return moat_make_error (err, 0, "%s: empty size", flag);
        if (strcmp (s, "-1") == 0) {
                *out = -1;
                return 0;
        }
        if (!isdigit ((unsigned char)*p))
                goto bad;
        errno = 0;
        num = strtod (p, &end);
        if (errno || end == p)
                goto bad;
        p = end;
        if (*p == ' ')
                p++;
        switch (tolower ((unsigned char)*p)) {
        case 'k':
                shift = 10;
                break;
        case 'm':
                shift = 20;
                break;
        case 'g':
                shift = 30;
                break;
        case 't':
                shift = 40;
                break;
        case 'p':
                shift = 50;
                break;
        }
        if (shift) {
                p++;
                if (tolower ((unsigned char)*p) == 'i')
                        p++;
        }
        if (tolower ((unsigned char)*p) == 'b')
                p++;
        if (*p != '\0')
                goto bad;
        num *= (double)((uint64_t)1 << shift);
        if (num >= 9.2e18)
                return moat_make_error (err, 0, "%s: size \"%s\" is too large", flag, s);
        *out = (int64_t)num;
        return 0;
bad:
        return moat_make_error (err, 0,
                                "%s: invalid size \"%s\" (expected bytes, optionally with a unit k, m, g, t, p; or -1)",
                                flag, s);
}

static int
parse_i64 (const char *flag, const char *s, int64_t *out, moat_error_t *err)
{
        char *end;
        long long v;
        errno = 0;
        v = strtoll (s, &end, 10);
        if (*s == '\0' || *end != '\0' || errno)
                return moat_make_error (err, 0, "%s: invalid number \"%s\"", flag, s);
        *out = v;
        return 0;
}

static int
parse_u64 (const char *flag, const char *s, uint64_t *out, moat_error_t *err)
{
        char *end;
        unsigned long long v;
        errno = 0;
        if (!isdigit ((unsigned char)*s))
                return moat_make_error (err, 0, "%s: invalid number \"%s\" (expected a non-negative integer)", flag, s);
        v = strtoull (s, &end, 10);
        if (*end != '\0' || errno)
                return moat_make_error (err, 0, "%s: invalid number \"%s\"", flag, s);
        *out = v;
        return 0;
}

/* cpuset lists: "0-3,5" */
static int
check_cpuset (const char *flag, const char *s, moat_error_t *err)
{
        const char *p = s;
        if (*p == '\0')
                goto bad;
        while (*p) {
                if (!isdigit ((unsigned char)*p))
                        goto bad;
                while (isdigit ((unsigned char)*p))
                        p++;
                if (*p == '-') {
                        p++;
                        if (!isdigit ((unsigned char)*p))
                                goto bad;
                        while (isdigit ((unsigned char)*p))
                                p++;
                }
                if (*p == ',') {
                        p++;
                        if (*p == '\0')
                                goto bad;
                } else if (*p)
                        goto bad;
        }
        return 0;
bad:
        return moat_make_error (err, 0, "%s: invalid list \"%s\" (expected e.g. 0-2,4)", flag, s);
}

int
moat_update_resources_json (const struct moat_update_flags *f, char **out, moat_error_t *err)
{
        int64_t mem = 0, swap = 0, resv = 0, pids = 0, quota = 0;
        uint64_t period = 0, shares = 0;
        bool any_mem, any_cpu, any = false;
        yajl_gen g;
        const unsigned char *buf;
        size_t len;

        if (f->memory && moat_parse_bytes ("--memory", f->memory, &mem, err) < 0)
                return -1;
        if (f->memory_swap && moat_parse_bytes ("--memory-swap", f->memory_swap, &swap, err) < 0)
                return -1;
        if (f->memory_reservation && moat_parse_bytes ("--memory-reservation", f->memory_reservation, &resv, err) < 0)
                return -1;
        if (f->pids_limit && parse_i64 ("--pids-limit", f->pids_limit, &pids, err) < 0)
                return -1;
        if (f->cpu_quota && parse_i64 ("--cpu-quota", f->cpu_quota, &quota, err) < 0)
                return -1;
        if (f->cpu_period && parse_u64 ("--cpu-period", f->cpu_period, &period, err) < 0)
                return -1;
        if (f->cpu_shares && parse_u64 ("--cpu-share", f->cpu_shares, &shares, err) < 0)
                return -1;
        if (f->cpuset_cpus && check_cpuset ("--cpuset-cpus", f->cpuset_cpus, err) < 0)
                return -1;
        if (f->cpuset_mems && check_cpuset ("--cpuset-mems", f->cpuset_mems, err) < 0)
                return -1;
        if (f->memory && f->memory_swap && mem > 0 && swap >= 0 && swap < mem)
                return moat_make_error (err, 0,
                                        "--memory-swap (%" PRId64 ") must be at least --memory (%" PRId64
                                        "): it is memory plus swap",
                                        swap, mem);
        if (f->cpu_period && period == 0)
                return moat_make_error (err, 0, "--cpu-period: must be greater than 0");

        any_mem = f->memory || f->memory_swap || f->memory_reservation;
        any_cpu = f->cpu_quota || f->cpu_period || f->cpu_shares || f->cpuset_cpus || f->cpuset_mems;
        g = yajl_gen_alloc (NULL);
        yajl_gen_map_open (g);
        if (any_mem) {
                moat_gen_str (g, "memory");
                yajl_gen_map_open (g);
                if (f->memory) {
                        moat_gen_str (g, "limit");
                        yajl_gen_integer (g, mem);
                }
                if (f->memory_reservation) {
                        moat_gen_str (g, "reservation");
                        yajl_gen_integer (g, resv);
                }
                if (f->memory_swap) {
                        moat_gen_str (g, "swap");
                        yajl_gen_integer (g, swap);
                }
                yajl_gen_map_close (g);
                any = true;
        }
        if (any_cpu) {
                moat_gen_str (g, "cpu");
                yajl_gen_map_open (g);
                if (f->cpu_shares) {
                        moat_gen_str (g, "shares");
                        yajl_gen_integer (g, (long long)shares);
                }
                if (f->cpu_quota) {
                        moat_gen_str (g, "quota");
                        yajl_gen_integer (g, quota);
                }
                if (f->cpu_period) {
                        moat_gen_str (g, "period");
                        yajl_gen_integer (g, (long long)period);
                }
                if (f->cpuset_cpus) {
                        moat_gen_str (g, "cpus");
                        moat_gen_str (g, f->cpuset_cpus);
                }
                if (f->cpuset_mems) {
                        moat_gen_str (g, "mems");
                        moat_gen_str (g, f->cpuset_mems);
                }
                yajl_gen_map_close (g);
                any = true;
        }
        /* runc: --pids-limit 0 means "leave it" */
        if (f->pids_limit && pids != 0) {
                moat_gen_str (g, "pids");
                yajl_gen_map_open (g);
                moat_gen_str (g, "limit");
                yajl_gen_integer (g, pids);
                yajl_gen_map_close (g);
                any = true;
        }
        yajl_gen_map_close (g);
        if (!any && !f->pids_limit) {
                yajl_gen_free (g);
                return moat_make_error (err, 0, "nothing to update (give --resources or a limit flag)");
        }
        yajl_gen_get_buf (g, &buf, &len);
        *out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        return 0;
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

int
moat_resources_drop_unchanged (const char *json, char **out, moat_error_t *err)
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
