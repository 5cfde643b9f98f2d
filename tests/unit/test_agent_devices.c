/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's device cgroup program (agent/devices.c), without a kernel: the
 * rules are compiled to BPF and run here by a small interpreter of the
 * instructions the compiler emits, for device requests whose verdict the
 * cgroup v1 semantics fix. The kernel side (load + attach) is covered by
 * tests/integration/agent-standalone.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../agent/devices.c"
#include "../../agent/log.c"

/* Runs prog on {access_type, major, minor}; fails the test on anything the
 * compiler is not supposed to emit or a jump out of the program. */
static int
run (struct bpf_insn *p, size_t n, int type, int access, uint32_t major, uint32_t minor)
{
        struct bpf_cgroup_dev_ctx ctx = {
                .access_type = ((uint32_t)access << 16) | type, .major = major, .minor = minor};
        uint64_t r[11] = {0};
        size_t pc = 0;

        r[1] = (uintptr_t)&ctx;
        for (int steps = 0; steps < 10000; steps++) {
                struct bpf_insn *i;
                assert_true (pc < n);
                i = &p[pc++];
                switch (i->code) {
                case BPF_LDX | BPF_MEM | BPF_W:
                        assert_int_equal (i->src_reg, 1);
                        assert_true (i->off >= 0 && i->off <= 8 && i->off % 4 == 0);
                        r[i->dst_reg] = *(uint32_t *)((char *)&ctx + i->off);
                        break;
                case BPF_ALU64 | BPF_MOV | BPF_X:
                        r[i->dst_reg] = r[i->src_reg];
                        break;
                case BPF_ALU64 | BPF_MOV | BPF_K:
                        r[i->dst_reg] = (int64_t)i->imm;
                        break;
                case BPF_ALU64 | BPF_AND | BPF_K:
                        r[i->dst_reg] &= (uint64_t)(int64_t)i->imm;
                        break;
                case BPF_ALU64 | BPF_RSH | BPF_K:
                        r[i->dst_reg] >>= i->imm;
                        break;
                case BPF_JMP | BPF_JNE | BPF_K:
                        if (r[i->dst_reg] != (uint64_t)(int64_t)i->imm)
                                pc += i->off;
                        break;
                case BPF_JMP | BPF_JEQ | BPF_K:
                        if (r[i->dst_reg] == (uint64_t)(int64_t)i->imm)
                                pc += i->off;
                        break;
                case BPF_JMP | BPF_EXIT:
                        return (int)r[0];
                default:
                        fail_msg ("unexpected opcode 0x%02x at %zu", i->code, pc - 1);
                }
        }
        fail_msg ("the program does not terminate");
        return -1;
}

struct prog {
        struct bpf_insn *insns;
        size_t n;
};

static struct prog
compile (const struct oci_device_rule *rules, size_t n)
{
        struct agent_dev_rule *v = NULL;
        moat_error_t err = NULL;
        size_t nv;
        bool def;
        struct prog p;

        assert_int_equal (agent_devices_rules (rules, n, &v, &nv, &def, &err), 0);
        p.n = agent_devices_program (v, nv, def, &p.insns);
        assert_true (p.n < 4096); /* BPF_MAXINSNS for unprivileged, and sanity */
        free (v);
        return p;
}

#define C BPF_DEVCG_DEV_CHAR
#define B BPF_DEVCG_DEV_BLOCK
#define R BPF_DEVCG_ACC_READ
#define W BPF_DEVCG_ACC_WRITE
#define M BPF_DEVCG_ACC_MKNOD

/* What Docker and Podman send: deny everything, then a few allows. */
static void
test_deny_all_then_allow (void **state)
{
        struct oci_device_rule rules[] = {
                {false, 'a', -1, -1, "rwm"},
                {true, 'c', 10, 229, "rw"},
                {true, 'b', 8, -1, "r"},
        };
        struct prog p = compile (rules, ARRAY_SIZE (rules));

        assert_int_equal (run (p.insns, p.n, C, R | W, 10, 229), 1); /* allowed fuse */
        assert_int_equal (run (p.insns, p.n, C, R, 10, 229), 1);
        assert_int_equal (run (p.insns, p.n, C, M, 10, 229), 1);     /* mknod: default rule */
        assert_int_equal (run (p.insns, p.n, C, R | W, 10, 200), 0); /* tun: not listed */
        assert_int_equal (run (p.insns, p.n, B, R, 8, 3), 1);        /* any minor of 8 */
        assert_int_equal (run (p.insns, p.n, B, R | W, 8, 3), 0);    /* but read only */
        assert_int_equal (run (p.insns, p.n, C, R, 8, 3), 0);        /* block rule, char request */
        /* the defaults */
        assert_int_equal (run (p.insns, p.n, C, R | W, 1, 3), 1);   /* null */
        assert_int_equal (run (p.insns, p.n, C, R | W, 1, 9), 1);   /* urandom */
        assert_int_equal (run (p.insns, p.n, C, R | W, 5, 2), 1);   /* ptmx */
        assert_int_equal (run (p.insns, p.n, C, R | W, 136, 7), 1); /* a pty */
        assert_int_equal (run (p.insns, p.n, C, R | W, 1, 1), 0);   /* /dev/mem */
        assert_int_equal (run (p.insns, p.n, B, M, 253, 0), 1);     /* mknod of a block node */
        free (p.insns);
}

