/* SPDX-License-Identifier: Apache-2.0 */
/* OCI runtime-spec config.json -> structs, with yajl_tree.
 *
 * Conventions: a JSON null counts as absent (as Go's encoding/json treats it
 * for the pointer/slice/map fields of runtime-spec); when a key appears twice
 * the last one wins (also like Go). Unknown keys are ignored. Every error
 * names the document and the field path: "config.json: linux.namespaces[2].type:
 * unknown namespace type \"foo\"". Integers are checked against their raw text
 * (yajl keeps it), so 64-bit unsigned values and fractions are handled
 * exactly. The structs own copies of every string: they do not point into the
 * tree. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "moat/oci.h"
#include "moat/util.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

const char *const oci_hook_names[OCI_HOOK_KINDS] = {
        [OCI_HOOK_PRESTART] = "prestart",
        [OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
        [OCI_HOOK_CREATE_CONTAINER] = "createContainer",
        [OCI_HOOK_START_CONTAINER] = "startContainer",
        [OCI_HOOK_POSTSTART] = "poststart",
        [OCI_HOOK_POSTSTOP] = "poststop",
};

/* ------------------------------------------------------------------ */
/* parse context and errors                                             */

struct pctx {
        const char *what;
        moat_error_t *err;
};

static int __attribute__ ((format (printf, 4, 5)))
perr (struct pctx *C, const char *prefix, const char *key, const char *fmt, ...)
{
        cleanup_free char *msg = NULL;
        va_list ap;
        va_start (ap, fmt);
        if (vasprintf (&msg, fmt, ap) < 0)
                msg = NULL;
        va_end (ap);
        return moat_make_error (C->err, 0, "%s: %s%s: %s", C->what, prefix, key, msg ? msg : "invalid");
}

/* "prefix" + "key[i]." as a new prefix */
static char *
elem_prefix (const char *prefix, const char *key, size_t i)
{
        return xasprintf_r ("%s%s[%zu].", prefix, key, i);
}

static char *
obj_prefix (const char *prefix, const char *key)
{
        return xasprintf_r ("%s%s.", prefix, key);
}

/* The value for key in obj (last occurrence), NULL if absent or null. */
static yajl_val
get (yajl_val obj, const char *key)
{
        if (!YAJL_IS_OBJECT (obj))
                return NULL;
        for (size_t i = obj->u.object.len; i > 0; i--) {
                if (strcmp (obj->u.object.keys[i - 1], key) == 0) {
                        yajl_val v = obj->u.object.values[i - 1];
                        return YAJL_IS_NULL (v) ? NULL : v;
                }
        }
        return NULL;
}

static int
get_obj (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, yajl_val *out)
{
        yajl_val v = get (obj, key);
        *out = NULL;
        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!YAJL_IS_OBJECT (v))
                return perr (C, prefix, key, "expected an object");
        *out = v;
        return 0;
}

static int
get_arr (struct pctx *C, yajl_val obj, const char *prefix, const char *key, const char *what_elems, yajl_val *out)
{
        yajl_val v = get (obj, key);
        *out = NULL;
        if (v == NULL)
                return 0;
        if (!YAJL_IS_ARRAY (v))
                return perr (C, prefix, key, "expected an array of %s", what_elems);
        *out = v;
        return 0;
}

static int
get_str (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, char **out)
{
        yajl_val v = get (obj, key);
        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!YAJL_IS_STRING (v))
                return perr (C, prefix, key, "expected a string");
        free (*out);
        *out = xstrdup (v->u.string);
        return 0;
}

static int
get_abs_path (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, char **out)
{
        if (get_str (C, obj, prefix, key, required, out) < 0)
                return -1;
        if (*out != NULL && (*out)[0] != '/')
                return perr (C, prefix, key, "must be an absolute path, got \"%s\"", *out);
        return 0;
}

static int
get_bool (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, bool *out, bool *has)
{
        yajl_val v = get (obj, key);
        if (has)
                *has = false;
        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!YAJL_IS_TRUE (v) && !YAJL_IS_FALSE (v))
                return perr (C, prefix, key, "expected a boolean");
        *out = YAJL_IS_TRUE (v);
        if (has)
                *has = true;
        return 0;
}

/* Integer from the number's raw text: 1 ok, 0 not an integer or out of range. */
static int
num_u64 (yajl_val v, uint64_t max, uint64_t *out)
{
        const char *r;
        char *end;
        unsigned long long n;

        if (!YAJL_IS_NUMBER (v) || v->u.number.r == NULL)
                return 0;
        r = v->u.number.r;
        if (!isdigit ((unsigned char)r[0]))
                return 0;
        errno = 0;
        n = strtoull (r, &end, 10);
        if (errno != 0 || *end != '\0' || n > max)
                return 0;
        *out = n;
        return 1;
}

static int
num_i64 (yajl_val v, int64_t min, int64_t max, int64_t *out)
{
        const char *r;
        char *end;
        long long n;

        if (!YAJL_IS_NUMBER (v) || v->u.number.r == NULL)
                return 0;
        r = v->u.number.r;
        if (!isdigit ((unsigned char)r[r[0] == '-' ? 1 : 0]))
                return 0;
        errno = 0;
        n = strtoll (r, &end, 10);
        if (errno != 0 || *end != '\0' || n < min || n > max)
                return 0;
        *out = n;
        return 1;
}

static int
get_u64 (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, uint64_t *out, bool *has)
{
        yajl_val v = get (obj, key);
        if (has)
                *has = false;
        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!num_u64 (v, UINT64_MAX, out))
                return perr (C, prefix, key, "expected an unsigned 64-bit integer");
        if (has)
                *has = true;
        return 0;
}

static int
get_u32 (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, uint32_t *out, bool *has)
{
        yajl_val v = get (obj, key);
        uint64_t n;
        if (has)
                *has = false;
        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!num_u64 (v, UINT32_MAX, &n))
                return perr (C, prefix, key, "expected an unsigned 32-bit integer");
        *out = n;
        if (has)
                *has = true;
        return 0;
}

static int
get_i64 (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, int64_t *out, bool *has)
{
        yajl_val v = get (obj, key);
        if (has)
                *has = false;
        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!num_i64 (v, INT64_MIN, INT64_MAX, out))
                return perr (C, prefix, key, "expected a 64-bit integer");
        if (has)
                *has = true;
        return 0;
}

