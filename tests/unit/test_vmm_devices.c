/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm legacy devices, buses, CPUID masks and configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_dev.h"
#include "moat/vmm_devices.h"

static int irq_level = -1, irq_changes;

static void
fake_irq (void *opaque, int level)
{
        irq_level = level;
        irq_changes++;
}

static uint8_t
rd (struct vmm_serial *s, int reg)
{
        uint8_t v;
        vmm_serial_io (s, reg, &v, 1, false);
        return v;
}

static void
wr (struct vmm_serial *s, int reg, uint8_t v)
{
        vmm_serial_io (s, reg, &v, 1, true);
}

static void
test_serial (void **state)
{
        int p[2];
        assert_int_equal (pipe (p), 0);
        struct vmm_serial s;
        irq_level = -1;
        vmm_serial_init (&s, p[1], fake_irq, NULL);
        /* output goes to the fd */
        wr (&s, 0, 'h');
        wr (&s, 0, 'i');
        char buf[4] = {0};
        assert_int_equal (read (p[0], buf, 2), 2);
        assert_string_equal (buf, "hi");
        assert_true (rd (&s, 5) & 0x60); /* THRE | TEMT */
        /* divisor latch */
        wr (&s, 3, 0x80);
        wr (&s, 0, 0x01);
        wr (&s, 1, 0x00);
        assert_int_equal (rd (&s, 0), 0x01);
        wr (&s, 3, 0x03);
        assert_int_equal (read (p[0], buf, 0), 0); /* the DLL write printed nothing */
        /* scratch */
        wr (&s, 7, 0x5a);
        assert_int_equal (rd (&s, 7), 0x5a);
        /* loopback, as Linux probes it: MCR = LOOP|OUT2|RTS -> MSR top nibble 0x90 */
        wr (&s, 4, 0x1a);
        assert_int_equal (rd (&s, 6) & 0xf0, 0x90);
        wr (&s, 4, 0x08);
        assert_int_equal (rd (&s, 6) & 0xf0, 0xb0);
        /* THR-empty interrupt: raised when enabled, cleared by reading IIR */
        irq_changes = 0;
        wr (&s, 1, 0x02);
        assert_int_equal (irq_level, 1);
        assert_int_equal (rd (&s, 2) & 0x0f, 0x02);
        assert_int_equal (irq_level, 0);
        assert_int_equal (rd (&s, 2) & 0x0f, 0x01);
        /* input: DR set, RDI raised, read drains it */
        wr (&s, 1, 0x01);
        assert_int_equal (vmm_serial_input (&s, (const uint8_t *)"ab", 2), 2);
        assert_int_equal (irq_level, 1);
        assert_true (rd (&s, 5) & 0x01);
        assert_int_equal (rd (&s, 2) & 0x0f, 0x04);
        assert_int_equal (rd (&s, 0), 'a');
        assert_int_equal (rd (&s, 0), 'b');
        assert_false (rd (&s, 5) & 0x01);
        assert_int_equal (irq_level, 0);
        /* the receive buffer is bounded */
        uint8_t many[100];
        memset (many, 'x', sizeof many);
        assert_int_equal (vmm_serial_input (&s, many, sizeof many), SERIAL_RX_SIZE);
        close (p[0]);
        close (p[1]);
}

static void
test_exit_codes (void **state)
{
        assert_int_equal (vmm_exit_status_code (0), VMM_EXIT_POWEROFF);
        assert_int_equal (vmm_exit_status_code (1), 17);
        assert_int_equal (vmm_exit_status_code (42), 58);
        assert_int_equal (vmm_exit_status_code (111), 127);
        assert_int_equal (vmm_exit_status_code (255), 127);
}

static int hits;
static uint64_t last_off;
static void
fake_dev (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
        hits++;
        last_off = off;
        if (!is_write)
                memset (data, 0x11, len);
}

