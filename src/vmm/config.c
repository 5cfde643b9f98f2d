/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm configuration from a JSON file (yajl tree). */
#include <string.h>
#include <yajl/yajl_tree.h>

#include "moat/util.h"
#include "moat/vmm_config.h"
#include "moat/vmm_virtio.h"

void
vmm_config_init (struct vmm_config *c)
{
        memset (c, 0, sizeof *c);
        c->memory_mib = 128;
        c->cpus = 1;
}

void
vmm_config_free (struct vmm_config *c)
{
        free (c->kernel);
        free (c->initrd);
        free (c->cmdline);
        free (c->serial_log);
        free (c->masks);
        for (size_t i = 0; i < c->nshares; i++) {
                free (c->shares[i].tag);
                free (c->shares[i].path);
        }
        free (c->shares);
        free (c->vsock_socket);
        free (c->tap);
        free (c->console_log);
        memset (c, 0, sizeof *c);
}

int
vmm_config_add_mask (struct vmm_config *c, const char *spec, moat_error_t *err)
{
        struct vmm_cpuid_mask m;
        if (vmm_cpuid_mask_parse (spec, &m, err) < 0)
                return -1;
        c->masks = xrealloc (c->masks, (c->nmasks + 1) * sizeof *c->masks);
        c->masks[c->nmasks++] = m;
        return 0;
}

int
vmm_config_add_share (struct vmm_config *c, const char *spec, moat_error_t *err)
{
        struct vmm_share sh;
        if (vmm_virtio_9p_parse_share (spec, &sh.tag, &sh.path, err) < 0)
                return -1;
        for (size_t i = 0; i < c->nshares; i++)
                if (strcmp (c->shares[i].tag, sh.tag) == 0) {
                        moat_make_error (err, 0, "share `%s`: tag `%s` is given twice", spec, sh.tag);
                        free (sh.tag);
                        free (sh.path);
                        return -1;
                }
        c->shares = xrealloc (c->shares, (c->nshares + 1) * sizeof *c->shares);
        c->shares[c->nshares++] = sh;
        return 0;
}

int
vmm_config_set_mac (struct vmm_config *c, const char *mac, moat_error_t *err)
{
        if (vmm_net_parse_mac (mac, c->mac, err) < 0)
                return -1;
        c->has_mac = true;
        return 0;
}

static void
cleanup_yajl (yajl_val *v)
{
        if (*v)
                yajl_tree_free (*v);
}

static int
get_string (yajl_val v, const char *key, char **out, moat_error_t *err)
{
        if (!YAJL_IS_STRING (v))
                return moat_make_error (err, 0, "`%s`: expected a string", key);
        free (*out);
        *out = xstrdup (YAJL_GET_STRING (v));
        return 0;
}

static int
get_uint (yajl_val v, const char *key, uint64_t max, uint64_t *out, moat_error_t *err)
{
        if (!YAJL_IS_INTEGER (v) || YAJL_GET_INTEGER (v) < 0 || (uint64_t)YAJL_GET_INTEGER (v) > max)
                return moat_make_error (err, 0, "`%s`: expected an integer from 0 to %llu", key,
                                        (unsigned long long)max);
        *out = YAJL_GET_INTEGER (v);
        return 0;
}

static int
get_bool (yajl_val v, const char *key, bool *out, moat_error_t *err)
{
        if (!YAJL_IS_TRUE (v) && !YAJL_IS_FALSE (v))
                return moat_make_error (err, 0, "`%s`: expected true or false", key);
        *out = YAJL_IS_TRUE (v);
        return 0;
}

static int
load_devices (struct vmm_config *c, yajl_val v, moat_error_t *err)
{
        if (!YAJL_IS_ARRAY (v))
                return moat_make_error (err, 0, "`devices`: expected an array");
        for (size_t i = 0; i < v->u.array.len; i++) {
                yajl_val d = v->u.array.values[i];
                const char *path[] = {"type", NULL};
                yajl_val t = YAJL_IS_OBJECT (d) ? yajl_tree_get (d, path, yajl_t_string) : NULL;
                if (t == NULL)
                        return moat_make_error (err, 0, "`devices[%zu]`: expected an object with a string `type`", i);
                if (d->u.object.len != 1)
                        return moat_make_error (err, 0, "`devices[%zu]`: only `type` is known", i);
                const char *type = YAJL_GET_STRING (t);
                if (type && strcmp (type, "rng") == 0)
                        c->rng = true;
                else
                        return moat_make_error (err, 0, "`devices[%zu]`: unknown device type `%s`", i,
                                                type ? type : "");
        }
        return 0;
}

