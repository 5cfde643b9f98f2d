/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm: boots an ELF vmlinux (or a probe guest) in a KVM microVM.
 *
 * Exit status: 0 guest powered off, 1 bad usage or setup failure, 2 guest
 * reset (i8042 or triple fault), 3 VMM/KVM error while running, 4 stopped by
 * a signal, 16+s the guest wrote status s (1..111) to the exit device at
 * port 0x501 (127 for larger s). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_boot.h"
#include "moat/vmm_config.h"
#include "moat/vmm_dev.h"
#include "moat/vmm_virtio.h"

static const char usage[] = "Usage: moat-vmm --kernel FILE [options]\n"
                            "  --kernel FILE        ELF vmlinux (or probe) to boot, 64-bit entry\n"
                            "  --initrd FILE        initial ramdisk\n"
                            "  --cmdline STRING     kernel command line\n"
                            "  --memory MIB         guest RAM in MiB (default 128)\n"
                            "  --cpus N             vCPUs (default 1)\n"
                            "  --serial-log FILE|-  where COM1 output goes (default -: stdout)\n"
                            "  --serial-stdin       feed stdin to COM1\n"
                            "  --rng                add a virtio-rng device (virtio-mmio)\n"
                            "  --cpuid-mask L:R:B   clear bits B of register R (eax..edx) in CPUID leaf L\n"
                            "  --config FILE        JSON configuration (later options override it)\n"
                            "  --debug              log unhandled exits\n"
                            "Exit status: 0 poweroff, 1 usage/setup error, 2 guest reset, 3 VMM error,\n"
                            "4 signal, 16+s guest wrote status s to port 0x501.\n";

enum {
        OPT_KERNEL = 256,
        OPT_INITRD,
        OPT_CMDLINE,
        OPT_MEMORY,
        OPT_CPUS,
        OPT_SERIAL_LOG,
        OPT_SERIAL_STDIN,
        OPT_RNG,
        OPT_CPUID_MASK,
        OPT_CONFIG,
        OPT_DEBUG,
        OPT_HELP
};

static const struct option options[] = {
        {"kernel", required_argument, NULL, OPT_KERNEL},
        {"initrd", required_argument, NULL, OPT_INITRD},
        {"cmdline", required_argument, NULL, OPT_CMDLINE},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"serial-log", required_argument, NULL, OPT_SERIAL_LOG},
        {"serial-stdin", no_argument, NULL, OPT_SERIAL_STDIN},
        {"rng", no_argument, NULL, OPT_RNG},
        {"cpuid-mask", required_argument, NULL, OPT_CPUID_MASK},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"debug", no_argument, NULL, OPT_DEBUG},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

static int
parse_num (const char *opt, const char *s, unsigned long long max, unsigned long long *out, moat_error_t *err)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull (s, &end, 0);
        if (errno || end == s || *end || v > max || s[0] == '-')
                return moat_make_error (err, 0, "--%s `%s`: expected a number up to %llu", opt, s, max);
        *out = v;
        return 0;
}

/* 1: --help; 0: config ready; -1: error. */
static int
parse_args (int argc, char **argv, struct vmm_config *c, moat_error_t *err)
{
        int o;
        unsigned long long v;
        while ((o = getopt_long (argc, argv, "", options, NULL)) != -1) {
                switch (o) {
                case OPT_KERNEL:
                        free (c->kernel);
                        c->kernel = xstrdup (optarg);
                        break;
                case OPT_INITRD:
                        free (c->initrd);
                        c->initrd = xstrdup (optarg);
                        break;
                case OPT_CMDLINE:
                        free (c->cmdline);
                        c->cmdline = xstrdup (optarg);
                        break;
                case OPT_MEMORY:
                        if (parse_num ("memory", optarg, 1 << 20, &v, err) < 0)
                                return -1;
                        c->memory_mib = v;
                        break;
                case OPT_CPUS:
                        if (parse_num ("cpus", optarg, VMM_MAX_CPUS, &v, err) < 0)
                                return -1;
                        c->cpus = v;
                        break;
                case OPT_SERIAL_LOG:
                        free (c->serial_log);
                        c->serial_log = xstrdup (optarg);
                        break;
                case OPT_SERIAL_STDIN:
                        c->serial_stdin = true;
                        break;
                case OPT_RNG:
                        c->rng = true;
                        break;
                case OPT_CPUID_MASK:
                        if (vmm_config_add_mask (c, optarg, err) < 0)
                                return -1;
                        break;
                case OPT_CONFIG: {
                        cleanup_free char *text = NULL;
                        if (read_file (optarg, &text, NULL, err) < 0)
                                return -1;
                        if (vmm_config_load_json (c, text, err) < 0)
                                return moat_error_wrap (err, "config %s", optarg);
                        break;
                }
                case OPT_DEBUG:
                        c->debug = true;
                        break;
                case OPT_HELP:
                        return 1;
                default:
                        return moat_make_error (err, 0, "bad option (see --help)");
                }
        }
        if (optind < argc)
                return moat_make_error (err, 0, "unexpected argument `%s`", argv[optind]);
        return vmm_config_validate (c, err);
}