static int
get_int (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, int *out, bool *has)
{
        yajl_val v = get (obj, key);
        int64_t n;
        if (has)
                *has = false;
        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!num_i64 (v, INT32_MIN, INT32_MAX, &n))
                return perr (C, prefix, key, "expected a 32-bit integer");
        *out = n;
        if (has)
                *has = true;
        return 0;
}

/* NULL-terminated copy of an array of strings; absent: *out stays NULL. */
static int
get_strv (struct pctx *C, yajl_val obj, const char *prefix, const char *key, bool required, char ***out)
{
        yajl_val v = get (obj, key);
        char **r;

        if (v == NULL)
                return required ? perr (C, prefix, key, "missing") : 0;
        if (!YAJL_IS_ARRAY (v))
                return perr (C, prefix, key, "expected an array of strings");
        for (size_t i = 0; i < v->u.array.len; i++)
                if (!YAJL_IS_STRING (v->u.array.values[i]))
                        return perr (C, prefix, key, "expected an array of strings (element %zu is not a string)", i);
        r = xzalloc ((v->u.array.len + 1) * sizeof (char *));
        for (size_t i = 0; i < v->u.array.len; i++)
                r[i] = xstrdup (v->u.array.values[i]->u.string);
        strv_free (*out);
        *out = r;
        return 0;
}

/* An object whose values are all strings (annotations, sysctl, unified). */
static int
get_strmap (struct pctx *C, yajl_val obj, const char *prefix, const char *key, char ***keys, char ***vals, size_t *n)
{
        yajl_val v;
        size_t len;

        if (get_obj (C, obj, prefix, key, false, &v) < 0)
                return -1;
        if (v == NULL)
                return 0;
        len = v->u.object.len;
        for (size_t i = 0; i < len; i++) {
                if (!YAJL_IS_STRING (v->u.object.values[i])) {
                        cleanup_free char *p = obj_prefix (prefix, key);
                        return perr (C, p, v->u.object.keys[i], "expected a string");
                }
        }
        *keys = xzalloc ((len + 1) * sizeof (char *));
        *vals = xzalloc ((len + 1) * sizeof (char *));
        *n = 0;
        for (size_t i = 0; i < len; i++) {
                /* a duplicated key: the last value wins, in place of the first */
                size_t k;
                for (k = 0; k < *n; k++)
                        if (strcmp ((*keys)[k], v->u.object.keys[i]) == 0)
                                break;
                if (k < *n) {
                        free ((*vals)[k]);
                        (*vals)[k] = xstrdup (v->u.object.values[i]->u.string);
                        continue;
                }
                (*keys)[*n] = xstrdup (v->u.object.keys[i]);
                (*vals)[*n] = xstrdup (v->u.object.values[i]->u.string);
                (*n)++;
        }
        return 0;
}

/* Checks that element i of array arr is an object. */
static int
elem_obj (struct pctx *C, yajl_val arr, size_t i, const char *prefix, const char *key, yajl_val *out)
{
        yajl_val v = arr->u.array.values[i];
        if (!YAJL_IS_OBJECT (v)) {
                cleanup_free char *k = xasprintf_r ("%s[%zu]", key, i);
                return perr (C, prefix, k, "expected an object");
        }
        *out = v;
        return 0;
}

static bool
in_list (const char *s, const char *const *list)
{
        for (; *list; list++)
                if (strcmp (s, *list) == 0)
                        return true;
        return false;
}

/* ------------------------------------------------------------------ */
/* process                                                              */

