/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's confinement once the guest runs: no new privileges and a
 * seccomp allowlist on every thread (installed with TSYNC after the vCPU
 * threads exist and before any of them enters the guest).
 *
 * The list covers what the running VMM does and nothing it did during setup:
 * KVM_RUN and interrupt lines (no new VMs, vCPUs, memory slots), the event
 * loop (epoll, eventfd/timerfd/signalfd reads, irqfd writes), the vsock
 * device's host side (AF_UNIX sockets only: accept the hybrid socket's
 * clients, connect to "<path>_<port>", remove the socket at exit), memory
 * for malloc without PROT_EXEC, the vCPU kick signal and thread teardown,
 * and reaping the virtio-9p worker. No file system calls: the 9p server runs
 * in that worker process, under its own filter (VMM_FILTER_9P_WORKER). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "moat/util.h"
#include "moat/vmm.h"

enum arg_rule {
        ANY,
        IOCTL_KVM,    /* arg1 is one of the run-time KVM ioctls */
        SOCKET_UNIX,  /* arg0 == AF_UNIX */
        NO_EXEC_ARG2, /* (arg2 & PROT_EXEC) == 0: mmap, mprotect */
        FCNTL_FLAGS,  /* arg1 is F_GETFL, F_SETFL, F_GETFD, F_SETFD or F_DUPFD_CLOEXEC */
};

struct rule {
        const char *name;
        enum arg_rule rule;
};

static const struct rule vmm_allowed[] = {
        /* event loop and devices */
        {"read", ANY},
        {"readv", ANY},
        {"getrandom", ANY}, /* virtio-rng */
        {"write", ANY},
        {"close", ANY},
        {"epoll_wait", ANY},
        {"epoll_pwait", ANY},
        {"epoll_ctl", ANY},
        {"timerfd_settime", ANY},
        {"ioctl", IOCTL_KVM},
        /* vsock host side */
        {"socket", SOCKET_UNIX},
        {"connect", ANY},
        {"accept4", ANY},
        {"fcntl", FCNTL_FLAGS}, /* O_NONBLOCK on accepted clients */
        {"sendmsg", ANY},
        {"sendto", ANY},
        {"recvfrom", ANY},
        {"shutdown", ANY},
        {"unlink", ANY},
        /* memory (malloc) */
        {"mmap", NO_EXEC_ARG2},
        {"mprotect", NO_EXEC_ARG2},
        {"munmap", ANY},
        {"madvise", ANY},
        {"brk", ANY},
        /* threads, signals, time */
        {"futex", ANY},
        {"tgkill", ANY},
        {"getpid", ANY},
        {"gettid", ANY},
        {"rt_sigreturn", ANY},
        {"rt_sigprocmask", ANY},
        {"restart_syscall", ANY},
        {"clock_gettime", ANY},
        {"sched_yield", ANY},
        {"newfstatat", ANY},
        {"exit", ANY},
        {"exit_group", ANY},
        /* teardown: kill and reap the virtio-9p worker process */
        {"pidfd_send_signal", ANY},
        {"wait4", ANY},
};

/* The virtio-9p worker process (virtio_9p.c): guest RAM is mapped, the
 * queue's ioeventfd and irqfd and a control socket are its only links to
 * the VMM; no KVM ioctls, no sockets. The file syscalls come from
 * vmm_virtio_9p_syscalls. */
static const struct rule worker_allowed[] = {
        {"read", ANY},
        {"write", ANY},
        {"close", ANY},
        {"poll", ANY},
        {"ppoll", ANY},
        {"fcntl", FCNTL_FLAGS},
        {"mmap", NO_EXEC_ARG2},
        {"mprotect", NO_EXEC_ARG2},
        {"munmap", ANY},
        {"madvise", ANY},
        {"brk", ANY},
        {"futex", ANY},
        {"getpid", ANY},
        {"gettid", ANY},
        {"rt_sigreturn", ANY},
        {"rt_sigprocmask", ANY},
        {"restart_syscall", ANY},
        {"clock_gettime", ANY},
        {"newfstatat", ANY},
        {"exit", ANY},
        {"exit_group", ANY},
};

