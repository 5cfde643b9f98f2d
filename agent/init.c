/* SPDX-License-Identifier: Apache-2.0 */
/* PID 1 duties in the guest: leave the initramfs "rootfs" for a tmpfs (so
 * containers can pivot_root), mount the pseudo filesystems, cgroup2 and the
 * 9p share, and power off at the end. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

bool
agent_is_pid1 (void)
{
        return getpid () == 1;
}

static int
copy_file (const char *from, const char *to, moat_error_t *err)
{
        cleanup_close int in = open (from, O_RDONLY | O_CLOEXEC);
        cleanup_close int out = -1;
        char buf[65536];
        ssize_t n;

        if (in < 0)
                return moat_make_error (err, errno, "open %s", from);
        out = open (to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        if (out < 0)
                return moat_make_error (err, errno, "create %s", to);
        while ((n = read (in, buf, sizeof buf)) > 0)
                if (write_all (out, buf, n) < 0)
                        return moat_make_error (err, errno, "write %s", to);
        if (n < 0)
                return moat_make_error (err, errno, "read %s", from);
        return 0;
}

/* The initramfs root cannot be pivot_root'ed away from, and containers
 * pivot_root. So: a tmpfs, /init copied in, moved over /, chroot, re-exec.
 * The tmpfs is mounted on the rootfs root, so the kernel does not consider
 * us chrooted (user namespaces stay allowed). */
static int
switch_root (char **argv, moat_error_t *err)
{
        char *const args[] = {"/init", "--switched-root", NULL};

        if (mkdir ("/newroot", 0755) < 0 && errno != EEXIST)
                return moat_make_error (err, errno, "mkdir /newroot");
        if (mount ("tmpfs", "/newroot", "tmpfs", 0, "mode=0755") < 0)
                return moat_make_error (err, errno, "mount tmpfs on /newroot");
        if (copy_file ("/init", "/newroot/init", err) < 0)
                return -1;
        unlink ("/init"); /* frees the initramfs copy */
        if (chdir ("/newroot") < 0)
                return moat_make_error (err, errno, "chdir /newroot");
        if (mount (".", "/", NULL, MS_MOVE, NULL) < 0)
                return moat_make_error (err, errno, "move the tmpfs over /");
        if (chroot (".") < 0 || chdir ("/") < 0)
                return moat_make_error (err, errno, "chroot into the tmpfs");
        execv ("/init", args);
        return moat_make_error (err, errno, "re-exec /init");
}

static void
try_mount (const char *src, const char *dst, const char *type, unsigned long flags, const char *data)
{
        mkdir (dst, 0755);
        if (mount (src, dst, type, flags, data) < 0)
                agent_log ("mount %s on %s (%s): %s", src, dst, type, strerror (errno));
        else
                agent_debug ("mounted %s on %s", type, dst);
}

static void
console_fds (void)
{
        int fd;
        if (fcntl (0, F_GETFD) >= 0 && fcntl (1, F_GETFD) >= 0 && fcntl (2, F_GETFD) >= 0)
                return;
        fd = open ("/dev/console", O_RDWR | O_NOCTTY);
        if (fd < 0)
                return;
        for (int i = 0; i < 3; i++)
                if (fcntl (i, F_GETFD) < 0)
                        dup2 (fd, i);
        if (fd > 2)
                close (fd);
}

static void
loopback_up (void)
{
        struct ifreq ifr = {0};
        int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return;
        snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (ioctl (s, SIOCGIFFLAGS, &ifr) == 0) {
                ifr.ifr_flags |= IFF_UP;
                ioctl (s, SIOCSIFFLAGS, &ifr);
        }
        close (s);
}

void
agent_mount_share (void)
{
        /* cache=mmap: page cache only for mmap (so binaries exec and shared
         * mappings work), plain reads and writes go to the host, so host
         * writes stay visible. No nodev/noexec: rootfs binaries run from it. */
        if (mount (MOAT_SHARE_TAG, MOAT_GUEST_SHARE, "9p", 0, "trans=virtio,version=9p2000.L,msize=262144,cache=mmap") <
            0)
                agent_log ("9p share \"%s\" not mounted on %s: %s", MOAT_SHARE_TAG, MOAT_GUEST_SHARE, strerror (errno));
        else
                agent_debug ("mounted the 9p share on %s", MOAT_GUEST_SHARE);
}

int
agent_init_system (bool switched, char **argv, moat_error_t *err)
{
        cleanup_free char *cmdline = NULL;
        struct rlimit rl = {.rlim_cur = 1 << 20, .rlim_max = 1 << 20};
        moat_error_t e = NULL;

        if (!agent_is_pid1 ()) {
                agent_debug ("not PID 1: skipping the guest setup");
                return 0;
        }
        console_fds ();
        if (!switched && switch_root (argv, err) < 0)
                moat_error_wrap (err, "switch to a tmpfs root (containers will not be able to pivot_root)");
        if (*err) {
                agent_log ("%s", (*err)->msg);
                moat_error_release (err);
        }
        try_mount ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        if (read_file ("/proc/cmdline", &cmdline, NULL, &e) == 0) {
                if (strstr (cmdline, "moat.debug=1"))
                        agent_debug_enabled = 1;
        } else
                moat_error_release (&e);
        try_mount ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        try_mount ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
        console_fds ();
        try_mount ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        try_mount ("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        try_mount ("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        try_mount ("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        {
                static const char *const ctrls[] = {"+memory", "+pids", "+cpu", "+cpuset"};
                for (size_t i = 0; i < ARRAY_SIZE (ctrls); i++) {
                        int fd = open ("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
                        if (fd < 0 || write (fd, ctrls[i], strlen (ctrls[i])) < 0)
                                agent_log ("cgroup: enable %s: %s", ctrls[i] + 1, strerror (errno));
                        if (fd >= 0)
                                close (fd);
                }
        }
        try_mount ("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
        try_mount ("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        if (mkdir_p (MOAT_GUEST_SHARE, 0755, &e) < 0) {
                agent_log ("%s", e->msg);
                moat_error_release (&e);
        }
        if (strstr (cmdline ? cmdline : "", MOAT_TEMPLATE_CMDLINE))
                agent_template_mode = true;
        else
                agent_mount_share ();
        loopback_up ();
        if (setrlimit (RLIMIT_NOFILE, &rl) < 0)
                agent_debug ("raise RLIMIT_NOFILE: %s", strerror (errno));
        return 0;
}

void
agent_poweroff (bool reboot_)
{
        agent_log ("%s", reboot_ ? "rebooting" : "powering off");
        if (!agent_is_pid1 ())
                _exit (0); /* standalone/test server: just go away */
        kill (-1, SIGKILL);
        sync ();
        umount2 (MOAT_GUEST_SHARE, MNT_DETACH);
        /* The kernel runs with reboot=t and QEMU with -no-reboot: a reboot
         * ends QEMU, which is what the host waits for either way. */
        reboot (RB_AUTOBOOT);
        agent_log ("reboot: %s", strerror (errno));
}