static void
test_bus (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct vmm_io_bus bus = {0};
        assert_int_equal (vmm_bus_add (&bus, 0x3f8, 8, fake_dev, NULL, "serial", &err), 0);
        assert_int_equal (vmm_bus_add (&bus, 0x3fc, 8, fake_dev, NULL, "other", &err), -1);
        assert_non_null (strstr (err->msg, "overlaps serial"));
        uint8_t d[4];
        assert_true (vmm_bus_access (&bus, 0x3fd, d, 1, false));
        assert_int_equal (last_off, 5);
        assert_int_equal (d[0], 0x11);
        assert_false (vmm_bus_access (&bus, 0x3ff, d, 4, false)); /* crosses the end */
        assert_false (vmm_bus_access (&bus, 0x60, d, 1, false));
        assert_int_equal (d[0], 0xff);
        vmm_bus_free (&bus);
}

static void
test_cpuid (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct vmm_cpuid_mask m;
        assert_int_equal (vmm_cpuid_mask_parse ("0x1:ecx:0x20", &m, &err), 0);
        assert_int_equal (m.leaf, 1);
        assert_int_equal (m.reg, 2);
        assert_int_equal (m.clear, 0x20);
        assert_int_equal (vmm_cpuid_mask_parse ("7:EBX:0xffffffff", &m, &err), 0);
        assert_int_equal (m.reg, 1);
        assert_int_equal (vmm_cpuid_mask_parse ("1:exx:1", &m, &err), -1);
        assert_non_null (strstr (err->msg, "register `exx`"));
        moat_error_release (&err);
        assert_int_equal (vmm_cpuid_mask_parse ("1:ecx", &m, &err), -1);
        moat_error_release (&err);

        cleanup_free struct kvm_cpuid2 *c = xzalloc (sizeof *c + 3 * sizeof (struct kvm_cpuid_entry2));
        c->nent = 3;
        c->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ebx = 0xff00abcd, .ecx = 0x21};
        c->entries[1] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 0};
        c->entries[2] = (struct kvm_cpuid_entry2){.function = 7, .ebx = 0xffff};
        struct vmm_cpuid_mask masks[] = {{1, 2, 0x20}, {7, 1, 0xff00}};
        vmm_cpuid_fixup (c, 2, 4, masks, 2);
        assert_int_equal (c->entries[0].ebx, 0x0204abcd);
        assert_int_equal (c->entries[0].ecx, 0x80000001); /* bit 5 cleared, hypervisor bit set */
        assert_int_equal (c->entries[1].edx, 2);
        assert_int_equal (c->entries[2].ebx, 0x00ff);
}

static void
test_config (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct vmm_config c;
        vmm_config_init (&c);
        assert_int_equal (vmm_config_validate (&c, &err), -1);
        assert_non_null (strstr (err->msg, "no kernel"));
        moat_error_release (&err);
        assert_int_equal (vmm_config_load_json (&c,
                                                "{\"kernel\": \"/k\", \"memory_mib\": 512, \"cpus\": 2,"
                                                " \"cmdline\": \"quiet\", \"cpuid_mask\": [\"1:ecx:1\"],"
                                                " \"devices\": [{\"type\": \"rng\"}]}",
                                                &err),
                          0);
        assert_string_equal (c.kernel, "/k");
        assert_int_equal (c.memory_mib, 512);
        assert_int_equal (c.cpus, 2);
        assert_true (c.rng);
        assert_int_equal (c.nmasks, 1);
        assert_int_equal (vmm_config_validate (&c, &err), 0);
        assert_int_equal (vmm_config_load_json (&c, "{\"kernal\": \"/k\"}", &err), -1);
        assert_string_equal (err->msg, "unknown key `kernal`");
        moat_error_release (&err);
        assert_int_equal (vmm_config_load_json (&c, "{\"cpus\": 1000}", &err), -1);
        assert_non_null (strstr (err->msg, "`cpus`"));
        moat_error_release (&err);
        assert_int_equal (vmm_config_load_json (&c, "{\"devices\": [{\"type\": \"gpu\"}]}", &err), -1);
        assert_non_null (strstr (err->msg, "unknown device type `gpu`"));
        moat_error_release (&err);
        assert_int_equal (vmm_config_load_json (&c, "{\"kernel\": ", &err), -1);
        assert_non_null (strstr (err->msg, "invalid JSON"));
        vmm_config_free (&c);
}

/* ---- i8042 ---- */
static int kbd_irq = -1, aux_irq = -1, resets;

static void
i8042_fake_irq (void *opaque, uint32_t irq, int level)
{
        if (irq == VMM_I8042_KBD_IRQ)
                kbd_irq = level;
        else if (irq == VMM_I8042_AUX_IRQ)
                aux_irq = level;
        else
                fail_msg ("i8042 raised IRQ %u", irq);
}