struct rules {
        const struct rule *r;
        size_t n;
};
static const struct rules filters[] = {
        [VMM_FILTER_VMM] = {vmm_allowed, ARRAY_SIZE (vmm_allowed)},
        [VMM_FILTER_9P_WORKER] = {worker_allowed, ARRAY_SIZE (worker_allowed)},
};

static const unsigned long kvm_ioctls[] = {KVM_RUN, KVM_IRQ_LINE};
static const int fcntl_cmds[] = {F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD_CLOEXEC};

int
vmm_seccomp_parse_mode (const char *s, enum vmm_seccomp_mode *out, moat_error_t *err)
{
        static const char *names[] = {"kill", "trap", "errno", "off"};
        for (size_t i = 0; i < ARRAY_SIZE (names); i++)
                if (strcmp (s, names[i]) == 0) {
                        *out = i;
                        return 0;
                }
        return moat_make_error (err, 0, "seccomp mode `%s`: expected kill, trap, errno or off", s);
}

static void
release_ctx (scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release (*ctx);
}

static bool
in_base (const struct rules *t, const char *name)
{
        for (size_t i = 0; i < t->n; i++)
                if (strcmp (t->r[i].name, name) == 0)
                        return true;
        return false;
}

static int
build (const struct rules *t, uint32_t def_action, const char *const *extra, scmp_filter_ctx *out, moat_error_t *err)
{
        const struct rule *allowed = t->r;
        __attribute__ ((cleanup (release_ctx))) scmp_filter_ctx ctx = seccomp_init (def_action);
        if (ctx == NULL)
                return moat_make_error (err, ENOMEM, "seccomp_init");
        int r = seccomp_attr_set (ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        if (r < 0)
                return moat_make_error (err, -r, "seccomp: thread sync");
        for (size_t i = 0; i < t->n; i++) {
                int nr = seccomp_syscall_resolve_name (allowed[i].name);
                if (nr == __NR_SCMP_ERROR)
                        return moat_make_error (err, 0, "seccomp: unknown syscall %s", allowed[i].name);
                switch (allowed[i].rule) {
                case ANY:
                        r = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, nr, 0);
                        break;
                case IOCTL_KVM:
                        for (size_t j = 0; r >= 0 && j < ARRAY_SIZE (kvm_ioctls); j++)
                                r = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, nr, 1,
                                                      SCMP_A1 (SCMP_CMP_MASKED_EQ, 0xffffffffUL, kvm_ioctls[j]));
                        break;
                case FCNTL_FLAGS:
                        for (size_t j = 0; r >= 0 && j < ARRAY_SIZE (fcntl_cmds); j++)
                                r = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, nr, 1,
                                                      SCMP_A1 (SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[j]));
                        break;
                case SOCKET_UNIX:
                        r = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0 (SCMP_CMP_EQ, AF_UNIX));
                        break;
                case NO_EXEC_ARG2:
                        r = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A2 (SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
                        break;
                }
                if (r < 0)
                        return moat_make_error (err, -r, "seccomp: allow %s", allowed[i].name);
        }
        for (size_t i = 0; extra && extra[i]; i++) {
                if (in_base (t, extra[i]))
                        continue; /* keep the argument filters of the base list */
                int nr = seccomp_syscall_resolve_name (extra[i]);
                if (nr == __NR_SCMP_ERROR)
                        return moat_make_error (err, 0, "seccomp: unknown syscall %s", extra[i]);
                r = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, nr, 0);
                if (r < 0)
                        return moat_make_error (err, -r, "seccomp: allow %s", extra[i]);
        }
        *out = steal_pointer (&ctx);
        return 0;
}