int
vmm_config_load_json (struct vmm_config *c, const char *text, moat_error_t *err)
{
        char ebuf[256] = "";
        __attribute__ ((cleanup (cleanup_yajl))) yajl_val root = yajl_tree_parse (text, ebuf, sizeof ebuf);
        if (root == NULL) {
                ebuf[strcspn (ebuf, "\n")] = '\0'; /* yajl adds a multi-line pointer */
                return moat_make_error (err, 0, "invalid JSON: %s", ebuf);
        }
        if (!YAJL_IS_OBJECT (root))
                return moat_make_error (err, 0, "expected a JSON object");
        for (size_t i = 0; i < root->u.object.len; i++) {
                const char *k = root->u.object.keys[i];
                yajl_val v = root->u.object.values[i];
                uint64_t u = 0;
                int r;
                if (strcmp (k, "kernel") == 0)
                        r = get_string (v, k, &c->kernel, err);
                else if (strcmp (k, "initrd") == 0)
                        r = get_string (v, k, &c->initrd, err);
                else if (strcmp (k, "cmdline") == 0)
                        r = get_string (v, k, &c->cmdline, err);
                else if (strcmp (k, "serial_log") == 0)
                        r = get_string (v, k, &c->serial_log, err);
                else if (strcmp (k, "memory_mib") == 0) {
                        r = get_uint (v, k, 1 << 20, &u, err);
                        c->memory_mib = u;
                } else if (strcmp (k, "cpus") == 0) {
                        r = get_uint (v, k, VMM_MAX_CPUS, &u, err);
                        c->cpus = u;
                } else if (strcmp (k, "serial_stdin") == 0)
                        r = get_bool (v, k, &c->serial_stdin, err);
                else if (strcmp (k, "debug") == 0)
                        r = get_bool (v, k, &c->debug, err);
                else if (strcmp (k, "vsock_socket") == 0)
                        r = get_string (v, k, &c->vsock_socket, err);
                else if (strcmp (k, "guest_cid") == 0)
                        r = get_uint (v, k, UINT32_MAX - 1, &c->guest_cid, err);
                else if (strcmp (k, "tap") == 0)
                        r = get_string (v, k, &c->tap, err);
                else if (strcmp (k, "mac") == 0) {
                        if (!YAJL_IS_STRING (v))
                                return moat_make_error (err, 0, "`mac`: expected a string");
                        r = vmm_config_set_mac (c, YAJL_GET_STRING (v), err);
                } else if (strcmp (k, "console_log") == 0)
                        r = get_string (v, k, &c->console_log, err);
                else if (strcmp (k, "memfd") == 0)
                        r = get_bool (v, k, &c->memfd, err);
                else if (strcmp (k, "seccomp") == 0) {
                        if (!YAJL_IS_STRING (v))
                                return moat_make_error (err, 0, "`seccomp`: expected a string");
                        r = vmm_seccomp_parse_mode (YAJL_GET_STRING (v), &c->seccomp, err);
                } else if (strcmp (k, "devices") == 0)
                        r = load_devices (c, v, err);
                else if (strcmp (k, "shares") == 0) {
                        if (!YAJL_IS_ARRAY (v))
                                return moat_make_error (err, 0, "`shares`: expected an array of \"TAG=PATH\" strings");
                        r = 0;
                        for (size_t j = 0; r == 0 && j < v->u.array.len; j++) {
                                if (!YAJL_IS_STRING (v->u.array.values[j]))
                                        return moat_make_error (err, 0, "`shares[%zu]`: expected a string", j);
                                r = vmm_config_add_share (c, YAJL_GET_STRING (v->u.array.values[j]), err);
                        }
                } else if (strcmp (k, "cpuid_mask") == 0) {
                        if (!YAJL_IS_ARRAY (v))
                                return moat_make_error (err, 0, "`cpuid_mask`: expected an array of strings");
                        r = 0;
                        for (size_t j = 0; r == 0 && j < v->u.array.len; j++) {
                                if (!YAJL_IS_STRING (v->u.array.values[j]))
                                        return moat_make_error (err, 0, "`cpuid_mask[%zu]`: expected a string", j);
                                r = vmm_config_add_mask (c, YAJL_GET_STRING (v->u.array.values[j]), err);
                        }
                } else
                        return moat_make_error (err, 0, "unknown key `%s`", k);
                if (r < 0)
                        return -1;
        }
        return 0;
}

int
vmm_config_validate (const struct vmm_config *c, moat_error_t *err)
{
        if (c->kernel == NULL)
                return moat_make_error (err, 0, "no kernel given (--kernel FILE)");
        if (c->memory_mib < 2 || c->memory_mib > (1 << 20))
                return moat_make_error (err, 0, "memory of %llu MiB: must be 2 to 1048576",
                                        (unsigned long long)c->memory_mib);
        if (c->cpus < 1 || c->cpus > VMM_MAX_CPUS)
                return moat_make_error (err, 0, "%d vCPUs: must be 1 to %d", c->cpus, VMM_MAX_CPUS);
        if (c->guest_cid != 0 && (c->guest_cid < 3 || c->guest_cid >= UINT32_MAX))
                return moat_make_error (err, 0, "guest CID %llu: must be 3 to %u", (unsigned long long)c->guest_cid,
                                        UINT32_MAX - 1);
        if (c->has_mac && c->tap == NULL)
                return moat_make_error (err, 0, "a MAC address without a network device (--tap NAME)");
        if (c->tap && (*c->tap == '\0' || strlen (c->tap) >= 16 || strchr (c->tap, '/') || strchr (c->tap, ' ')))
                return moat_make_error (err, 0, "tap `%s`: not a valid interface name (1 to 15 characters)", c->tap);
        if (c->console_log && *c->console_log == '\0')
                return moat_make_error (err, 0, "console log: empty file name (use - for stdout)");
        if (c->guest_cid != 0 && c->vsock_socket == NULL)
                return moat_make_error (err, 0, "a guest CID without a vsock device (--vsock-socket PATH)");
        return 0;
}
