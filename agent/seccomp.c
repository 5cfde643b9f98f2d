/* SPDX-License-Identifier: Apache-2.0 */
/* linux.seccomp with libseccomp. Unknown syscall names are skipped (debug
 * log), as profiles list syscalls of every architecture and kernel; unknown
 * actions, operators and SCMP_ACT_NOTIFY (no listener in the guest) are
 * errors. The filter is loaded by the caller as late as possible. */
#include <ctype.h>
#include <errno.h>
#include <seccomp.h>
#include <string.h>

#include "agent.h"
#include "moat/util.h"

static int
parse_action (const char *name, bool has_errno, uint32_t errno_ret, uint32_t *act, moat_error_t *err)
{
        uint32_t e = has_errno ? errno_ret : EPERM;

        if (name == NULL)
                return moat_make_error (err, EINVAL, "linux.seccomp: missing action");
        if (strcmp (name, "SCMP_ACT_ALLOW") == 0)
                *act = SCMP_ACT_ALLOW;
        else if (strcmp (name, "SCMP_ACT_ERRNO") == 0)
                *act = SCMP_ACT_ERRNO (e);
        else if (strcmp (name, "SCMP_ACT_KILL") == 0 || strcmp (name, "SCMP_ACT_KILL_THREAD") == 0)
                *act = SCMP_ACT_KILL_THREAD;
        else if (strcmp (name, "SCMP_ACT_KILL_PROCESS") == 0)
                *act = SCMP_ACT_KILL_PROCESS;
        else if (strcmp (name, "SCMP_ACT_TRAP") == 0)
                *act = SCMP_ACT_TRAP;
        else if (strcmp (name, "SCMP_ACT_TRACE") == 0)
                *act = SCMP_ACT_TRACE (e);
        else if (strcmp (name, "SCMP_ACT_LOG") == 0)
                *act = SCMP_ACT_LOG;
        else if (strcmp (name, "SCMP_ACT_NOTIFY") == 0)
                return moat_make_error (err, ENOTSUP, "linux.seccomp: action SCMP_ACT_NOTIFY is not supported by moat");
        else
                return moat_make_error (err, EINVAL, "linux.seccomp: unknown action \"%s\"", name);
        return 0;
}

