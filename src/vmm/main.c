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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_boot.h"
#include "moat/vmm_config.h"
#include "moat/vmm_dev.h"
#include "moat/vmm_devices.h"
#include "moat/vmm_jail.h"
#include "moat/vmm_virtio.h"
#include "moat/vsock.h"

static const char usage[] = "Usage: moat-vmm --kernel FILE [options]\n"
                            "  --kernel FILE        ELF vmlinux (or probe) to boot, 64-bit entry\n"
                            "  --initrd FILE        initial ramdisk\n"
                            "  --cmdline STRING     kernel command line\n"
                            "  --memory MIB         guest RAM in MiB (default 128)\n"
                            "  --cpus N             vCPUs (default 1)\n"
                            "  --serial-log FILE|-  where COM1 output goes (default -: stdout)\n"
                            "  --serial-stdin       feed stdin to COM1\n"
                            "  --rng                add a virtio-rng device (virtio-mmio)\n"
                            "  --share TAG=PATH     add a virtio-9p device serving directory PATH (9P2000.L)\n"
                            "                       with mount tag TAG (repeatable); served by a confined worker\n"
                            "                       process, guest RAM then comes from a memfd\n"
                            "  --vsock-socket PATH  add a virtio-vsock device; host side is the hybrid-vsock\n"
                            "                       socket PATH (\"CONNECT <port>\\n\"; guest -> CID 2 port P\n"
                            "                       goes to PATH_P)\n"
                            "  --guest-cid N        the guest's vsock CID (default 3)\n"
                            "  --tap NAME           add a virtio-net device on host tap NAME (created if missing)\n"
                            "  --mac MAC            the guest's MAC for --tap (default: random 02:4d:54:xx:xx:xx)\n"
                            "  --console-log FILE|- add a virtio-console device (guest hvc0); its output goes to\n"
                            "                       FILE or stdout\n"
                            "  --memfd              guest RAM from a memfd, MAP_SHARED\n"
                            "  --seccomp MODE       kill (default), trap or errno (debugging), off\n"
                            "  --jail               close inherited fds, own mount namespace; once the guest\n"
                            "                       runs, its root holds only the vsock socket's directory\n"
                            "                       (read-only). Capabilities are dropped and rlimits set\n"
                            "                       with or without it\n"
                            "  --print-seccomp[=WHO]  list the syscalls allowed once the guest runs, in the\n"
                            "                       VMM (WHO=vmm, default) or in the virtio-9p worker process\n"
                            "                       (WHO=9p-worker)\n"
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
        OPT_VSOCK_SOCKET,
        OPT_GUEST_CID,
        OPT_MEMFD,
        OPT_SECCOMP,
        OPT_PRINT_SECCOMP,
        OPT_SHARE,
        OPT_TAP,
        OPT_MAC,
        OPT_CONSOLE_LOG,
        OPT_JAIL,
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
        {"vsock-socket", required_argument, NULL, OPT_VSOCK_SOCKET},
        {"guest-cid", required_argument, NULL, OPT_GUEST_CID},
        {"memfd", no_argument, NULL, OPT_MEMFD},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"print-seccomp", optional_argument, NULL, OPT_PRINT_SECCOMP},
        {"share", required_argument, NULL, OPT_SHARE},
        {"tap", required_argument, NULL, OPT_TAP},
        {"mac", required_argument, NULL, OPT_MAC},
        {"console-log", required_argument, NULL, OPT_CONSOLE_LOG},
        {"jail", no_argument, NULL, OPT_JAIL},
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

static bool print_seccomp;
static bool jail;
static char *jail_keep; /* the vsock socket's directory, absolute */
static enum vmm_seccomp_filter print_filter = VMM_FILTER_VMM;

/* Syscalls a filter needs beyond seccomp.c's base lists: the VMM needs none
 * for any device (the 9p server's file syscalls live in its worker). */
static const char *const *
seccomp_extra (enum vmm_seccomp_filter which)
{
        return which == VMM_FILTER_9P_WORKER ? vmm_virtio_9p_syscalls : NULL;
}

