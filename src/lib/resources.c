/* SPDX-License-Identifier: Apache-2.0 */
/* `moat update` flags -> OCI linux.resources JSON. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

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
