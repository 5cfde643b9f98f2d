/* SPDX-License-Identifier: Apache-2.0 */
/* VM templates: find, build, discard (include/moat/template.h). The
 * backend boots and saves (hypervisor.h template_save) and restores
 * (moat_vm_config.restore_state); sandbox.c picks restore or cold boot;
 * agent/template.c is the guest side.
 *
 * A template lives in <cache>/templates/<hash>/: key (the full key text,
 * compared on every lookup, so a hash collision only costs a rebuild),
 * state (the saved VM), and the logs of the boot that made it. It is
 * built in <hash>.tmp.<pid> and renamed into place, under an flock of
 * <hash>.lock that a second builder does not wait for (it cold-boots). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/paths.h"
#include "moat/template.h"
#include "moat/util.h"

/* bump when what a template holds changes in a way its key cannot see */
#define TEMPLATE_FORMAT 1

bool
moat_template_forced (void)
{
        const char *e = getenv ("MOAT_TEMPLATE");
        return e && strcmp (e, "force") == 0;
}

bool
moat_template_enabled (void)
{
        const char *e = getenv ("MOAT_TEMPLATE");
        if (e == NULL || *e == '\0')
                return MOAT_TEMPLATE_DEFAULT;
        if (moat_template_forced ())
                return true;
        if (!strcmp (e, "off") || !strcmp (e, "0") || !strcmp (e, "no") || !strcmp (e, "false"))
                return false;
        if (!strcmp (e, "on") || !strcmp (e, "1") || !strcmp (e, "yes") || !strcmp (e, "true"))
                return true;
        moat_warn ("ignoring MOAT_TEMPLATE=%s (expected on or off)", e);
        return MOAT_TEMPLATE_DEFAULT;
}

/* "<path> <size> <mtime> <inode>": a rebuilt file changes its key */
static int
file_id (const char *path, char **out, moat_error_t *err)
{
        struct stat st;
        if (stat (path, &st) < 0)
                return moat_make_error (err, errno, "template key: stat %s", path);
        *out = xasprintf_r ("%s %lld %lld.%09ld %llu", path, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                            st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
        return 0;
}

static uint64_t
fnv1a (const char *s)
{
        uint64_t h = 0xcbf29ce484222325ULL;
        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 0x100000001b3ULL;
        }
        return h;
}

/* What identifies the backend's program (its binary, for QEMU) */
static int
backend_id (const struct moat_hypervisor *hv, char **out, moat_error_t *err)
{
        cleanup_free char *binary = NULL;
        if (strcmp (hv->name, "qemu") == 0 && file_id (moat_qemu_binary (), &binary, err) < 0)
                return -1;
        *out = xasprintf_r ("%s %s", hv->name, binary ? binary : "-");
        return 0;
}

int
moat_template_supported (const struct moat_hypervisor *hv, const struct moat_vm_config *c, char **why)
{
        cleanup_free char *id = NULL;
        cleanup_free char *marker = NULL;
        cleanup_free char *tmpm = NULL;
        cleanup_free char *scratch = NULL;
        cleanup_free char *answer = NULL;
        cleanup_free char *top = xasprintf_r ("%s/templates", moat_cache_dir ());
        cleanup_error moat_error_t e = NULL;
        int rc;

        *why = NULL;
        if (hv->template_save == NULL) {
                *why = xasprintf_r ("the %s backend has no templates yet", hv->name);
                return 0;
        }
        if (hv->template_probe == NULL)
                return 1;
        if (backend_id (hv, &id, &e) < 0) {
                *why = xstrdup (e->msg);
                return 0;
        }
        marker = xasprintf_r ("%s/probe-%016llx", top, (unsigned long long)fnv1a (id));
        if (read_file (marker, &answer, NULL, &e) == 0) {
                if (strncmp (answer, "ok", 2) == 0)
                        return 1;
                *why = xstrdup (strncmp (answer, "no: ", 4) == 0 ? answer + 4 : answer);
                return 0;
        }
        moat_error_release (&e);
        /* probe once per backend binary */
        if (mkdir_p (top, 0700, &e) < 0) {
                *why = xstrdup (e->msg);
                return 0;
        }
        scratch = xasprintf_r ("%s/probe.XXXXXX", top);
        if (mkdtemp (scratch) == NULL) {
                *why = xasprintf_r ("template probe: mkdtemp %s: %s", scratch, strerror (errno));
                return 0;
        }
        rc = hv->template_probe (c, scratch, &e);
        answer = rc == 0 ? xasprintf_r ("ok\n%s\n", id) : xasprintf_r ("no: %s", e->msg);
        if (rc < 0)
                *why = xstrdup (e->msg);
        moat_error_release (&e);
        rm_rf (scratch, &e);
        moat_error_release (&e);
        /* a probe that could not run (timeout) is not cached */
        if (rc < 0 && strstr (*why, "cannot restore") == NULL)
                return 0;
        tmpm = xasprintf_r ("%s.%d", marker, (int)getpid ());
        if (write_file (tmpm, answer, strlen (answer), 0600, &e) == 0 && rename (tmpm, marker) < 0)
                unlink (tmpm);
        return rc == 0;
}

