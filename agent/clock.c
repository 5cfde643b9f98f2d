/* SPDX-License-Identifier: Apache-2.0 */
/* The guest's wall clock and hostname, from the host (SyncClock,
 * CreateContainerRequest.host_hostname).
 *
 * A guest boots with whatever clock its platform gives it: the Unix epoch
 * under QEMU's microvm (no RTC), KVM's wall clock under kvm-clock. The host
 * sends its CLOCK_REALTIME once the agent answers, before any container
 * exists, and the agent steps the guest's clock to it; later calls (the
 * host repeats them while containers run) slew small offsets with adjtime
 * and step only large ones, so programs never see time go back for a
 * drift of a few milliseconds.
 *
 * Only PID 1 (the agent in its VM) touches the clock and the hostname: the
 * agent's unit tests run it on the host, where it must change neither. */
#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

#define NSEC 1000000000LL

static int64_t
ts_ns (const struct timespec *t)
{
        return (int64_t)t->tv_sec * NSEC + t->tv_nsec;
}

int64_t
agent_clock_offset_ns (int64_t host_sec, uint32_t host_nsec, const struct timespec *guest)
{
        return (host_sec * NSEC + (int64_t)host_nsec) - ts_ns (guest);
}

bool
agent_clock_should_step (int64_t offset_ns, bool force)
{
        return force || offset_ns >= AGENT_CLOCK_STEP_NS || offset_ns <= -AGENT_CLOCK_STEP_NS;
}

int
agent_clock_sync (int64_t host_sec, uint32_t host_nsec, bool force, int64_t *offset, bool *stepped, moat_error_t *err)
{
        struct timespec received, now;
        int64_t off, target;

        if (host_nsec >= NSEC || host_sec < 0)
                return moat_make_error (err, EINVAL, "sync clock: bad host time %lld.%09u", (long long)host_sec,
                                        host_nsec);
        /* the offset as of the request's arrival: the time spent here
         * before the clock is set is added back below */
        clock_gettime (CLOCK_REALTIME, &received);
        off = agent_clock_offset_ns (host_sec, host_nsec, &received);
        *offset = off;
        *stepped = agent_clock_should_step (off, force);
        if (!agent_is_pid1 ())
                return 0;
        if (*stepped) {
                struct timeval none = {0, 0};
                struct timespec t;
                /* a slew still running from an earlier sync would carry the
                 * clock away from the new value: cancel it */
                if (adjtime (&none, NULL) < 0)
                        agent_debug ("sync clock: cancel adjtime: %s", strerror (errno));
                clock_gettime (CLOCK_REALTIME, &now);
                target = ts_ns (&now) + off;
                t.tv_sec = target / NSEC;
                t.tv_nsec = target % NSEC;
                if (clock_settime (CLOCK_REALTIME, &t) < 0)
                        return moat_make_error (err, errno, "sync clock: clock_settime");
                return 0;
        }
        struct timeval d = {.tv_sec = off / NSEC, .tv_usec = (off % NSEC) / 1000};
        if (adjtime (&d, NULL) < 0)
                return moat_make_error (err, errno, "sync clock: adjtime");
        return 0;
}

int
agent_set_hostname (const char *name, moat_error_t *err)
{
        char cur[65];
        if (name == NULL || *name == '\0' || !agent_is_pid1 ())
                return 0;
        if (strlen (name) > 64)
                return moat_make_error (err, EINVAL, "host hostname is too long");
        if (gethostname (cur, sizeof cur) == 0 && strcmp (cur, name) == 0)
                return 0;
        if (sethostname (name, strlen (name)) < 0)
                return moat_make_error (err, errno, "set the guest's hostname to %s", name);
        return 0;
}