static void
i8042_fake_reset (void *opaque)
{
        resets++;
}

static uint8_t
kbc_in (struct vmm_i8042 *k, int port)
{
        uint8_t v;
        vmm_i8042_io (k, port - 0x60, &v, 1, false);
        return v;
}

static void
kbc_out (struct vmm_i8042 *k, int port, uint8_t v)
{
        vmm_i8042_io (k, port - 0x60, &v, 1, true);
}

/* A command with an optional parameter; returns the status the reply came
 * with (OBF must be set) and the reply in *r. */
static uint8_t
kbc_cmd (struct vmm_i8042 *k, uint8_t cmd, int param, uint8_t *r)
{
        kbc_out (k, 0x64, cmd);
        if (param >= 0)
                kbc_out (k, 0x60, param);
        uint8_t st = kbc_in (k, 0x64);
        assert_true (st & 0x01);
        *r = kbc_in (k, 0x60);
        assert_false (kbc_in (k, 0x64) & 0x01);
        return st;
}

/* What Linux's i8042 driver sends while probing (drivers/input/serio/
 * i8042.c: controller check, init, aux check, mux check, port enables,
 * then atkbd/psmouse talking to the ports), with the answers it needs to
 * finish at once and to find no keyboard and no mouse. */
static void
test_i8042 (void **state)
{
        struct vmm_i8042 k;
        uint8_t r, st;
        kbd_irq = aux_irq = -1;
        resets = 0;
        vmm_i8042_init (&k, i8042_fake_irq, i8042_fake_reset, NULL);
        /* i8042_controller_check: the flush finds an empty output buffer */
        st = kbc_in (&k, 0x64);
        assert_false (st & 0x01);
        assert_true (st & 0x10); /* keyboard not inhibited: no "Keylock active" */
        /* i8042_controller_init: read CTR twice, write it back */
        kbc_cmd (&k, 0x20, -1, &r);
        uint8_t ctr = r;
        assert_int_equal (ctr & 0x03, 0); /* no interrupts yet */
        kbc_cmd (&k, 0x20, -1, &r);
        assert_int_equal (r, ctr);
        kbc_out (&k, 0x64, 0x60);
        assert_true (kbc_in (&k, 0x64) & 0x08); /* CMDDAT: the last write was a command */
        kbc_out (&k, 0x60, 0x30 | 0x04);
        assert_false (kbc_in (&k, 0x64) & 0x09);
        kbc_cmd (&k, 0x20, -1, &r);
        assert_int_equal (r, 0x34);
        /* self-test and interface tests */
        assert_int_equal (kbc_cmd (&k, 0xaa, -1, &r) & 0x60, 0);
        assert_int_equal (r, 0x55);
        kbc_cmd (&k, 0xab, -1, &r);
        assert_int_equal (r, 0);
        kbc_cmd (&k, 0xa9, -1, &r);
        assert_int_equal (r, 0);
        /* i8042_check_aux: loopback comes from the aux side */
        st = kbc_cmd (&k, 0xd3, 0x5a, &r);
        assert_int_equal (r, 0x5a);
        assert_int_equal (st & 0x60, 0x20);
        kbc_out (&k, 0x64, 0xa7);
        kbc_cmd (&k, 0x20, -1, &r);
        assert_true (r & 0x20);
        kbc_out (&k, 0x64, 0xa8);
        kbc_cmd (&k, 0x20, -1, &r);
        assert_false (r & 0x20);
        /* the aux IRQ test: with AUXINT on, the loopback byte raises IRQ 12
         * and reading it lowers it */
        kbc_out (&k, 0x64, 0x60);
        kbc_out (&k, 0x60, 0x04 | 0x02);
        assert_int_equal (aux_irq, -1);
        kbc_out (&k, 0x64, 0xd3);
        kbc_out (&k, 0x60, 0xa5);
        assert_int_equal (aux_irq, 1);
        assert_int_equal (kbd_irq, -1);
        assert_int_equal (kbc_in (&k, 0x64) & 0x21, 0x21);
        assert_int_equal (kbc_in (&k, 0x60), 0xa5);
        assert_int_equal (aux_irq, 0);
        /* i8042_check_mux: the third loopback byte comes back unchanged,
         * so no multiplexer */
        kbc_cmd (&k, 0xd3, 0xa4, &r);
        assert_int_equal (r, 0xa4);
        /* keyboard loopback */
        st = kbc_cmd (&k, 0xd2, 0x11, &r);
        assert_int_equal (r, 0x11);
        assert_int_equal (st & 0x60, 0);
        /* ports enabled with interrupts: a byte for the keyboard (atkbd's
         * GETID) times out with 0xfe on IRQ 1, one for the mouse (0xd4,
         * psmouse's GETID) on IRQ 12 */
        kbc_out (&k, 0x64, 0x60);
        kbc_out (&k, 0x60, 0x04 | 0x03);
        kbc_out (&k, 0x60, 0xf2);
        assert_int_equal (kbd_irq, 1);
        st = kbc_in (&k, 0x64);
        assert_int_equal (st & 0x61, 0x41);
        assert_int_equal (kbc_in (&k, 0x60), 0xfe);
        assert_int_equal (kbd_irq, 0);
        kbc_out (&k, 0x64, 0xd4);
        kbc_out (&k, 0x60, 0xf2);
        assert_int_equal (aux_irq, 1);
        assert_int_equal (kbc_in (&k, 0x64) & 0x61, 0x61);
        assert_int_equal (kbc_in (&k, 0x60), 0xfe);
        assert_int_equal (aux_irq, 0);
        assert_int_equal (kbd_irq, 0);
        /* output port, unknown commands, the other ports */
        kbc_cmd (&k, 0xd0, -1, &r);
        assert_true (r & 0x01);
        kbc_out (&k, 0x64, 0xc8);
        assert_false (kbc_in (&k, 0x64) & 0x01);
        assert_int_equal (kbc_in (&k, 0x61), 0);
        /* command 0xfe resets the CPU; nothing else does */
        assert_int_equal (resets, 0);
        kbc_out (&k, 0x64, 0xfe);
        assert_int_equal (resets, 1);
        pthread_mutex_destroy (&k.lock);
}

