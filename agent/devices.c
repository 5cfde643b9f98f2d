/* SPDX-License-Identifier: Apache-2.0 */
/* linux.resources.devices on cgroup v2: v2 has no devices controller, the
 * kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup
 * instead. We write that program by hand (a few dozen instructions, no
 * compiler, no libbpf) from the rule list.
 *
 * Semantics are those of the cgroup v1 devices controller, which the OCI
 * rules were written for: rules apply in order; a rule for every device
 * ("a", no major, no minor, access "rwm") resets the list and sets the
 * default to its allow; otherwise the last matching rule wins. An allow rule
 * matches a request whose accesses it all grants, a deny rule one that asks
 * for any access it denies. After the config's rules come the devices every
 * container gets (like runc): mknod of any node, and null, zero, full,
 * random, urandom, tty, console, ptmx and the ptys. The default is deny.
 *
 * The program, for the context {access_type, major, minor}:
 *     r2 = access_type; r3 = r2 >> 16 (access); r2 &= 0xffff (type)
 *     r4 = major; r5 = minor
 *     for each rule, last first:
 *         if (type mismatch || major mismatch || minor mismatch) goto next
 *         allow: r6 = r3 & ~access; if (r6 != 0) goto next
 *         deny:  r6 = r3 & access;  if (r6 == 0) goto next
 *         r0 = allow; exit
 *     next: ...
 *     r0 = default; exit
 *
 * It is attached with BPF_F_ALLOW_MULTI (so nested cgroups can attach their
 * own, as runc and crun do); an update attaches the new program and then
 * detaches the old ones. */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

#define ACC_M BPF_DEVCG_ACC_MKNOD
#define ACC_R BPF_DEVCG_ACC_READ
#define ACC_W BPF_DEVCG_ACC_WRITE
#define ACC_ALL (ACC_M | ACC_R | ACC_W)

static const struct agent_dev_rule default_rules[] = {
        {true, 'c', -1, -1, ACC_M},    /* mknod of any character node */
        {true, 'b', -1, -1, ACC_M},    /* and any block node */
        {true, 'c', 1, 3, ACC_ALL},    /* null */
        {true, 'c', 1, 5, ACC_ALL},    /* zero */
        {true, 'c', 1, 7, ACC_ALL},    /* full */
        {true, 'c', 1, 8, ACC_ALL},    /* random */
        {true, 'c', 1, 9, ACC_ALL},    /* urandom */
        {true, 'c', 5, 0, ACC_ALL},    /* tty */
        {true, 'c', 5, 1, ACC_ALL},    /* console */
        {true, 'c', 5, 2, ACC_ALL},    /* ptmx */
        {true, 'c', 136, -1, ACC_ALL}, /* /dev/pts/N */
};

static int
parse_access (const char *s, unsigned *out)
{
        unsigned a = 0;

        if (s == NULL || *s == '\0') { /* absent: every access */
                *out = ACC_ALL;
                return 0;
        }
        for (; *s; s++) {
                if (*s == 'r')
                        a |= ACC_R;
                else if (*s == 'w')
                        a |= ACC_W;
                else if (*s == 'm')
                        a |= ACC_M;
                else
                        return -1;
        }
        *out = a;
        return 0;
}

int
agent_devices_rules (const struct oci_device_rule *rules, size_t n, struct agent_dev_rule **out, size_t *n_out,
                     bool *default_allow, moat_error_t *err)
{
        struct agent_dev_rule *v = xzalloc ((n + ARRAY_SIZE (default_rules) + 1) * sizeof *v);
        size_t cnt = 0;

        *default_allow = false;
        for (size_t i = 0; i < n; i++) {
                const struct oci_device_rule *r = &rules[i];
                struct agent_dev_rule d = {.allow = r->allow, .type = r->type ? r->type : 'a'};
                if (d.type != 'a' && d.type != 'b' && d.type != 'c') {
                        free (v);
                        return moat_make_error (err, EINVAL,
                                                "linux.resources.devices[%zu]: type \"%c\" (expected a, b or c)", i,
                                                r->type);
                }
                if (parse_access (r->access, &d.access) < 0) {
                        free (v);
                        return moat_make_error (err, EINVAL,
                                                "linux.resources.devices[%zu]: access \"%s\" (expected letters of rwm)",
                                                i, r->access);
                }
                if (r->major < -1 || r->major > 0xffffffffLL || r->minor < -1 || r->minor > 0xffffffffLL) {
                        free (v);
                        return moat_make_error (err, EINVAL, "linux.resources.devices[%zu]: invalid major/minor", i);
                }
                d.major = r->major;
                d.minor = r->minor;
                if (d.type == 'a' && d.major < 0 && d.minor < 0 && d.access == ACC_ALL) {
                        /* "a *:* rwm": a new default, earlier rules are moot */
                        *default_allow = d.allow;
                        cnt = 0;
                        continue;
                }
                v[cnt++] = d;
        }
        for (size_t i = 0; i < ARRAY_SIZE (default_rules); i++)
                v[cnt++] = default_rules[i];
        *out = v;
        *n_out = cnt;
        return 0;
}