/* Sets the VM up; returns 0 or -1 with err. */
static int
setup (struct vmm *vm, struct vmm_config *c, struct vmm_serial *serial, int serial_fd, moat_error_t *err)
{
        cleanup_free char *kernel = NULL, *initrd = NULL;
        size_t klen = 0, ilen = 0;
        if (read_file (c->kernel, &kernel, &klen, err) < 0)
                return moat_error_wrap (err, "kernel");
        if (c->initrd && read_file (c->initrd, &initrd, &ilen, err) < 0)
                return moat_error_wrap (err, "initrd");

        vm->masks = c->masks;
        vm->nmasks = c->nmasks;
        vm->debug = c->debug;
        if (vmm_open (vm, c->memory_mib << 20, c->cpus, err) < 0)
                return -1;
        if (vmm_serial_attach (vm, serial, serial_fd, c->serial_stdin ? 0 : -1, err) < 0)
                return -1;
        if (vmm_i8042_attach (vm, err) < 0 || vmm_exitdev_attach (vm, err) < 0)
                return -1;

        cleanup_free char *cmdline = xstrdup (c->cmdline ? c->cmdline : "");
        if (c->rng) {
                struct vmm_virtio_mmio *dev;
                if (vmm_virtio_rng_attach (vm, &dev, err) < 0)
                        return moat_error_wrap (err, "virtio-rng");
                char *n = xasprintf_r ("%s%s%s", cmdline, *cmdline ? " " : "", dev->cmdline_arg);
                free (cmdline);
                cmdline = n;
        }

        struct vmm_boot_info info = {0};
        if (vmm_load_elf (&vm->mem, kernel, klen, &info, err) < 0)
                return moat_error_wrap (err, "kernel %s", c->kernel);
        if (initrd && vmm_place_initrd (&vm->mem, initrd, ilen, &info, err) < 0)
                return moat_error_wrap (err, "initrd %s", c->initrd);
        if (vmm_setup_boot (&vm->mem, cmdline, c->cpus, &info, err) < 0)
                return -1;
        if (vmm_create_vcpus (vm, err) < 0)
                return -1;
        return vmm_set_boot_regs (vm, info.entry, BOOT_ZERO_PAGE_ADDR, err);
}

int
main (int argc, char **argv)
{
        cleanup_error moat_error_t err = NULL;
        struct vmm_config c;
        vmm_config_init (&c);
        moat_log_init (NULL, 0, 0);
        int r = parse_args (argc, argv, &c, &err);
        if (r > 0) {
                fputs (usage, stdout);
                vmm_config_free (&c);
                return 0;
        }
        if (r < 0) {
                moat_error_print (&err, "moat-vmm");
                vmm_config_free (&c);
                return VMM_EXIT_USAGE;
        }
        if (c.debug)
                moat_log_init (NULL, 0, 1);

        cleanup_close int log_fd = -1;
        int serial_fd = STDOUT_FILENO;
        if (c.serial_log && strcmp (c.serial_log, "-") != 0) {
                log_fd = open (c.serial_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (log_fd < 0) {
                        moat_make_error (&err, errno, "serial log %s", c.serial_log);
                        moat_error_print (&err, "moat-vmm");
                        vmm_config_free (&c);
                        return VMM_EXIT_USAGE;
                }
                serial_fd = log_fd;
        }

        struct vmm vm = {0};
        struct vmm_serial serial;
        int code;
        if (setup (&vm, &c, &serial, serial_fd, &err) < 0) {
                moat_error_print (&err, "moat-vmm");
                code = VMM_EXIT_USAGE;
        } else if ((code = vmm_run (&vm, &err)) < 0) {
                moat_error_print (&err, "moat-vmm");
                code = VMM_EXIT_ERROR;
        } else if (vm.exit_msg && (code == VMM_EXIT_ERROR || c.debug || code == VMM_EXIT_REBOOT)) {
                fprintf (stderr, "moat-vmm: %s\n", vm.exit_msg);
        }
        vmm_virtio_free_all (&vm);
        vmm_close (&vm);
        vmm_config_free (&c);
        return code;
}
