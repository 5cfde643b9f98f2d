/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's log: one "moat-agent: ..." line per message on stderr, which
 * is /dev/console (ttyS0) in the guest. Debug lines only with moat.debug=1. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

int agent_debug_enabled;

static void
agent_vlog (const char *fmt, va_list ap)
{
        char buf[2048];
        int saved = errno;
        int n = snprintf (buf, sizeof buf, "moat-agent: ");
        int m = vsnprintf (buf + n, sizeof buf - n - 1, fmt, ap);
        size_t len;

        if (m < 0)
                m = 0;
        len = n + m;
        if (len > sizeof buf - 2)
                len = sizeof buf - 2;
        buf[len++] = '\n';
        if (write (STDERR_FILENO, buf, len) < 0) {
                /* nowhere else to report it */
        }
        errno = saved;
}

void
agent_log (const char *fmt, ...)
{
        va_list ap;
        va_start (ap, fmt);
        agent_vlog (fmt, ap);
        va_end (ap);
}

void
agent_debug (const char *fmt, ...)
{
        va_list ap;
        if (!agent_debug_enabled)
                return;
        va_start (ap, fmt);
        agent_vlog (fmt, ap);
        va_end (ap);
}