static int
parse_op (const char *op, enum scmp_compare *out, moat_error_t *err)
{
        static const struct {
                const char *name;
                enum scmp_compare op;
        } ops[] = {
                {"SCMP_CMP_NE", SCMP_CMP_NE},
                {"SCMP_CMP_LT", SCMP_CMP_LT},
                {"SCMP_CMP_LE", SCMP_CMP_LE},
                {"SCMP_CMP_EQ", SCMP_CMP_EQ},
                {"SCMP_CMP_GE", SCMP_CMP_GE},
                {"SCMP_CMP_GT", SCMP_CMP_GT},
                {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
        };
        for (size_t i = 0; op && i < ARRAY_SIZE (ops); i++)
                if (strcmp (op, ops[i].name) == 0) {
                        *out = ops[i].op;
                        return 0;
                }
        return moat_make_error (err, EINVAL, "linux.seccomp: unknown operator \"%s\"", op ? op : "(none)");
}

static int
add_arch (scmp_filter_ctx ctx, const char *name, moat_error_t *err)
{
        char lower[64];
        const char *n = name;
        size_t i;
        uint32_t arch;
        int r;

        if (strncmp (n, "SCMP_ARCH_", 10) == 0)
                n += 10;
        for (i = 0; n[i] && i < sizeof lower - 1; i++)
                lower[i] = tolower ((unsigned char)n[i]);
        lower[i] = '\0';
        arch = seccomp_arch_resolve_name (lower);
        if (arch == 0) {
                agent_debug ("seccomp: architecture %s unknown to libseccomp, skipped", name);
                return 0;
        }
        r = seccomp_arch_add (ctx, arch);
        if (r < 0 && r != -EEXIST)
                return moat_make_error (err, -r, "linux.seccomp: add architecture %s", name);
        return 0;
}

static int
build (scmp_filter_ctx ctx, struct oci_seccomp *s, uint32_t def, moat_error_t *err)
{
        int r;

        /* no_new_privs is process.noNewPrivileges' business, not libseccomp's. */
        seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 0);
        for (size_t i = 0; s->flags && s->flags[i]; i++) {
                if (strcmp (s->flags[i], "SECCOMP_FILTER_FLAG_LOG") == 0)
                        seccomp_attr_set (ctx, SCMP_FLTATR_CTL_LOG, 1);
                else if (strcmp (s->flags[i], "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
                        seccomp_attr_set (ctx, SCMP_FLTATR_CTL_SSB, 1);
                else if (strcmp (s->flags[i], "SECCOMP_FILTER_FLAG_TSYNC") != 0)
                        agent_debug ("seccomp: flag %s ignored", s->flags[i]);
        }
        for (size_t i = 0; s->architectures && s->architectures[i]; i++)
                if (add_arch (ctx, s->architectures[i], err) < 0)
                        return -1;

        for (size_t i = 0; i < s->n_syscalls; i++) {
                struct oci_seccomp_syscall *sc = &s->syscalls[i];
                struct scmp_arg_cmp cmps[6];
                bool repeated = false;
                uint32_t act;

                if (parse_action (sc->action, sc->has_errno_ret, sc->errno_ret, &act, err) < 0)
                        return moat_error_wrap (err, "linux.seccomp.syscalls[%zu]", i);
                if (sc->n_args > ARRAY_SIZE (cmps))
                        return moat_make_error (err, EINVAL, "linux.seccomp.syscalls[%zu]: more than 6 args", i);
                for (size_t a = 0; a < sc->n_args; a++) {
                        enum scmp_compare op = SCMP_CMP_EQ;
                        if (parse_op (sc->args[a].op, &op, err) < 0)
                                return moat_error_wrap (err, "linux.seccomp.syscalls[%zu]", i);
                        if (sc->args[a].index > 5)
                                return moat_make_error (err, EINVAL, "linux.seccomp.syscalls[%zu]: arg index %u", i,
                                                        sc->args[a].index);
                        cmps[a] =
                                (struct scmp_arg_cmp){sc->args[a].index, op, sc->args[a].value, sc->args[a].value_two};
                        for (size_t b = 0; b < a; b++)
                                if (cmps[b].arg == cmps[a].arg)
                                        repeated = true;
                }
                if (act == def)
                        continue; /* libseccomp refuses rules that repeat the default */
                for (size_t n = 0; sc->names && sc->names[n]; n++) {
                        int nr = seccomp_syscall_resolve_name (sc->names[n]);
                        if (nr == __NR_SCMP_ERROR) {
                                agent_debug ("seccomp: syscall %s unknown, skipped", sc->names[n]);
                                continue;
                        }
                        if (!repeated)
                                r = seccomp_rule_add_array (ctx, act, nr, sc->n_args, cmps);
                        else {
                                /* several conditions on one argument: one rule each (runc does the same) */
                                r = 0;
                                for (size_t a = 0; r >= 0 && a < sc->n_args; a++)
                                        r = seccomp_rule_add_array (ctx, act, nr, 1, &cmps[a]);
                        }
                        if (r < 0)
                                return moat_make_error (err, -r, "linux.seccomp: rule for %s", sc->names[n]);
                }
        }
        return 0;
}

/* Builds the filter of s into *out (NULL when s is NULL). */
static int
make_filter (struct oci_seccomp *s, scmp_filter_ctx *out, moat_error_t *err)
{
        scmp_filter_ctx ctx;
        uint32_t def;

        *out = NULL;
        if (s == NULL)
                return 0;
        if (s->listener_path && *s->listener_path)
                return moat_make_error (err, ENOTSUP, "linux.seccomp.listenerPath is not supported by moat");
        if (parse_action (s->default_action, s->has_default_errno_ret, s->default_errno_ret, &def, err) < 0)
                return moat_error_wrap (err, "linux.seccomp.defaultAction");
        ctx = seccomp_init (def);
        if (ctx == NULL)
                return moat_make_error (err, EINVAL, "seccomp_init");
        if (build (ctx, s, def, err) < 0) {
                seccomp_release (ctx);
                return -1;
        }
        *out = ctx;
        return 0;
}

int
agent_seccomp_load (struct oci_seccomp *s, moat_error_t *err)
{
        scmp_filter_ctx ctx;
        int r;

        if (make_filter (s, &ctx, err) < 0)
                return -1;
        if (ctx == NULL)
                return 0;
        r = seccomp_load (ctx);
        seccomp_release (ctx);
        if (r < 0)
                return moat_make_error (err, -r, "load the seccomp filter");
        return 0;
}

int
agent_seccomp_check (struct oci_seccomp *s, moat_error_t *err)
{
        scmp_filter_ctx ctx;

        if (make_filter (s, &ctx, err) < 0)
                return -1;
        if (ctx)
                seccomp_release (ctx);
        return 0;
}