/* TRAP mode: name the syscall (by number: only async-signal-safe calls here). */
static void
sigsys_handler (int sig, siginfo_t *si, void *uc)
{
        (void)sig;
        (void)uc;
        char buf[64] = "moat-vmm: seccomp blocked syscall ";
        size_t n = strlen (buf);
        char digits[12];
        int nd = 0;
        unsigned v = (unsigned)si->si_syscall;
        do
                digits[nd++] = '0' + v % 10;
        while ((v /= 10) && nd < (int)sizeof digits);
        while (nd)
                buf[n++] = digits[--nd];
        buf[n++] = '\n';
        if (write (STDERR_FILENO, buf, n) < 0)
                _exit (VMM_EXIT_ERROR);
        _exit (VMM_EXIT_ERROR);
}

int
vmm_seccomp_install_filter (enum vmm_seccomp_filter which, enum vmm_seccomp_mode mode, const char *const *extra,
                            moat_error_t *err)
{
        uint32_t action;
        switch (mode) {
        case VMM_SECCOMP_OFF:
                return 0;
        case VMM_SECCOMP_TRAP: {
                struct sigaction sa = {.sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO};
                sigemptyset (&sa.sa_mask);
                if (sigaction (SIGSYS, &sa, NULL) < 0)
                        return moat_make_error (err, errno, "seccomp: sigaction SIGSYS");
                action = SCMP_ACT_TRAP;
                break;
        }
        case VMM_SECCOMP_ERRNO:
                action = SCMP_ACT_ERRNO (EPERM);
                break;
        default:
                action = SCMP_ACT_KILL_PROCESS;
                break;
        }
        /* Things libc loads lazily, done now while files can still be opened:
         * the time zone (the first gmtime_r of a log line reads it). */
        tzset ();
        if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return moat_make_error (err, errno, "prctl PR_SET_NO_NEW_PRIVS");
        __attribute__ ((cleanup (release_ctx))) scmp_filter_ctx ctx = NULL;
        if (build (&filters[which], action, extra, &ctx, err) < 0)
                return -1;
        int r = seccomp_load (ctx);
        if (r < 0)
                return moat_make_error (err, -r, "seccomp: load the filter");
        if (r > 0) /* TSYNC: the id of a thread that could not be synchronised */
                return moat_make_error (err, 0, "seccomp: thread %d could not take the filter", r);
        return 0;
}

int
vmm_seccomp_install (enum vmm_seccomp_mode mode, const char *const *extra, moat_error_t *err)
{
        return vmm_seccomp_install_filter (VMM_FILTER_VMM, mode, extra, err);
}

int
vmm_seccomp_print_filter (enum vmm_seccomp_filter which, FILE *out, const char *const *extra, moat_error_t *err)
{
        const struct rules *t = &filters[which];
        const struct rule *allowed = t->r;
        /* Built (not loaded) so that every name is checked. */
        __attribute__ ((cleanup (release_ctx))) scmp_filter_ctx ctx = NULL;
        if (build (t, SCMP_ACT_KILL_PROCESS, extra, &ctx, err) < 0)
                return -1;
        for (size_t i = 0; i < t->n; i++) {
                const char *note = "";
                switch (allowed[i].rule) {
                case IOCTL_KVM:
                        note = " (KVM_RUN, KVM_IRQ_LINE)";
                        break;
                case FCNTL_FLAGS:
                        note = " (F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD_CLOEXEC)";
                        break;
                case SOCKET_UNIX:
                        note = " (AF_UNIX)";
                        break;
                case NO_EXEC_ARG2:
                        note = " (without PROT_EXEC)";
                        break;
                default:
                        break;
                }
                fprintf (out, "%s%s\n", allowed[i].name, note);
        }
        size_t n = t->n;
        for (size_t i = 0; extra && extra[i]; i++) {
                bool dup = in_base (t, extra[i]);
                for (size_t j = 0; j < i && !dup; j++)
                        dup = strcmp (extra[i], extra[j]) == 0;
                if (dup)
                        continue;
                fprintf (out, "%s (device)\n", extra[i]);
                n++;
        }
        fprintf (out, "%zu syscalls\n", n);
        return (int)n;
}

int
vmm_seccomp_print (FILE *out, const char *const *extra, moat_error_t *err)
{
        return vmm_seccomp_print_filter (VMM_FILTER_VMM, out, extra, err);
}