static struct bpf_insn
insn (uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
        struct bpf_insn i = {.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
        return i;
}

#define LDX_W(dst, src, off) insn (BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define MOV_REG(dst, src) insn (BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV_IMM(dst, imm) insn (BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define AND_IMM(dst, imm) insn (BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm)
#define RSH_IMM(dst, imm) insn (BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm)
#define JNE_IMM(dst, imm, off) insn (BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
#define JEQ_IMM(dst, imm, off) insn (BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm)
#define EXIT() insn (BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

size_t
agent_devices_program (const struct agent_dev_rule *rules, size_t n, bool default_allow, struct bpf_insn **out)
{
        /* 6 prologue + at most 8 per rule + 2 epilogue */
        struct bpf_insn *p = xzalloc ((8 + 8 * n) * sizeof *p);
        size_t k = 0;

        p[k++] = LDX_W (BPF_REG_2, BPF_REG_1, offsetof (struct bpf_cgroup_dev_ctx, access_type));
        p[k++] = MOV_REG (BPF_REG_3, BPF_REG_2);
        p[k++] = RSH_IMM (BPF_REG_3, 16);
        p[k++] = AND_IMM (BPF_REG_2, 0xffff);
        p[k++] = LDX_W (BPF_REG_4, BPF_REG_1, offsetof (struct bpf_cgroup_dev_ctx, major));
        p[k++] = LDX_W (BPF_REG_5, BPF_REG_1, offsetof (struct bpf_cgroup_dev_ctx, minor));
        for (size_t i = n; i-- > 0;) {
                const struct agent_dev_rule *r = &rules[i];
                size_t jumps[4], nj = 0;
                if (r->type != 'a') {
                        jumps[nj++] = k;
                        p[k++] = JNE_IMM (BPF_REG_2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, 0);
                }
                if (r->major >= 0) {
                        jumps[nj++] = k;
                        p[k++] = JNE_IMM (BPF_REG_4, (int32_t)(uint32_t)r->major, 0);
                }
                if (r->minor >= 0) {
                        jumps[nj++] = k;
                        p[k++] = JNE_IMM (BPF_REG_5, (int32_t)(uint32_t)r->minor, 0);
                }
                p[k++] = MOV_REG (BPF_REG_6, BPF_REG_3);
                if (r->allow) {
                        p[k++] = AND_IMM (BPF_REG_6, ~r->access & ACC_ALL);
                        jumps[nj++] = k;
                        p[k++] = JNE_IMM (BPF_REG_6, 0, 0);
                } else {
                        p[k++] = AND_IMM (BPF_REG_6, r->access);
                        jumps[nj++] = k;
                        p[k++] = JEQ_IMM (BPF_REG_6, 0, 0);
                }
                p[k++] = MOV_IMM (BPF_REG_0, r->allow ? 1 : 0);
                p[k++] = EXIT ();
                /* every "goto next" lands right after this block */
                for (size_t j = 0; j < nj; j++)
                        p[jumps[j]].off = (int16_t)(k - (jumps[j] + 1));
        }
        p[k++] = MOV_IMM (BPF_REG_0, default_allow ? 1 : 0);
        p[k++] = EXIT ();
        *out = p;
        return k;
}

static int
sys_bpf (int cmd, union bpf_attr *attr)
{
        return syscall (SYS_bpf, cmd, attr, sizeof *attr);
}

static int
load_program (struct bpf_insn *prog, size_t n, moat_error_t *err)
{
        union bpf_attr attr;
        static char log[8192];
        int fd;

        memset (&attr, 0, sizeof attr);
        attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        attr.insns = (uintptr_t)prog;
        attr.insn_cnt = n;
        attr.license = (uintptr_t) "Apache-2.0";
        fd = sys_bpf (BPF_PROG_LOAD, &attr);
        if (fd >= 0)
                return fd;
        if (errno == ENOSYS)
                return moat_make_error (err, errno,
                                        "load the device cgroup program (kernel without CONFIG_BPF_SYSCALL)");
        /* again with the verifier's log, for the message */
        attr.log_buf = (uintptr_t)log;
        attr.log_size = sizeof log;
        attr.log_level = 1;
        log[0] = '\0';
        fd = sys_bpf (BPF_PROG_LOAD, &attr);
        if (fd >= 0)
                return fd;
        return moat_make_error (err, errno, "load the device cgroup program%s%.300s", log[0] ? ": " : "", log);
}

/* Ids of the device programs attached to the cgroup (at most max). */
static size_t
attached_programs (int cgfd, uint32_t *ids, size_t max)
{
        union bpf_attr attr;

        memset (&attr, 0, sizeof attr);
        attr.query.target_fd = cgfd;
        attr.query.attach_type = BPF_CGROUP_DEVICE;
        attr.query.prog_ids = (uintptr_t)ids;
        attr.query.prog_cnt = max;
        if (sys_bpf (BPF_PROG_QUERY, &attr) < 0)
                return 0;
        return attr.query.prog_cnt < max ? attr.query.prog_cnt : max;
}

int
agent_devices_apply (const char *cgroup_path, const struct oci_device_rule *rules, size_t n, moat_error_t *err)
{
        cleanup_free struct agent_dev_rule *v = NULL;
        cleanup_free struct bpf_insn *prog = NULL;
        cleanup_close int cgfd = -1;
        cleanup_close int pfd = -1;
        union bpf_attr attr;
        uint32_t old[16];
        size_t nv, np, nold;
        bool def;

        if (agent_devices_rules (rules, n, &v, &nv, &def, err) < 0)
                return -1;
        np = agent_devices_program (v, nv, def, &prog);
        cgfd = open (cgroup_path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (cgfd < 0)
                return moat_make_error (err, errno, "open cgroup %s", cgroup_path);
        pfd = load_program (prog, np, err);
        if (pfd < 0 && (*err)->errno_ == ENOSYS) {
                /* moat's guest kernel has CONFIG_BPF_SYSCALL and
                 * CONFIG_CGROUP_BPF (guest-kernel-config/cgroup.config);
                 * only another kernel lacks them. Refusing every container
                 * Docker or Podman sends (they all carry device rules) would
                 * make such a kernel useless, so: a loud warning. The
                 * guest test in agent-standalone.sh catches a moat kernel
                 * that lost the options. */
                agent_log ("WARNING: linux.resources.devices of %s NOT enforced: %s", cgroup_path, (*err)->msg);
                moat_error_release (err);
                return 0;
        }
        if (pfd < 0)
                return moat_error_wrap (err, "linux.resources.devices");
        nold = attached_programs (cgfd, old, ARRAY_SIZE (old));
        memset (&attr, 0, sizeof attr);
        attr.target_fd = cgfd;
        attr.attach_bpf_fd = pfd;
        attr.attach_type = BPF_CGROUP_DEVICE;
        attr.attach_flags = BPF_F_ALLOW_MULTI;
        if (sys_bpf (BPF_PROG_ATTACH, &attr) < 0)
                return moat_make_error (err, errno, "linux.resources.devices: attach the device program to %s%s",
                                        cgroup_path, errno == EINVAL ? " (kernel without CONFIG_CGROUP_BPF?)" : "");
        /* the new program is in force: drop the ones it replaces */
        for (size_t i = 0; i < nold; i++) {
                union bpf_attr a2;
                cleanup_close int ofd = -1;
                memset (&a2, 0, sizeof a2);
                a2.prog_id = old[i];
                ofd = sys_bpf (BPF_PROG_GET_FD_BY_ID, &a2);
                if (ofd < 0)
                        continue;
                memset (&a2, 0, sizeof a2);
                a2.target_fd = cgfd;
                a2.attach_bpf_fd = ofd;
                a2.attach_type = BPF_CGROUP_DEVICE;
                if (sys_bpf (BPF_PROG_DETACH, &a2) < 0)
                        agent_log ("detach the old device program %u from %s: %s", old[i], cgroup_path,
                                   strerror (errno));
        }
        agent_debug ("cgroup: device program with %zu rules (default %s) on %s", nv, def ? "allow" : "deny",
                     cgroup_path);
        return 0;
}