/* The last matching rule wins: a later deny overrides an earlier allow. */
static void
test_last_match_wins (void **state)
{
        struct oci_device_rule rules[] = {
                {true, 'a', -1, -1, "rwm"}, /* default allow */
                {false, 'c', 10, 229, "rwm"},
                {false, 'c', 1, -1, "w"}, /* no writes to major 1... */
        };
        struct prog p = compile (rules, ARRAY_SIZE (rules));

        assert_int_equal (run (p.insns, p.n, C, R | W, 10, 229), 0); /* denied explicitly */
        assert_int_equal (run (p.insns, p.n, C, R | W, 10, 200), 1); /* default allow */
        assert_int_equal (run (p.insns, p.n, B, R | W, 7, 0), 1);
        assert_int_equal (run (p.insns, p.n, C, R, 1, 1), 1);     /* read of 1:1 is fine */
        assert_int_equal (run (p.insns, p.n, C, R | W, 1, 1), 0); /* a write is asked: denied */
        assert_int_equal (run (p.insns, p.n, C, R | W, 1, 3), 1); /* ...but null comes later, allowed */
        free (p.insns);
}

/* A second "a *:* rwm" resets: everything before it is forgotten. */
static void
test_reset_forgets_earlier_rules (void **state)
{
        struct oci_device_rule rules[] = {
                {true, 'c', 10, 229, "rwm"},
                {false, 'a', -1, -1, "rwm"},
        };
        struct prog p = compile (rules, ARRAY_SIZE (rules));

        assert_int_equal (run (p.insns, p.n, C, R, 10, 229), 0);
        assert_int_equal (run (p.insns, p.n, C, R, 1, 5), 1); /* zero */
        free (p.insns);
}

/* No rules at all: default deny plus the standard devices. */
static void
test_no_rules_defaults_only (void **state)
{
        struct prog p = compile (NULL, 0);

        assert_int_equal (run (p.insns, p.n, C, R | W, 1, 7), 1); /* full */
        assert_int_equal (run (p.insns, p.n, C, R | W, 5, 0), 1); /* tty */
        assert_int_equal (run (p.insns, p.n, C, R | W, 5, 1), 1); /* console */
        assert_int_equal (run (p.insns, p.n, C, R | W, 10, 229), 0);
        assert_int_equal (run (p.insns, p.n, C, R | W, 4, 1), 0); /* a vt */
        free (p.insns);
}

/* A partial "a" rule is an ordinary rule for both device types. */
static void
test_type_a_matches_both (void **state)
{
        struct oci_device_rule rules[] = {
                {false, 'a', -1, -1, "rwm"},
                {true, 'a', 42, -1, "r"},
                {true, 0, 43, 1, NULL}, /* no type, no access: a, rwm */
        };
        struct prog p = compile (rules, ARRAY_SIZE (rules));

        assert_int_equal (run (p.insns, p.n, C, R, 42, 9), 1);
        assert_int_equal (run (p.insns, p.n, B, R, 42, 9), 1);
        assert_int_equal (run (p.insns, p.n, B, W, 42, 9), 0);
        assert_int_equal (run (p.insns, p.n, B, R | W | M, 43, 1), 1);
        assert_int_equal (run (p.insns, p.n, C, R, 43, 2), 0);
        free (p.insns);
}

static void
test_bad_rules_are_errors (void **state)
{
        struct oci_device_rule bad_type[] = {{true, 'p', 1, 1, "r"}};
        struct oci_device_rule bad_access[] = {{true, 'c', 1, 1, "rx"}};
        struct agent_dev_rule *v = NULL;
        moat_error_t err = NULL;
        size_t n;
        bool def;

        assert_int_equal (agent_devices_rules (bad_type, 1, &v, &n, &def, &err), -1);
        assert_non_null (strstr (err->msg, "linux.resources.devices[0]: type"));
        moat_error_release (&err);
        assert_int_equal (agent_devices_rules (bad_access, 1, &v, &n, &def, &err), -1);
        assert_non_null (strstr (err->msg, "access \"rx\""));
        moat_error_release (&err);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_deny_all_then_allow),         cmocka_unit_test (test_last_match_wins),
                cmocka_unit_test (test_reset_forgets_earlier_rules), cmocka_unit_test (test_no_rules_defaults_only),
                cmocka_unit_test (test_type_a_matches_both),         cmocka_unit_test (test_bad_rules_are_errors),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}