/* The device registry: attach order (it fixes the MMIO windows and IRQs)
 * and what each device counts in a configuration. */
static void
test_registry (void **state)
{
        cleanup_error moat_error_t err = NULL;
        static const char *const order[] = {"serial",       "i8042",     "exit",       "virtio-rng",
                                            "virtio-vsock", "virtio-9p", "virtio-net", "virtio-console"};
        assert_int_equal (vmm_ndevices, sizeof order / sizeof order[0]);
        struct vmm_config c;
        vmm_config_init (&c);
        struct vmm_dev_env env = {.cfg = &c, .serial_fd = 1, .console_fd = -1};
        for (size_t i = 0; i < vmm_ndevices; i++) {
                const struct vmm_device *d = vmm_devices[i];
                assert_string_equal (d->name, order[i]);
                /* port-I/O devices attach themselves; virtio ones are made for a window */
                assert_true ((d->attach != NULL) != (d->virtio_new != NULL));
                assert_int_equal (d->count ? d->count (&env) : 1, d->attach ? 1 : 0);
        }
        c.rng = true;
        assert_int_equal (vmm_config_add_share (&c, "a=/tmp", &err), 0);
        assert_int_equal (vmm_config_add_share (&c, "b=/", &err), 0);
        env.console_fd = 1;
        assert_int_equal (vmm_dev_virtio_rng.count (&env), 1);
        assert_int_equal (vmm_dev_virtio_9p.count (&env), 2);
        assert_int_equal (vmm_dev_virtio_console.count (&env), 1);
        assert_int_equal (vmm_dev_virtio_vsock.count (&env), 0);
        assert_int_equal (vmm_dev_virtio_net.count (&env), 0);
        char label[64];
        vmm_dev_virtio_9p.label (&env, 1, label, sizeof label);
        assert_string_equal (label, "virtio-9p b");
        vmm_config_free (&c);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_serial),   cmocka_unit_test (test_exit_codes), cmocka_unit_test (test_bus),
                cmocka_unit_test (test_cpuid),    cmocka_unit_test (test_config),     cmocka_unit_test (test_i8042),
                cmocka_unit_test (test_registry),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}