void
moat_template_clear (struct moat_template *t)
{
        free (t->key);
        free (t->dir);
        free (t->state);
        free (t->cmdline);
        memset (t, 0, sizeof *t);
}

int
moat_template_lookup (const struct moat_hypervisor *hv, const struct moat_vm_config *c, struct moat_template *t,
                      moat_error_t *err)
{
        cleanup_free char *kernel = NULL;
        cleanup_free char *initrd = NULL;
        cleanup_free char *backend = NULL;
        bool kvm = c->host->kvm_openable && c->host->hw_flag != NULL;

        memset (t, 0, sizeof *t);
        if (hv->template_save == NULL)
                return moat_make_error (err, ENOTSUP, "the %s backend has no templates", hv->name);
        if (file_id (c->kernel, &kernel, err) < 0 || file_id (c->initrd, &initrd, err) < 0)
                return -1;
        if (backend_id (hv, &backend, err) < 0)
                return -1;
        t->cmdline = xasprintf_r ("%s %s %s", c->cmdline, MOAT_TEMPLATE_CMDLINE, hv->template_cmdline);
        t->key = xasprintf_r ("moat template %d (moat %s)\nbackend %s\naccel %s\nkernel %s\ninitrd %s\n"
                              "memory %lluM\nvcpus %u\ncmdline %s\n",
                              TEMPLATE_FORMAT, MOAT_VERSION, backend, kvm ? "kvm" : "tcg", kernel, initrd,
                              (unsigned long long)c->mem_mib, c->vcpus, t->cmdline);
        t->dir = xasprintf_r ("%s/templates/%016llx", moat_cache_dir (), (unsigned long long)fnv1a (t->key));
        t->state = xasprintf_r ("%s/" MOAT_TEMPLATE_STATE, t->dir);
        return 0;
}

bool
moat_template_ready (const struct moat_template *t)
{
        cleanup_free char *key = NULL;
        cleanup_free char *kp = xasprintf_r ("%s/key", t->dir);
        cleanup_error moat_error_t e = NULL;
        struct stat st;

        if (read_file (kp, &key, NULL, &e) < 0 || strcmp (key, t->key) != 0)
                return false;
        return stat (t->state, &st) == 0 && S_ISREG (st.st_mode) && st.st_size > 0;
}

void
moat_template_discard (const struct moat_template *t)
{
        cleanup_error moat_error_t e = NULL;
        if (rm_rf (t->dir, &e) < 0)
                moat_warn ("remove the template %s: %s", t->dir, e->msg);
}

int
moat_template_build (const struct moat_hypervisor *hv, const struct moat_vm_config *c, const struct moat_template *t,
                     moat_error_t *err)
{
        cleanup_free char *top = xasprintf_r ("%s/templates", moat_cache_dir ());
        cleanup_free char *lock = xasprintf_r ("%s.lock", t->dir);
        cleanup_free char *tmp = xasprintf_r ("%s.tmp.%d", t->dir, (int)getpid ());
        cleanup_free char *key = xasprintf_r ("%s/key", tmp);
        cleanup_free char *qmp = xasprintf_r ("%s/qmp.sock", tmp);
        cleanup_close int fd = -1;
        cleanup_error moat_error_t e = NULL;
        struct moat_vm_config tc = *c;
        int64_t t0 = now_ms ();

        if (mkdir_p (top, 0700, err) < 0)
                return moat_error_wrap (err, "template cache");
        fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return moat_make_error (err, errno, "template lock %s", lock);
        if (flock (fd, LOCK_EX | LOCK_NB) < 0)
                return moat_make_error (err, errno == EWOULDBLOCK ? EBUSY : errno, "template lock %s", lock);
        if (moat_template_ready (t))
                return 0; /* built while we looked */
        {
                cleanup_free char *failed = xasprintf_r ("%s.failed", t->dir);
                unlink (failed); /* this build is the retry */
        }
        if (rm_rf (tmp, &e) < 0 || mkdir (tmp, 0700) < 0) {
                moat_make_error (err, errno, "template directory %s", tmp);
                goto fail;
        }
        tc.cmdline = t->cmdline;
        tc.restore_state = NULL;
        if (hv->template_save (&tc, tmp, err) < 0) {
                moat_error_wrap (err, "build the template");
                goto fail;
        }
        unlink (qmp);
        if (write_file (key, t->key, strlen (t->key), 0600, err) < 0)
                goto fail;
        if (rm_rf (t->dir, &e) < 0 || rename (tmp, t->dir) < 0) {
                moat_make_error (err, errno, "install the template in %s", t->dir);
                goto fail;
        }
        moat_debug ("template %s built in %lld ms", t->dir, (long long)(now_ms () - t0));
        return 0;
fail:
        moat_error_release (&e);
        rm_rf (tmp, &e);
        moat_template_mark_failed (t, *err ? (*err)->msg : "unknown error");
        return -1;
}

