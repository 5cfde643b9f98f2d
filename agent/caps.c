/* SPDX-License-Identifier: Apache-2.0 */
/* process.capabilities with libcap: the bounding set is dropped while the
 * process is still root, the other sets are applied after the uid switch
 * (PR_SET_KEEPCAPS keeps the permitted set across it). Capability names the
 * running kernel or libcap does not know are skipped with a log line, as
 * runc does. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "agent.h"
#include "moat/util.h"

static int
cap_lookup (const char *name, cap_value_t *v)
{
        char lower[64];
        size_t i;

        for (i = 0; name[i] && i < sizeof lower - 1; i++)
                lower[i] = tolower ((unsigned char)name[i]);
        lower[i] = '\0';
        if (cap_from_name (lower, v) < 0 || *v < 0 || *v > (cap_value_t)cap_max_bits () - 1) {
                agent_debug ("capability %s is unknown here, skipped", name);
                return -1;
        }
        return 0;
}

static bool
in_list (char **list, cap_value_t cap)
{
        for (size_t i = 0; list && list[i]; i++) {
                cap_value_t v;
                if (cap_lookup (list[i], &v) == 0 && v == cap)
                        return true;
        }
        return false;
}

int
agent_caps_drop_bounding (struct oci_caps *caps, moat_error_t *err)
{
        /* A capabilities object without "bounding" means an empty bounding
         * set, as runc reads it (Podman's --cap-drop ALL writes "{}"). */
        if (caps == NULL)
                return 0;
        for (cap_value_t c = 0; c <= (cap_value_t)cap_max_bits () - 1; c++) {
                if (in_list (caps->bounding, c))
                        continue;
                if (cap_drop_bound (c) < 0 && errno != EINVAL)
                        return moat_make_error (err, errno, "drop capability %s from the bounding set",
                                                cap_to_name (c));
        }
        return 0;
}

static int
set_flag (cap_t c, cap_flag_t flag, char **list)
{
        for (size_t i = 0; list && list[i]; i++) {
                cap_value_t v;
                if (cap_lookup (list[i], &v) < 0)
                        continue;
                if (cap_set_flag (c, flag, 1, &v, CAP_SET) < 0)
                        return -1;
        }
        return 0;
}

int
agent_caps_apply (struct oci_caps *caps, moat_error_t *err)
{
        cap_t c;

        if (caps == NULL)
                return 0;
        c = cap_init ();
        if (c == NULL)
                return moat_make_error (err, errno, "cap_init");
        if (set_flag (c, CAP_EFFECTIVE, caps->effective) < 0 || set_flag (c, CAP_PERMITTED, caps->permitted) < 0 ||
            set_flag (c, CAP_INHERITABLE, caps->inheritable) < 0) {
                cap_free (c);
                return moat_make_error (err, errno, "process.capabilities");
        }
        if (cap_set_proc (c) < 0) {
                int e = errno;
                cap_free (c);
                return moat_make_error (err, e, "set process.capabilities (effective must be a subset of permitted)");
        }
        cap_free (c);
        if (cap_reset_ambient () < 0 && errno != EINVAL)
                return moat_make_error (err, errno, "reset the ambient capabilities");
        for (size_t i = 0; caps->ambient && caps->ambient[i]; i++) {
                cap_value_t v;
                if (cap_lookup (caps->ambient[i], &v) < 0)
                        continue;
                /* Like runc, an ambient capability that is not both
                 * permitted and inheritable is skipped, not an error: the
                 * default `runc spec` config lists ambient capabilities
                 * that are not inheritable. */
                if (cap_set_ambient (v, CAP_SET) < 0)
                        agent_debug ("ambient capability %s not raised (not permitted and inheritable): %s",
                                     caps->ambient[i], strerror (errno));
        }
        return 0;
}
