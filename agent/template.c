/* SPDX-License-Identifier: Apache-2.0 */
/* What the agent does differently in a VM made from a template
 * (src/lib/template.c has the host side).
 *
 * A template boots with MOAT_TEMPLATE_CMDLINE and no virtio device at
 * all: its kernel command line declares the virtio-mmio slots a sandbox's
 * devices will occupy, and the guest finds them empty (device id 0). Once
 * the agent has set up the guest it probes the empty slots every
 * PROBE_INTERVAL_MS, saying MOAT_TEMPLATE_PROBING before and
 * MOAT_TEMPLATE_IDLE after each probe on the console: the host saves the
 * VM in one of the sleeps between. A VM restored from that state has
 * its sandbox's devices (vsock, 9p share, net) in those slots: the next
 * probe binds their drivers, and the agent goes on as after a cold boot:
 * mounts the share, listens on vsock. No container data and no vsock
 * connection exist in the template, so none can leak into a restored VM.
 *
 * Everything a restored VM shares with its siblings (the kernel's RNG
 * state, the boot id if it was read, timers) is what the template had:
 * the host's first SyncClock carries host entropy that agent_reseed mixes
 * in before any container runs, and nothing in the template reads
 * /proc/sys/kernel/random/boot_id, which the kernel generates on first
 * read, so each restored VM draws its own after that reseed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

#define PROBE_INTERVAL_MS 200

bool agent_template_mode;

/* Asks the platform bus to probe every virtio-mmio device that has no
 * driver yet (an empty slot fails its probe with ENODEV, quietly). */
static void
probe_unbound (void)
{
        DIR *d = opendir ("/sys/bus/platform/devices");
        struct dirent *de;
        if (d == NULL)
                return;
        while ((de = readdir (d)) != NULL) {
                char drv[300];
                struct stat st;
                if (strncmp (de->d_name, "virtio-mmio.", 12) != 0)
                        continue;
                snprintf (drv, sizeof drv, "/sys/bus/platform/devices/%s/driver", de->d_name);
                if (lstat (drv, &st) == 0)
                        continue;
                int fd = open ("/sys/bus/platform/drivers_probe", O_WRONLY | O_CLOEXEC);
                if (fd < 0)
                        break;
                if (write (fd, de->d_name, strlen (de->d_name)) < 0 && errno != ENODEV)
                        agent_debug ("probe %s: %s", de->d_name, strerror (errno));
                close (fd);
        }
        closedir (d);
}

/* A guest-to-host vsock transport is there (the device was probed). */
static bool
vsock_ready (void)
{
        unsigned int cid = VMADDR_CID_ANY;
        int fd = open ("/dev/vsock", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        if (ioctl (fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
                cid = VMADDR_CID_ANY;
        close (fd);
        return cid != VMADDR_CID_ANY;
}

static void
say (const char *line)
{
        if (write (STDOUT_FILENO, line, strlen (line)) < 0)
                agent_debug ("template: console: %s", strerror (errno));
        /* on the host's side of the console before the next step */
        tcdrain (STDOUT_FILENO);
}

void
agent_template_wait (void)
{
        struct timespec ts = {0, PROBE_INTERVAL_MS * 1000 * 1000};

        if (!agent_template_mode || !agent_is_pid1 ())
                return;
        /* The host saves the VM while it sleeps, never in a probe: a
         * device that appears in the middle of one (the restore) breaks
         * the driver core's state. So each probe is announced and its end
         * said; the host stops the VM right after an idle line and checks
         * that no probing line followed. */
        for (;;) {
                say (MOAT_TEMPLATE_PROBING "\n");
                probe_unbound ();
                if (vsock_ready ())
                        break;
                say (MOAT_TEMPLATE_IDLE "\n");
                nanosleep (&ts, NULL);
        }
        agent_debug ("template: restored, devices attached");
        agent_mount_share ();
}

int
agent_reseed (const uint8_t *buf, size_t len, moat_error_t *err)
{
        cleanup_free struct rand_pool_info *info = NULL;
        cleanup_close int fd = -1;

        if (len == 0 || !agent_is_pid1 ())
                return 0;
        if (len > MOAT_ENTROPY_MAX)
                return moat_make_error (err, EINVAL, "reseed: %zu bytes of entropy (at most %d)", len,
                                        MOAT_ENTROPY_MAX);
        info = xzalloc (sizeof *info + len + sizeof (info->buf[0]));
        info->entropy_count = (int)len * 8;
        info->buf_size = (int)len;
        memcpy (info->buf, buf, len);
        fd = open ("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return moat_make_error (err, errno, "reseed: open /dev/urandom");
        if (ioctl (fd, RNDADDENTROPY, info) < 0)
                return moat_make_error (err, errno, "reseed: RNDADDENTROPY");
        if (ioctl (fd, RNDRESEEDCRNG) < 0)
                return moat_make_error (err, errno, "reseed: RNDRESEEDCRNG");
        return 0;
}