static const struct {
        const char *name;
        int resource;
} rlimit_names[] = {
        {"RLIMIT_AS", RLIMIT_AS},
        {"RLIMIT_CORE", RLIMIT_CORE},
        {"RLIMIT_CPU", RLIMIT_CPU},
        {"RLIMIT_DATA", RLIMIT_DATA},
        {"RLIMIT_FSIZE", RLIMIT_FSIZE},
        {"RLIMIT_LOCKS", RLIMIT_LOCKS},
        {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
        {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
        {"RLIMIT_NICE", RLIMIT_NICE},
        {"RLIMIT_NOFILE", RLIMIT_NOFILE},
        {"RLIMIT_NPROC", RLIMIT_NPROC},
        {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
        {"RLIMIT_RTTIME", RLIMIT_RTTIME},
        {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_STACK", RLIMIT_STACK},
};

static void
user_free (struct oci_user *u)
{
        free (u->additional_gids);
        free (u->username);
}

void
oci_process_free (struct oci_process *p)
{
        if (p == NULL)
                return;
        user_free (&p->user);
        strv_free (p->args);
        strv_free (p->env);
        free (p->cwd);
        if (p->caps) {
                strv_free (p->caps->bounding);
                strv_free (p->caps->effective);
                strv_free (p->caps->inheritable);
                strv_free (p->caps->permitted);
                strv_free (p->caps->ambient);
                free (p->caps);
        }
        for (size_t i = 0; i < p->n_rlimits; i++)
                free (p->rlimits[i].type);
        free (p->rlimits);
        free (p->apparmor_profile);
        free (p->selinux_label);
        free (p);
}

static int
parse_user (struct pctx *C, yajl_val v, const char *prefix, struct oci_user *u)
{
        yajl_val gids;

        if (get_u32 (C, v, prefix, "uid", false, &u->uid, NULL) < 0 ||
            get_u32 (C, v, prefix, "gid", false, &u->gid, NULL) < 0 ||
            get_u32 (C, v, prefix, "umask", false, &u->umask, &u->has_umask) < 0 ||
            get_str (C, v, prefix, "username", false, &u->username) < 0 ||
            get_arr (C, v, prefix, "additionalGids", "unsigned 32-bit integers", &gids) < 0)
                return -1;
        if (gids) {
                u->additional_gids = xzalloc ((gids->u.array.len + 1) * sizeof (uint32_t));
                for (size_t i = 0; i < gids->u.array.len; i++) {
                        uint64_t n;
                        if (!num_u64 (gids->u.array.values[i], UINT32_MAX, &n)) {
                                cleanup_free char *k = xasprintf_r ("additionalGids[%zu]", i);
                                return perr (C, prefix, k, "expected an unsigned 32-bit integer");
                        }
                        u->additional_gids[i] = n;
                        u->n_additional_gids = i + 1;
                }
        }
        return 0;
}

static int
parse_process (struct pctx *C, yajl_val v, const char *prefix, struct oci_process *p)
{
        yajl_val sub, arr;

        if (get_bool (C, v, prefix, "terminal", false, &p->terminal, NULL) < 0)
                return -1;
        if (get_obj (C, v, prefix, "consoleSize", false, &sub) < 0)
                return -1;
        if (sub) {
                cleanup_free char *sp = obj_prefix (prefix, "consoleSize");
                if (get_u32 (C, sub, sp, "height", true, &p->console_height, NULL) < 0 ||
                    get_u32 (C, sub, sp, "width", true, &p->console_width, NULL) < 0)
                        return -1;
                p->has_console_size = true;
        }
        if (get_obj (C, v, prefix, "user", false, &sub) < 0)
                return -1;
        if (sub) {
                cleanup_free char *sp = obj_prefix (prefix, "user");
                if (parse_user (C, sub, sp, &p->user) < 0)
                        return -1;
        }
        if (get_strv (C, v, prefix, "args", true, &p->args) < 0)
                return -1;
        if (p->args[0] == NULL)
                return perr (C, prefix, "args", "must not be empty");
        if (get_strv (C, v, prefix, "env", false, &p->env) < 0)
                return -1;
        if (get_abs_path (C, v, prefix, "cwd", true, &p->cwd) < 0)
                return -1;
        if (get_obj (C, v, prefix, "capabilities", false, &sub) < 0)
                return -1;
        if (sub) {
                cleanup_free char *sp = obj_prefix (prefix, "capabilities");
                p->caps = xzalloc (sizeof *p->caps);
                if (get_strv (C, sub, sp, "bounding", false, &p->caps->bounding) < 0 ||
                    get_strv (C, sub, sp, "effective", false, &p->caps->effective) < 0 ||
                    get_strv (C, sub, sp, "inheritable", false, &p->caps->inheritable) < 0 ||
                    get_strv (C, sub, sp, "permitted", false, &p->caps->permitted) < 0 ||
                    get_strv (C, sub, sp, "ambient", false, &p->caps->ambient) < 0)
                        return -1;
        }
        if (get_arr (C, v, prefix, "rlimits", "objects", &arr) < 0)
                return -1;
        if (arr) {
                p->rlimits = xzalloc ((arr->u.array.len + 1) * sizeof (*p->rlimits));
                p->n_rlimits = arr->u.array.len;
                for (size_t i = 0; i < arr->u.array.len; i++) {
                        struct oci_rlimit *rl = &p->rlimits[i];
                        cleanup_free char *ep = elem_prefix (prefix, "rlimits", i);
                        yajl_val e;
                        size_t k;
                        if (elem_obj (C, arr, i, prefix, "rlimits", &e) < 0 ||
                            get_str (C, e, ep, "type", true, &rl->type) < 0)
                                return -1;
                        for (k = 0; k < ARRAY_SIZE (rlimit_names); k++)
                                if (strcmp (rlimit_names[k].name, rl->type) == 0)
                                        break;
                        if (k == ARRAY_SIZE (rlimit_names))
                                return perr (C, ep, "type", "unknown rlimit type \"%s\"", rl->type);
                        rl->resource = rlimit_names[k].resource;
                        for (size_t j = 0; j < i; j++)
                                if (p->rlimits[j].resource == rl->resource)
                                        return perr (C, ep, "type", "duplicate rlimit type \"%s\"", rl->type);
                        if (get_u64 (C, e, ep, "soft", true, &rl->soft, NULL) < 0 ||
                            get_u64 (C, e, ep, "hard", true, &rl->hard, NULL) < 0)
                                return -1;
                        if (rl->soft > rl->hard)
                                return perr (C, ep, "soft", "greater than hard (%" PRIu64 " > %" PRIu64 ")", rl->soft,
                                             rl->hard);
                }
        }
        if (get_bool (C, v, prefix, "noNewPrivileges", false, &p->no_new_privileges, NULL) < 0 ||
            get_int (C, v, prefix, "oomScoreAdj", false, &p->oom_score_adj, &p->has_oom_score_adj) < 0 ||
            get_str (C, v, prefix, "apparmorProfile", false, &p->apparmor_profile) < 0 ||
            get_str (C, v, prefix, "selinuxLabel", false, &p->selinux_label) < 0)
                return -1;
        if (p->has_oom_score_adj && (p->oom_score_adj < -1000 || p->oom_score_adj > 1000))
                return perr (C, prefix, "oomScoreAdj", "must be between -1000 and 1000, got %d", p->oom_score_adj);
        return 0;
}

int
oci_process_parse_tree (yajl_val v, const char *what, struct oci_process **out, moat_error_t *err)
{
        struct pctx C = {what, err};
        struct oci_process *p;

        *out = NULL;
        if (!YAJL_IS_OBJECT (v))
                return moat_make_error (err, 0, "%s: expected a JSON object", what);
        p = xzalloc (sizeof *p);
        if (parse_process (&C, v, "", p) < 0) {
                oci_process_free (p);
                return -1;
        }
        *out = p;
        return 0;
}

static yajl_val
parse_json (const char *json, const char *what, moat_error_t *err)
{
        char ebuf[1024];
        yajl_val v;

        ebuf[0] = '\0';
        v = yajl_tree_parse (json, ebuf, sizeof ebuf);
        if (v == NULL) {
                char *nl = strchr (ebuf, '\n');
                const char *m = ebuf;
                if (nl)
                        *nl = '\0';
                if (strncmp (m, "parse error: ", 13) == 0)
                        m += 13;
                moat_make_error (err, 0, "%s: parse error: %s", what, m[0] ? m : "invalid JSON");
                return NULL;
        }
        if (!YAJL_IS_OBJECT (v)) {
                yajl_tree_free (v);
                moat_make_error (err, 0, "%s: expected a JSON object", what);
                return NULL;
        }
        return v;
}

int
oci_process_parse (const char *json, const char *what, struct oci_process **out, moat_error_t *err)
{
        yajl_val v = parse_json (json, what, err);
        int ret;

        *out = NULL;
        if (v == NULL)
                return -1;
        ret = oci_process_parse_tree (v, what, out, err);
        yajl_tree_free (v);
        return ret;
}

/* ------------------------------------------------------------------ */
/* resources                                                            */

void
oci_resources_free (struct oci_resources *r)
{
        if (r == NULL)
                return;
        free (r->cpu_cpus);
        free (r->cpu_mems);
        strv_free (r->unified_keys);
        strv_free (r->unified_values);
        for (size_t i = 0; i < r->n_devices; i++)
                free (r->devices[i].access);
        free (r->devices);
        free (r);
}

static int
parse_resources (struct pctx *C, yajl_val v, const char *prefix, struct oci_resources *r)
{
        yajl_val sub, arr;

        if (get_obj (C, v, prefix, "memory", false, &sub) < 0)
                return -1;
        if (sub) {
                cleanup_free char *sp = obj_prefix (prefix, "memory");
                if (get_i64 (C, sub, sp, "limit", false, &r->memory_limit, &r->has_memory_limit) < 0 ||
                    get_i64 (C, sub, sp, "reservation", false, &r->memory_reservation, &r->has_memory_reservation) <
                            0 ||
                    get_i64 (C, sub, sp, "swap", false, &r->memory_swap, &r->has_memory_swap) < 0 ||
                    get_u64 (C, sub, sp, "swappiness", false, &r->memory_swappiness, &r->has_memory_swappiness) < 0)
                        return -1;
                if (r->has_memory_swappiness && r->memory_swappiness > 100)
                        return perr (C, sp, "swappiness", "must be between 0 and 100, got %" PRIu64,
                                     r->memory_swappiness);
        }
        if (get_obj (C, v, prefix, "cpu", false, &sub) < 0)
                return -1;
        if (sub) {
                cleanup_free char *sp = obj_prefix (prefix, "cpu");
                if (get_u64 (C, sub, sp, "shares", false, &r->cpu_shares, &r->has_cpu_shares) < 0 ||
                    get_i64 (C, sub, sp, "quota", false, &r->cpu_quota, &r->has_cpu_quota) < 0 ||
                    get_u64 (C, sub, sp, "period", false, &r->cpu_period, &r->has_cpu_period) < 0 ||
                    get_str (C, sub, sp, "cpus", false, &r->cpu_cpus) < 0 ||
                    get_str (C, sub, sp, "mems", false, &r->cpu_mems) < 0)
                        return -1;
        }
        if (get_obj (C, v, prefix, "pids", false, &sub) < 0)
                return -1;
        if (sub) {
                cleanup_free char *sp = obj_prefix (prefix, "pids");
                if (get_i64 (C, sub, sp, "limit", false, &r->pids_limit, &r->has_pids_limit) < 0)
                        return -1;
        }
        if (get_strmap (C, v, prefix, "unified", &r->unified_keys, &r->unified_values, &r->n_unified) < 0)
                return -1;
        if (get_arr (C, v, prefix, "devices", "objects", &arr) < 0)
                return -1;
        if (arr) {
                r->devices = xzalloc ((arr->u.array.len + 1) * sizeof (*r->devices));
                r->n_devices = arr->u.array.len;
                for (size_t i = 0; i < arr->u.array.len; i++) {
                        struct oci_device_rule *d = &r->devices[i];
                        cleanup_free char *ep = elem_prefix (prefix, "devices", i);
                        cleanup_free char *type = NULL;
                        bool has;
                        yajl_val e;

                        d->major = d->minor = -1;
                        if (elem_obj (C, arr, i, prefix, "devices", &e) < 0 ||
                            get_bool (C, e, ep, "allow", true, &d->allow, NULL) < 0 ||
                            get_str (C, e, ep, "type", false, &type) < 0 ||
                            get_i64 (C, e, ep, "major", false, &d->major, &has) < 0 ||
                            get_i64 (C, e, ep, "minor", false, &d->minor, &has) < 0 ||
                            get_str (C, e, ep, "access", false, &d->access) < 0)
                                return -1;
                        if (type != NULL) {
                                if (strcmp (type, "a") != 0 && strcmp (type, "b") != 0 && strcmp (type, "c") != 0)
                                        return perr (C, ep, "type", "unknown device type \"%s\" (expected a, b or c)",
                                                     type);
                                d->type = type[0];
                        }
                        if (d->access != NULL) {
                                if (d->access[strspn (d->access, "rwm")] != '\0')
                                        return perr (C, ep, "access", "invalid access \"%s\" (expected letters of rwm)",
                                                     d->access);
                        }
                }
        }
        return 0;
}

int
oci_resources_parse (const char *json, const char *what, struct oci_resources **out, moat_error_t *err)
{
        struct pctx C = {what, err};
        yajl_val v = parse_json (json, what, err);
        struct oci_resources *r;

        *out = NULL;
        if (v == NULL)
                return -1;
        r = xzalloc (sizeof *r);
        if (parse_resources (&C, v, "", r) < 0) {
                oci_resources_free (r);
                yajl_tree_free (v);
                return -1;
        }
        yajl_tree_free (v);
        *out = r;
        return 0;
}

/* ------------------------------------------------------------------ */
/* seccomp                                                              */

static const char *const seccomp_actions[] = {
        "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",   "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",        "SCMP_ACT_LOG",         "SCMP_ACT_NOTIFY", NULL,
};
static const char *const seccomp_ops[] = {
        "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",        "SCMP_CMP_EQ",
        "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", NULL,
};

static void
seccomp_free (struct oci_seccomp *s)
{
        if (s == NULL)
                return;
        free (s->default_action);
        strv_free (s->architectures);
        strv_free (s->flags);
        free (s->listener_path);
        for (size_t i = 0; i < s->n_syscalls; i++) {
                struct oci_seccomp_syscall *sc = &s->syscalls[i];
                strv_free (sc->names);
                free (sc->action);
                for (size_t k = 0; k < sc->n_args; k++)
                        free (sc->args[k].op);
                free (sc->args);
        }
        free (s->syscalls);
        free (s);
}

static int
parse_seccomp (struct pctx *C, yajl_val v, const char *prefix, struct oci_seccomp *s)
{
        yajl_val arr;

        if (get_str (C, v, prefix, "defaultAction", true, &s->default_action) < 0)
                return -1;
        if (!in_list (s->default_action, seccomp_actions))
                return perr (C, prefix, "defaultAction", "unknown seccomp action \"%s\"", s->default_action);
        if (get_u32 (C, v, prefix, "defaultErrnoRet", false, &s->default_errno_ret, &s->has_default_errno_ret) < 0 ||
            get_strv (C, v, prefix, "architectures", false, &s->architectures) < 0 ||
            get_strv (C, v, prefix, "flags", false, &s->flags) < 0 ||
            get_str (C, v, prefix, "listenerPath", false, &s->listener_path) < 0 ||
            get_arr (C, v, prefix, "syscalls", "objects", &arr) < 0)
                return -1;
        if (arr == NULL)
                return 0;
        s->syscalls = xzalloc ((arr->u.array.len + 1) * sizeof (*s->syscalls));
        s->n_syscalls = arr->u.array.len;
        for (size_t i = 0; i < arr->u.array.len; i++) {
                struct oci_seccomp_syscall *sc = &s->syscalls[i];
                cleanup_free char *ep = elem_prefix (prefix, "syscalls", i);
                yajl_val e, args;

                if (elem_obj (C, arr, i, prefix, "syscalls", &e) < 0 ||
                    get_strv (C, e, ep, "names", true, &sc->names) < 0)
                        return -1;
                if (sc->names[0] == NULL)
                        return perr (C, ep, "names", "must not be empty");
                if (get_str (C, e, ep, "action", true, &sc->action) < 0)
                        return -1;
                if (!in_list (sc->action, seccomp_actions))
                        return perr (C, ep, "action", "unknown seccomp action \"%s\"", sc->action);
                if (get_u32 (C, e, ep, "errnoRet", false, &sc->errno_ret, &sc->has_errno_ret) < 0 ||
                    get_arr (C, e, ep, "args", "objects", &args) < 0)
                        return -1;
                if (args == NULL)
                        continue;
                sc->args = xzalloc ((args->u.array.len + 1) * sizeof (*sc->args));
                sc->n_args = args->u.array.len;
                for (size_t k = 0; k < args->u.array.len; k++) {
                        struct oci_seccomp_arg *a = &sc->args[k];
                        cleanup_free char *ap = elem_prefix (ep, "args", k);
                        yajl_val ae;
                        if (elem_obj (C, args, k, ep, "args", &ae) < 0 ||
                            get_u32 (C, ae, ap, "index", true, &a->index, NULL) < 0 ||
                            get_u64 (C, ae, ap, "value", true, &a->value, NULL) < 0 ||
                            get_u64 (C, ae, ap, "valueTwo", false, &a->value_two, NULL) < 0 ||
                            get_str (C, ae, ap, "op", true, &a->op) < 0)
                                return -1;
                        if (a->index > 5)
                                return perr (C, ap, "index", "must be between 0 and 5, got %u", a->index);
                        if (!in_list (a->op, seccomp_ops))
                                return perr (C, ap, "op", "unknown seccomp operator \"%s\"", a->op);
                }
        }
        return 0;
}

/* ------------------------------------------------------------------ */
/* linux                                                                */

static const struct {
        const char *name;
        int flag;
} ns_names[] = {
        {"pid", CLONE_NEWPID}, {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},      {"ipc", CLONE_NEWIPC},
        {"uts", CLONE_NEWUTS}, {"user", CLONE_NEWUSER},   {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME},
};

static const char *const propagations[] = {
        "private", "shared", "slave", "unbindable", "rprivate", "rshared", "rslave", "runbindable", NULL,
};

static void
linux_free (struct oci_linux *l)
{
        if (l == NULL)
                return;
        for (size_t i = 0; i < l->n_namespaces; i++) {
                free (l->namespaces[i].type_name);
                free (l->namespaces[i].path);
        }
        free (l->namespaces);
        free (l->uid_mappings);
        free (l->gid_mappings);
        for (size_t i = 0; i < l->n_devices; i++)
                free (l->devices[i].path);
        free (l->devices);
        free (l->cgroups_path);
        oci_resources_free (l->resources);
        strv_free (l->sysctl_keys);
        strv_free (l->sysctl_values);
        seccomp_free (l->seccomp);
        free (l->rootfs_propagation);
        strv_free (l->masked_paths);
        strv_free (l->readonly_paths);
        free (l->mount_label);
        free (l);
}

static int
parse_id_maps (struct pctx *C, yajl_val v, const char *prefix, const char *key, struct oci_id_map **out, size_t *n)
{
        yajl_val arr;

        if (get_arr (C, v, prefix, key, "objects", &arr) < 0)
                return -1;
        if (arr == NULL)
                return 0;
        *out = xzalloc ((arr->u.array.len + 1) * sizeof (**out));
        *n = arr->u.array.len;
        for (size_t i = 0; i < arr->u.array.len; i++) {
                cleanup_free char *ep = elem_prefix (prefix, key, i);
                yajl_val e;
                if (elem_obj (C, arr, i, prefix, key, &e) < 0 ||
                    get_u32 (C, e, ep, "containerID", true, &(*out)[i].container_id, NULL) < 0 ||
                    get_u32 (C, e, ep, "hostID", true, &(*out)[i].host_id, NULL) < 0 ||
                    get_u32 (C, e, ep, "size", true, &(*out)[i].size, NULL) < 0)
                        return -1;
                if ((*out)[i].size == 0)
                        return perr (C, ep, "size", "must not be zero");
        }
        return 0;
}

static int
parse_linux (struct pctx *C, yajl_val v, struct oci_linux *l)
{
        const char *prefix = "linux.";
        yajl_val arr, sub;

        if (get_arr (C, v, prefix, "namespaces", "objects", &arr) < 0)
                return -1;
        if (arr) {
                l->namespaces = xzalloc ((arr->u.array.len + 1) * sizeof (*l->namespaces));
                l->n_namespaces = arr->u.array.len;
                for (size_t i = 0; i < arr->u.array.len; i++) {
                        struct oci_namespace *ns = &l->namespaces[i];
                        cleanup_free char *ep = elem_prefix (prefix, "namespaces", i);
                        yajl_val e;
                        size_t k;
                        if (elem_obj (C, arr, i, prefix, "namespaces", &e) < 0 ||
                            get_str (C, e, ep, "type", true, &ns->type_name) < 0 ||
                            get_abs_path (C, e, ep, "path", false, &ns->path) < 0)
                                return -1;
                        for (k = 0; k < ARRAY_SIZE (ns_names); k++)
                                if (strcmp (ns_names[k].name, ns->type_name) == 0)
                                        break;
                        if (k == ARRAY_SIZE (ns_names))
                                return perr (C, ep, "type", "unknown namespace type \"%s\"", ns->type_name);
                        ns->clone_flag = ns_names[k].flag;
                        for (size_t j = 0; j < i; j++)
                                if (l->namespaces[j].clone_flag == ns->clone_flag)
                                        return perr (C, ep, "type", "duplicate namespace type \"%s\"", ns->type_name);
                }
        }
        if (parse_id_maps (C, v, prefix, "uidMappings", &l->uid_mappings, &l->n_uid_mappings) < 0 ||
            parse_id_maps (C, v, prefix, "gidMappings", &l->gid_mappings, &l->n_gid_mappings) < 0)
                return -1;

        if (get_arr (C, v, prefix, "devices", "objects", &arr) < 0)
                return -1;
        if (arr) {
                l->devices = xzalloc ((arr->u.array.len + 1) * sizeof (*l->devices));
                l->n_devices = arr->u.array.len;
                for (size_t i = 0; i < arr->u.array.len; i++) {
                        struct oci_device *d = &l->devices[i];
                        cleanup_free char *ep = elem_prefix (prefix, "devices", i);
                        cleanup_free char *type = NULL;
                        yajl_val e;
                        if (elem_obj (C, arr, i, prefix, "devices", &e) < 0 ||
                            get_str (C, e, ep, "type", true, &type) < 0)
                                return -1;
                        if (strlen (type) != 1 || strchr ("cbup", type[0]) == NULL)
                                return perr (C, ep, "type", "unknown device type \"%s\" (expected c, b, u or p)", type);
                        d->type = type[0];
                        if (get_abs_path (C, e, ep, "path", true, &d->path) < 0 ||
                            get_i64 (C, e, ep, "major", d->type != 'p', &d->major, NULL) < 0 ||
                            get_i64 (C, e, ep, "minor", d->type != 'p', &d->minor, NULL) < 0 ||
                            get_u32 (C, e, ep, "fileMode", false, &d->file_mode, &d->has_file_mode) < 0 ||
                            get_u32 (C, e, ep, "uid", false, &d->uid, &d->has_uid) < 0 ||
                            get_u32 (C, e, ep, "gid", false, &d->gid, &d->has_gid) < 0)
                                return -1;
                }
        }
        if (get_str (C, v, prefix, "cgroupsPath", false, &l->cgroups_path) < 0)
                return -1;
        if (get_obj (C, v, prefix, "resources", false, &sub) < 0)
                return -1;
        if (sub) {
                l->resources = xzalloc (sizeof *l->resources);
                if (parse_resources (C, sub, "linux.resources.", l->resources) < 0)
                        return -1;
        }
        if (get_strmap (C, v, prefix, "sysctl", &l->sysctl_keys, &l->sysctl_values, &l->n_sysctl) < 0)
                return -1;
        if (get_obj (C, v, prefix, "seccomp", false, &sub) < 0)
                return -1;
        if (sub) {
                l->seccomp = xzalloc (sizeof *l->seccomp);
                if (parse_seccomp (C, sub, "linux.seccomp.", l->seccomp) < 0)
                        return -1;
        }
        if (get_str (C, v, prefix, "rootfsPropagation", false, &l->rootfs_propagation) < 0)
                return -1;
        if (l->rootfs_propagation && !in_list (l->rootfs_propagation, propagations))
                return perr (C, prefix, "rootfsPropagation", "unknown propagation \"%s\"", l->rootfs_propagation);
        if (get_strv (C, v, prefix, "maskedPaths", false, &l->masked_paths) < 0 ||
            get_strv (C, v, prefix, "readonlyPaths", false, &l->readonly_paths) < 0 ||
            get_str (C, v, prefix, "mountLabel", false, &l->mount_label) < 0)
                return -1;
        return 0;
}

/* ------------------------------------------------------------------ */
/* config                                                               */

static void
hook_free_contents (struct oci_hook *h)
{
        free (h->path);
        strv_free (h->args);
        strv_free (h->env);
}

void
oci_config_free (struct oci_config *c)
{
        if (c == NULL)
                return;
        free (c->oci_version);
        oci_process_free (c->process);
        free (c->root_path);
        free (c->hostname);
        free (c->domainname);
        for (size_t i = 0; i < c->n_mounts; i++) {
                free (c->mounts[i].destination);
                free (c->mounts[i].type);
                free (c->mounts[i].source);
                strv_free (c->mounts[i].options);
        }
        free (c->mounts);
        for (int k = 0; k < OCI_HOOK_KINDS; k++) {
                for (size_t i = 0; i < c->n_hooks[k]; i++)
                        hook_free_contents (&c->hooks[k][i]);
                free (c->hooks[k]);
        }
        strv_free (c->annotation_keys);
        strv_free (c->annotation_values);
        linux_free (c->linux_);
        if (c->tree)
                yajl_tree_free (c->tree);
        free (c);
}

static int
parse_hooks (struct pctx *C, yajl_val v, struct oci_config *c)
{
        for (int k = 0; k < OCI_HOOK_KINDS; k++) {
                yajl_val arr;
                if (get_arr (C, v, "hooks.", oci_hook_names[k], "objects", &arr) < 0)
                        return -1;
                if (arr == NULL)
                        continue;
                c->hooks[k] = xzalloc ((arr->u.array.len + 1) * sizeof (struct oci_hook));
                c->n_hooks[k] = arr->u.array.len;
                for (size_t i = 0; i < arr->u.array.len; i++) {
                        struct oci_hook *h = &c->hooks[k][i];
                        cleanup_free char *ep = elem_prefix ("hooks.", oci_hook_names[k], i);
                        bool has_timeout;
                        yajl_val e;
                        if (elem_obj (C, arr, i, "hooks.", oci_hook_names[k], &e) < 0 ||
                            get_abs_path (C, e, ep, "path", true, &h->path) < 0 ||
                            get_strv (C, e, ep, "args", false, &h->args) < 0 ||
                            get_strv (C, e, ep, "env", false, &h->env) < 0 ||
                            get_int (C, e, ep, "timeout", false, &h->timeout, &has_timeout) < 0)
                                return -1;
                        if (has_timeout && h->timeout <= 0)
                                return perr (C, ep, "timeout", "must be greater than zero, got %d", h->timeout);
                }
        }
        return 0;
}

static int
parse_config (struct pctx *C, yajl_val v, struct oci_config *c)
{
        yajl_val sub, arr;

        if (get_str (C, v, "", "ociVersion", true, &c->oci_version) < 0)
                return -1;
        if (get_obj (C, v, "", "root", false, &sub) < 0)
                return -1;
        if (sub == NULL)
                return perr (C, "", "root", "missing");
        if (get_str (C, sub, "root.", "path", true, &c->root_path) < 0 ||
            get_bool (C, sub, "root.", "readonly", false, &c->root_readonly, NULL) < 0)
                return -1;
        if (c->root_path[0] == '\0')
                return perr (C, "root.", "path", "must not be empty");

        if (get_obj (C, v, "", "process", false, &sub) < 0)
                return -1;
        if (sub) {
                c->process = xzalloc (sizeof *c->process);
                if (parse_process (C, sub, "process.", c->process) < 0)
                        return -1;
        }
        if (get_str (C, v, "", "hostname", false, &c->hostname) < 0 ||
            get_str (C, v, "", "domainname", false, &c->domainname) < 0)
                return -1;

        if (get_arr (C, v, "", "mounts", "objects", &arr) < 0)
                return -1;
        if (arr) {
                c->mounts = xzalloc ((arr->u.array.len + 1) * sizeof (*c->mounts));
                c->n_mounts = arr->u.array.len;
                for (size_t i = 0; i < arr->u.array.len; i++) {
                        struct oci_mount *m = &c->mounts[i];
                        cleanup_free char *ep = elem_prefix ("", "mounts", i);
                        yajl_val e;
                        if (elem_obj (C, arr, i, "", "mounts", &e) < 0 ||
                            get_abs_path (C, e, ep, "destination", true, &m->destination) < 0 ||
                            get_str (C, e, ep, "type", false, &m->type) < 0 ||
                            get_str (C, e, ep, "source", false, &m->source) < 0 ||
                            get_strv (C, e, ep, "options", false, &m->options) < 0)
                                return -1;
                }
        }
        if (get_obj (C, v, "", "hooks", false, &sub) < 0)
                return -1;
        if (sub && parse_hooks (C, sub, c) < 0)
                return -1;
        if (get_strmap (C, v, "", "annotations", &c->annotation_keys, &c->annotation_values, &c->n_annotations) < 0)
                return -1;
        if (get_obj (C, v, "", "linux", false, &sub) < 0)
                return -1;
        if (sub) {
                c->linux_ = xzalloc (sizeof *c->linux_);
                if (parse_linux (C, sub, c->linux_) < 0)
                        return -1;
        }
        return 0;
}

int
oci_config_parse (const char *json, const char *what, struct oci_config **out, moat_error_t *err)
{
        struct pctx C = {what, err};
        struct oci_config *c;
        yajl_val v;

        *out = NULL;
        v = parse_json (json, what, err);
        if (v == NULL)
                return -1;
        c = xzalloc (sizeof *c);
        c->tree = v;
        if (parse_config (&C, v, c) < 0) {
                oci_config_free (c);
                return -1;
        }
        *out = c;
        return 0;
}

int
oci_config_load (const char *bundle, struct oci_config **out, moat_error_t *err)
{
        cleanup_free char *path = xasprintf_r ("%s/config.json", bundle);
        cleanup_free char *data = NULL;
        size_t len;

        *out = NULL;
        if (read_file (path, &data, &len, err) < 0)
                return -1;
        if (strlen (data) != len)
                return moat_make_error (err, 0, "%s: contains a NUL byte", path);
        return oci_config_parse (data, path, out, err);
}

/* ------------------------------------------------------------------ */
/* signals                                                              */

static const struct {
        const char *name;
        int sig;
} signal_names[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT},     {"ILL", SIGILL},   {"TRAP", SIGTRAP},
        {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},       {"FPE", SIGFPE},   {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
        {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},     {"CLD", SIGCHLD},  {"CONT", SIGCONT},
        {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},
        {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
        {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

static int
parse_small_uint (const char *s, int max)
{
        long n;
        char *end;
        if (!isdigit ((unsigned char)s[0]))
                return -1;
        errno = 0;
        n = strtol (s, &end, 10);
        if (errno != 0 || *end != '\0' || n > max)
                return -1;
        return n;
}

int
oci_signal_parse (const char *s)
{
        char up[32];
        const char *n;
        size_t len;

        if (s == NULL || s[0] == '\0')
                return -1;
        if (isdigit ((unsigned char)s[0])) {
                int v = parse_small_uint (s, SIGRTMAX);
                return v >= 1 ? v : -1;
        }
        len = strlen (s);
        if (len >= sizeof up)
                return -1;
        for (size_t i = 0; i <= len; i++)
                up[i] = toupper ((unsigned char)s[i]);
        n = strncmp (up, "SIG", 3) == 0 ? up + 3 : up;
        for (size_t i = 0; i < ARRAY_SIZE (signal_names); i++)
                if (strcmp (n, signal_names[i].name) == 0)
                        return signal_names[i].sig;
        if (strncmp (n, "RTMIN", 5) == 0) {
                int off = 0;
                if (n[5] == '+')
                        off = parse_small_uint (n + 6, SIGRTMAX);
                else if (n[5] != '\0')
                        return -1;
                if (off < 0 || SIGRTMIN + off > SIGRTMAX)
                        return -1;
                return SIGRTMIN + off;
        }
        if (strncmp (n, "RTMAX", 5) == 0) {
                int off = 0;
                if (n[5] == '-')
                        off = parse_small_uint (n + 6, SIGRTMAX);
                else if (n[5] != '\0')
                        return -1;
                if (off < 0 || SIGRTMAX - off < SIGRTMIN)
                        return -1;
                return SIGRTMAX - off;
        }
        return -1;
}

/* ------------------------------------------------------------------ */
/* generic tree helpers                                                 */

yajl_val
oci_tree_get (yajl_val root, const char *const *path)
{
        yajl_val v = root;
        for (; path && *path; path++) {
                yajl_val next = NULL;
                if (!YAJL_IS_OBJECT (v))
                        return NULL;
                for (size_t i = v->u.object.len; i > 0; i--) {
                        if (strcmp (v->u.object.keys[i - 1], *path) == 0) {
                                next = v->u.object.values[i - 1];
                                break;
                        }
                }
                if (next == NULL)
                        return NULL;
                v = next;
        }
        return v;
}

struct sbuf {
        char *p;
        size_t len, cap;
};

static void
sb_add (struct sbuf *b, const char *s, size_t n)
{
        if (b->len + n + 1 > b->cap) {
                b->cap = (b->len + n + 1) * 2;
                b->p = xrealloc (b->p, b->cap);
        }
        memcpy (b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

static void
sb_str (struct sbuf *b, const char *s)
{
        sb_add (b, s, strlen (s));
}

static void
sb_json_string (struct sbuf *b, const char *s)
{
        const unsigned char *p = (const unsigned char *)s, *run = p;
        sb_add (b, "\"", 1);
        for (; *p; p++) {
                const char *esc = NULL;
                char u[8];
                switch (*p) {
                case '"':
                        esc = "\\\"";
                        break;
                case '\\':
                        esc = "\\\\";
                        break;
                case '\n':
                        esc = "\\n";
                        break;
                case '\r':
                        esc = "\\r";
                        break;
                case '\t':
                        esc = "\\t";
                        break;
                case '\b':
                        esc = "\\b";
                        break;
                case '\f':
                        esc = "\\f";
                        break;
                default:
                        if (*p < 0x20) {
                                snprintf (u, sizeof u, "\\u%04x", *p);
                                esc = u;
                        }
                }
                if (esc) {
                        sb_add (b, (const char *)run, p - run);
                        sb_str (b, esc);
                        run = p + 1;
                }
        }
        sb_add (b, (const char *)run, p - run);
        sb_add (b, "\"", 1);
}

static void
sb_value (struct sbuf *b, yajl_val v)
{
        char num[64];

        if (v == NULL) {
                sb_str (b, "null");
                return;
        }
        switch (v->type) {
        case yajl_t_string:
                sb_json_string (b, v->u.string ? v->u.string : "");
                break;
        case yajl_t_number:
                if (v->u.number.r != NULL && v->u.number.r[0] != '\0')
                        sb_str (b, v->u.number.r);
                else if (YAJL_IS_INTEGER (v)) {
                        snprintf (num, sizeof num, "%lld", v->u.number.i);
                        sb_str (b, num);
                } else if (YAJL_IS_DOUBLE (v)) {
                        snprintf (num, sizeof num, "%.17g", v->u.number.d);
                        sb_str (b, num);
                } else
                        sb_str (b, "0");
                break;
        case yajl_t_object:
                sb_add (b, "{", 1);
                for (size_t i = 0; i < v->u.object.len; i++) {
                        if (i)
                                sb_add (b, ",", 1);
                        sb_json_string (b, v->u.object.keys[i]);
                        sb_add (b, ":", 1);
                        sb_value (b, v->u.object.values[i]);
                }
                sb_add (b, "}", 1);
                break;
        case yajl_t_array:
                sb_add (b, "[", 1);
                for (size_t i = 0; i < v->u.array.len; i++) {
                        if (i)
                                sb_add (b, ",", 1);
                        sb_value (b, v->u.array.values[i]);
                }
                sb_add (b, "]", 1);
                break;
        case yajl_t_true:
                sb_str (b, "true");
                break;
        case yajl_t_false:
                sb_str (b, "false");
                break;
        default:
                sb_str (b, "null");
                break;
        }
}

char *
oci_tree_to_json (yajl_val v)
{
        struct sbuf b = {NULL, 0, 0};
        sb_value (&b, v);
        return b.p;
}

/* Frees what a node owns, leaving the node itself (a null). */
static void
node_clear (yajl_val v)
{
        switch (v->type) {
        case yajl_t_string:
                free (v->u.string);
                break;
        case yajl_t_number:
                free (v->u.number.r);
                break;
        case yajl_t_object:
                for (size_t i = 0; i < v->u.object.len; i++) {
                        free ((char *)v->u.object.keys[i]);
                        yajl_tree_free (v->u.object.values[i]);
                }
                free (v->u.object.keys);
                free (v->u.object.values);
                break;
        case yajl_t_array:
                for (size_t i = 0; i < v->u.array.len; i++)
                        yajl_tree_free (v->u.array.values[i]);
                free (v->u.array.values);
                break;
        default:
                break;
        }
        memset (&v->u, 0, sizeof v->u);
        v->type = yajl_t_null;
}

void
oci_tree_set_string (yajl_val v, const char *s)
{
        char *copy;
        if (v == NULL)
                return;
        copy = xstrdup (s ? s : "");
        node_clear (v);
        v->type = yajl_t_string;
        v->u.string = copy;
}

void
oci_tree_remove_key (yajl_val obj, const char *key)
{
        size_t w = 0;
        if (!YAJL_IS_OBJECT (obj))
                return;
        for (size_t i = 0; i < obj->u.object.len; i++) {
                if (strcmp (obj->u.object.keys[i], key) == 0) {
                        free ((char *)obj->u.object.keys[i]);
                        yajl_tree_free (obj->u.object.values[i]);
                        continue;
                }
                obj->u.object.keys[w] = obj->u.object.keys[i];
                obj->u.object.values[w] = obj->u.object.values[i];
                w++;
        }
        obj->u.object.len = w;
}

yajl_val
oci_tree_new_string (const char *s)
{
        yajl_val v = xzalloc (sizeof *v);
        v->type = yajl_t_string;
        v->u.string = xstrdup (s ? s : "");
        return v;
}

void
oci_tree_object_set (yajl_val obj, const char *key, yajl_val value)
{
        if (!YAJL_IS_OBJECT (obj)) {
                yajl_tree_free (value);
                return;
        }
        for (size_t i = obj->u.object.len; i > 0; i--) {
                if (strcmp (obj->u.object.keys[i - 1], key) == 0) {
                        yajl_tree_free (obj->u.object.values[i - 1]);
                        obj->u.object.values[i - 1] = value;
                        return;
                }
        }
        obj->u.object.keys = xrealloc (obj->u.object.keys, (obj->u.object.len + 1) * sizeof (char *));
        obj->u.object.values = xrealloc (obj->u.object.values, (obj->u.object.len + 1) * sizeof (yajl_val));
        obj->u.object.keys[obj->u.object.len] = xstrdup (key);
        obj->u.object.values[obj->u.object.len] = value;
        obj->u.object.len++;
}

void
oci_tree_array_remove (yajl_val arr, size_t index)
{
        if (!YAJL_IS_ARRAY (arr) || index >= arr->u.array.len)
                return;
        yajl_tree_free (arr->u.array.values[index]);
        memmove (&arr->u.array.values[index], &arr->u.array.values[index + 1],
                 (arr->u.array.len - index - 1) * sizeof (yajl_val));
        arr->u.array.len--;
}