void
moat_template_mark_failed (const struct moat_template *t, const char *why)
{
        cleanup_free char *failed = xasprintf_r ("%s.failed", t->dir);
        cleanup_error moat_error_t e = NULL;
        if (write_file (failed, why, strlen (why), 0600, &e) < 0)
                moat_debug ("%s", e->msg);
}

bool
moat_template_failed (const struct moat_template *t)
{
        cleanup_free char *failed = xasprintf_r ("%s.failed", t->dir);
        return access (failed, F_OK) == 0;
}

/* The VM a container without resources gets, for backend hv (the
 * requested one, else auto's): what describe and build look at. */
struct default_vm {
        const struct moat_hypervisor *hv;
        char *kernel, *initrd, *cmdline;
        struct moat_host_info host;
        struct moat_vm_config vc;
};

static int
default_vm (struct default_vm *d, bool debug, moat_error_t *err)
{
        memset (d, 0, sizeof *d);
        d->hv = moat_hypervisor_get (moat_hypervisor_requested (NULL), err);
        if (d->hv == NULL)
                return -1;
        if (moat_find_file (MOAT_FILE_KERNEL, &d->kernel, err) < 0 ||
            moat_find_file (MOAT_FILE_INITRD, &d->initrd, err) < 0)
                return -1;
        d->cmdline = moat_vm_cmdline (debug);
        moat_host_probe (&d->host);
        d->vc.kernel = d->kernel;
        d->vc.initrd = d->initrd;
        d->vc.cmdline = d->cmdline;
        d->vc.host = &d->host;
        moat_vm_size (NULL, &d->vc.mem_mib, &d->vc.vcpus);
        return 0;
}

static void
default_vm_clear (struct default_vm *d)
{
        free (d->kernel);
        free (d->initrd);
        free (d->cmdline);
}

int
moat_template_build_default (bool debug, char **dir, moat_error_t *err)
{
        struct default_vm d;
        struct moat_template t = {0};
        cleanup_free char *why = NULL;
        int rc = -1;

        if (default_vm (&d, debug, err) < 0)
                goto out;
        if (!moat_template_supported (d.hv, &d.vc, &why) && !moat_template_forced ()) {
                moat_make_error (err, ENOTSUP, "no template: %s (MOAT_TEMPLATE=force builds one anyway)", why);
                goto out;
        }
        if (moat_template_lookup (d.hv, &d.vc, &t, err) < 0)
                goto out;
        if (!moat_template_ready (&t) && moat_template_build (d.hv, &d.vc, &t, err) < 0)
                goto out;
        *dir = steal_pointer (&t.dir);
        rc = 0;
out:
        moat_template_clear (&t);
        default_vm_clear (&d);
        return rc;
}

char *
moat_template_describe (void)
{
        struct default_vm d;
        cleanup_error moat_error_t e = NULL;
        cleanup_free char *why = NULL;
        cleanup_free char *failed = NULL;
        cleanup_free char *fwhy = NULL;
        struct moat_template t;
        char *out;

        if (!moat_template_enabled ())
                return xstrdup ("off (MOAT_TEMPLATE=off): every sandbox boots cold");
        if (default_vm (&d, false, &e) < 0) {
                default_vm_clear (&d);
                return xasprintf_r ("unavailable: %s", e->msg);
        }
        if (!moat_template_supported (d.hv, &d.vc, &why) && !moat_template_forced ())
                out = xasprintf_r ("unavailable, sandboxes boot cold: %s", why);
        else if (moat_template_lookup (d.hv, &d.vc, &t, &e) < 0)
                out = xasprintf_r ("unavailable: %s", e->msg);
        else {
                failed = xasprintf_r ("%s.failed", t.dir);
                if (moat_template_ready (&t))
                        out = xasprintf_r ("ready (%s, %s, %lluM, %u vCPU)", t.dir, d.hv->name,
                                           (unsigned long long)d.vc.mem_mib, d.vc.vcpus);
                else if (read_file (failed, &fwhy, NULL, &e) == 0)
                        out = xasprintf_r (
                                "it failed to build or restore, sandboxes boot cold (remove %s to retry): %s", failed,
                                fwhy);
                else
                        out = xasprintf_r ("not built yet (the first sandbox builds it in %s)", t.dir);
                moat_template_clear (&t);
        }
        default_vm_clear (&d);
        return out;
}