/* 1: --help; 2: --print-seccomp; 0: config ready; -1: error. */
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
                case OPT_VSOCK_SOCKET:
                        free (c->vsock_socket);
                        c->vsock_socket = xstrdup (optarg);
                        break;
                case OPT_GUEST_CID:
                        if (parse_num ("guest-cid", optarg, UINT32_MAX - 1, &v, err) < 0)
                                return -1;
                        c->guest_cid = v;
                        break;
                case OPT_MEMFD:
                        c->memfd = true;
                        break;
                case OPT_SECCOMP:
                        if (vmm_seccomp_parse_mode (optarg, &c->seccomp, err) < 0)
                                return -1;
                        break;
                case OPT_PRINT_SECCOMP:
                        print_seccomp = true;
                        if (optarg == NULL || strcmp (optarg, "vmm") == 0)
                                print_filter = VMM_FILTER_VMM;
                        else if (strcmp (optarg, "9p-worker") == 0)
                                print_filter = VMM_FILTER_9P_WORKER;
                        else
                                return moat_make_error (err, 0, "--print-seccomp `%s`: expected vmm or 9p-worker",
                                                        optarg);
                        break;
                case OPT_SHARE:
                        if (vmm_config_add_share (c, optarg, err) < 0)
                                return -1;
                        break;
                case OPT_TAP:
                        free (c->tap);
                        c->tap = xstrdup (optarg);
                        break;
                case OPT_MAC:
                        if (vmm_config_set_mac (c, optarg, err) < 0)
                                return -1;
                        break;
                case OPT_CONSOLE_LOG:
                        free (c->console_log);
                        c->console_log = xstrdup (optarg);
                        break;
                case OPT_JAIL:
                        jail = true;
                        break;
                case OPT_HELP:
                        return 1;
                default:
                        return moat_make_error (err, 0, "bad option (see --help)");
                }
        }
        if (optind < argc)
                return moat_make_error (err, 0, "unexpected argument `%s`", argv[optind]);
        if (print_seccomp)
                return 2;
        return vmm_config_validate (c, err);
}

static enum vmm_seccomp_mode seccomp_mode;
static const char *const *seccomp_extra_syscalls;

/* On the main thread, the vCPUs parked (each dropped its own
 * capabilities): jail, rlimits, capabilities, then seccomp. */
static int
confine (struct vmm *vm, moat_error_t *err)
{
        (void)vm;
        if (jail && vmm_jail_pivot (jail_keep, err) < 0)
                return -1;
        if (vmm_set_rlimits (err) < 0 || vmm_caps_drop_all (err) < 0)
                return moat_error_wrap (err, "confine");
        return vmm_seccomp_install (seccomp_mode, seccomp_extra_syscalls, err);
}

/* The directory of the vsock socket(s), absolute: what the jail keeps. */
static char *
socket_dir (const char *sock)
{
        char cwd[PATH_MAX];
        cleanup_free char *abs = NULL;
        char *slash;
        if (sock == NULL)
                return NULL;
        if (sock[0] == '/')
                abs = xstrdup (sock);
        else if (getcwd (cwd, sizeof cwd) != NULL)
                abs = xasprintf_r ("%s/%s", cwd, sock);
        else
                return NULL;
        slash = strrchr (abs, '/');
        if (slash == abs)
                return xstrdup ("/");
        *slash = '\0';
        return xstrdup (abs);
}

/* Sets the VM up; returns 0 or -1 with err. */
static int
setup (struct vmm *vm, struct vmm_config *c, struct vmm_dev_env *env, moat_error_t *err)
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
        /* The 9p worker process sees guest RAM through a shared mapping. */
        vm->use_memfd = c->memfd || c->nshares > 0;
        vm->helper_seccomp = c->seccomp;
        seccomp_mode = c->seccomp;
        seccomp_extra_syscalls = seccomp_extra (VMM_FILTER_VMM);
        vm->confine = confine;
        if (vmm_open (vm, c->memory_mib << 20, c->cpus, err) < 0)
                return -1;

        /* every configured device, and their kernel arguments */
        cleanup_free char *cmdline = NULL;
        if (vmm_devices_attach (vm, env, &cmdline, err) < 0)
                return -1;

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
        if (r == 2) {
                r = vmm_seccomp_print_filter (print_filter, stdout, seccomp_extra (print_filter), &err);
                vmm_config_free (&c);
                if (r < 0) {
                        moat_error_print (&err, "moat-vmm");
                        return VMM_EXIT_USAGE;
                }
                return 0;
        }
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
        if (jail) {
                if (vmm_jail_enter (&err) < 0) {
                        moat_error_print (&err, "moat-vmm");
                        vmm_config_free (&c);
                        return VMM_EXIT_USAGE;
                }
                jail_keep = socket_dir (c.vsock_socket);
        }

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

        cleanup_close int console_log_fd = -1;
        int console_fd = -1;
        if (c.console_log && strcmp (c.console_log, "-") == 0) {
                console_fd = STDOUT_FILENO;
        } else if (c.console_log) {
                console_log_fd = open (c.console_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (console_log_fd < 0) {
                        moat_make_error (&err, errno, "console log %s", c.console_log);
                        moat_error_print (&err, "moat-vmm");
                        vmm_config_free (&c);
                        return VMM_EXIT_USAGE;
                }
                console_fd = console_log_fd;
        }

        struct vmm vm = {0};
        struct vmm_dev_env env = {.cfg = &c, .serial_fd = serial_fd, .console_fd = console_fd};
        int code;
        if (setup (&vm, &c, &env, &err) < 0) {
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
        free (jail_keep);
        return code;
}
