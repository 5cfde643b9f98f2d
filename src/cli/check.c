/* SPDX-License-Identifier: Apache-2.0 */
/* moat check: tell which hypervisor backend this host can use and why, in
 * the spirit of `kata-runtime check`: /dev/kvm, hardware virtualization,
 * vhost-vsock (not needed), the guest kernel and initramfs, moat's helpers,
 * QEMU, and what `auto` picks. Exit 0 if some backend can run a container
 * here, 1 otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "cli.h"
#include "moat/hostcheck.h"
#include "moat/hypervisor.h"
#include "moat/json_gen.h"
#include "moat/paths.h"
#include "moat/util.h"

static const char usage[] = "Usage: moat check [--json]\n"
                            "Reports what this host offers moat's hypervisor backends (/dev/kvm, hardware\n"
                            "virtualization, vhost-vsock, guest kernel and initramfs, moat-vsock, moat-vmm,\n"
                            "QEMU) and which backend `auto` picks. Exit status 0 if some backend can run\n"
                            "containers here, 1 otherwise.\n"
                            "  --json    machine-readable output\n";

struct found {
        const char *label;
        char *path;  /* NULL if not found */
        char *error; /* why not */
};

struct report {
        struct moat_host_info h;
        struct found kernel, initrd, vsockd, vmm;
        char *qemu_path;
        char *qemu_version; /* first line of --version; NULL if it did not run */
        char *qemu_error;
        bool vmm_usable, qemu_usable;
        char *vmm_reason, *qemu_reason;
        const char *auto_pick;
        char *auto_why;
};

static void
find (struct found *f, const char *label, enum moat_file which)
{
        cleanup_error moat_error_t err = NULL;
        f->label = label;
        if (moat_find_file (which, &f->path, &err) < 0)
                f->error = xstrdup (err->msg);
}

/* Runs `bin --version`; returns its first output line or NULL (*error set). */
static char *
qemu_version (const char *bin, char **error)
{
        int p[2];
        if (access (bin, X_OK) < 0) {
                *error = xasprintf_r ("%s: %s", bin, strerror (errno));
                return NULL;
        }
        if (pipe2 (p, O_CLOEXEC) < 0) {
                *error = xasprintf_r ("pipe: %s", strerror (errno));
                return NULL;
        }
        pid_t pid = fork ();
        if (pid < 0) {
                *error = xasprintf_r ("fork: %s", strerror (errno));
                close (p[0]);
                close (p[1]);
                return NULL;
        }
        if (pid == 0) {
                int null = open ("/dev/null", O_RDWR);
                dup2 (null, 0);
                dup2 (p[1], 1);
                dup2 (null, 2);
                execl (bin, bin, "--version", (char *)NULL);
                _exit (127);
        }
        close (p[1]);
        char buf[512];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof buf - 1 && ((r = read (p[0], buf + n, sizeof buf - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
                if (r > 0)
                        n += r;
        buf[n] = '\0';
        close (p[0]);
        int st;
        while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED (st) || WEXITSTATUS (st) != 0 || n == 0) {
                *error = xasprintf_r ("%s --version failed", bin);
                return NULL;
        }
        buf[strcspn (buf, "\n")] = '\0';
        return xstrdup (buf);
}

static void
probe (struct report *r)
{
        moat_host_probe (&r->h);
        find (&r->kernel, "guest kernel", MOAT_FILE_KERNEL);
        find (&r->initrd, "initramfs", MOAT_FILE_INITRD);
        find (&r->vsockd, "moat-vsock", MOAT_FILE_VSOCKD);
        find (&r->vmm, "moat-vmm", MOAT_FILE_VMM);
        const char *q = getenv ("MOAT_QEMU");
        r->qemu_path = xstrdup (q && *q ? q : "/usr/bin/qemu-system-x86_64");
        r->qemu_version = qemu_version (r->qemu_path, &r->qemu_error);

        bool guest = r->kernel.path && r->initrd.path;
        const char *why = moat_vmm_unusable_reason (&r->h);
        if (!guest)
                r->vmm_reason = xstrdup ("the guest kernel or initramfs is missing");
        else if (why)
                r->vmm_reason = xstrdup (why);
        else if (r->vmm.path == NULL)
                r->vmm_reason = xstrdup ("moat-vmm is not installed");
        else
                r->vmm_reason = xasprintf_r ("KVM with hardware virtualization (%s)", r->h.hw_flag);
        r->vmm_usable = guest && why == NULL && r->vmm.path;

        bool kvm = r->h.kvm_openable && r->h.hw_flag;
        if (!guest)
                r->qemu_reason = xstrdup ("the guest kernel or initramfs is missing");
        else if (r->qemu_version == NULL)
                r->qemu_reason = xasprintf_r ("QEMU does not run (%s)", r->qemu_error);
        else if (r->vsockd.path == NULL)
                r->qemu_reason = xstrdup ("moat-vsock is not installed");
        else
                r->qemu_reason = xstrdup (kvm ? "QEMU with KVM acceleration" : "QEMU with TCG (software emulation)");
        r->qemu_usable = guest && r->qemu_version && r->vsockd.path;
        r->auto_pick = moat_hypervisor_auto (&r->auto_why);
}

static void
report_free (struct report *r)
{
        struct found *fs[] = {&r->kernel, &r->initrd, &r->vsockd, &r->vmm};
        for (size_t i = 0; i < ARRAY_SIZE (fs); i++) {
                free (fs[i]->path);
                free (fs[i]->error);
        }
        free (r->qemu_path);
        free (r->qemu_version);
        free (r->qemu_error);
        free (r->vmm_reason);
        free (r->qemu_reason);
        free (r->auto_why);
}

static bool
auto_usable (const struct report *r)
{
        return strcmp (r->auto_pick, "moat-vmm") == 0 ? r->vmm_usable : r->qemu_usable;
}

static void
print_text (const struct report *r)
{
        const struct moat_host_info *h = &r->h;
        if (!h->kvm_present)
                printf ("/dev/kvm:                 absent\n");
        else if (!h->kvm_openable)
                printf ("/dev/kvm:                 present, cannot be opened (%s)\n", strerror (h->kvm_errno));
        else
                printf ("/dev/kvm:                 present, opens read-write, KVM API version %d%s%s%s\n",
                        h->kvm_api_version, *h->kvm_module ? " (module " : "", h->kvm_module,
                        *h->kvm_module ? ")" : "");
        if (h->hw_flag)
                printf ("hardware virtualization:  yes (%s)\n", h->hw_flag);
        else
                printf ("hardware virtualization:  none (no vmx/svm in /proc/cpuinfo)%s\n",
                        h->kvm_openable ? "; KVM here is software-only and cannot run a Linux guest" : "");
        printf ("/dev/vhost-vsock:         %s (not needed: moat's vsock device runs in userspace)\n",
                h->vhost_vsock ? "present" : "absent");
        const struct found *fs[] = {&r->kernel, &r->initrd, &r->vsockd, &r->vmm};
        for (size_t i = 0; i < ARRAY_SIZE (fs); i++) {
                char label[32];
                snprintf (label, sizeof label, "%s:", fs[i]->label);
                printf ("%-25s %s\n", label, fs[i]->path ? fs[i]->path : fs[i]->error);
        }
        if (r->qemu_version)
                printf ("qemu:                     %s (%s)\n", r->qemu_path, r->qemu_version);
        else
                printf ("qemu:                     %s\n", r->qemu_error);
        printf ("backend moat-vmm:         %s: %s\n", r->vmm_usable ? "usable" : "unusable", r->vmm_reason);
        printf ("backend qemu:             %s: %s\n", r->qemu_usable ? "usable" : "unusable", r->qemu_reason);
        printf ("auto picks:               %s: %s\n", r->auto_pick, r->auto_why);
        if (auto_usable (r))
                printf ("verdict: OK, containers run here with hypervisor %s\n", r->auto_pick);
        else if (r->vmm_usable || r->qemu_usable)
                printf ("verdict: OK, containers run here with hypervisor=%s (auto's choice %s cannot run)\n",
                        r->vmm_usable ? "moat-vmm" : "qemu", r->auto_pick);
        else
                printf ("verdict: FAIL, no hypervisor backend can run containers here\n");
}

static void
print_json (const struct report *r)
{
        const struct moat_host_info *h = &r->h;
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;
        yajl_gen_config (g, yajl_gen_beautify, 1);
        yajl_gen_map_open (g);

        moat_gen_str (g, "kvm");
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "present", h->kvm_present);
        moat_gen_kbool (g, "openable", h->kvm_openable);
        moat_gen_kv (g, "error", h->kvm_openable ? NULL : strerror (h->kvm_errno));
        moat_gen_str (g, "api_version");
        if (h->kvm_api_version >= 0)
                yajl_gen_integer (g, h->kvm_api_version);
        else
                yajl_gen_null (g);
        moat_gen_kv (g, "module", *h->kvm_module ? h->kvm_module : NULL);
        yajl_gen_map_close (g);

        moat_gen_kv (g, "hardware_virtualization", h->hw_flag);

        moat_gen_str (g, "vhost_vsock");
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "present", h->vhost_vsock);
        moat_gen_kbool (g, "needed", false);
        yajl_gen_map_close (g);

        moat_gen_str (g, "files");
        yajl_gen_map_open (g);
        const struct {
                const char *key;
                const struct found *f;
        } fs[] = {{"kernel", &r->kernel}, {"initrd", &r->initrd}, {"moat-vsock", &r->vsockd}, {"moat-vmm", &r->vmm}};
        for (size_t i = 0; i < ARRAY_SIZE (fs); i++) {
                moat_gen_str (g, fs[i].key);
                yajl_gen_map_open (g);
                moat_gen_kv (g, "path", fs[i].f->path);
                moat_gen_kv (g, "error", fs[i].f->error);
                yajl_gen_map_close (g);
        }
        yajl_gen_map_close (g);

        moat_gen_str (g, "qemu");
        yajl_gen_map_open (g);
        moat_gen_kv (g, "path", r->qemu_path);
        moat_gen_kv (g, "version", r->qemu_version);
        moat_gen_kv (g, "error", r->qemu_error);
        yajl_gen_map_close (g);

        moat_gen_str (g, "backends");
        yajl_gen_map_open (g);
        moat_gen_str (g, "moat-vmm");
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "usable", r->vmm_usable);
        moat_gen_kv (g, "reason", r->vmm_reason);
        yajl_gen_map_close (g);
        moat_gen_str (g, "qemu");
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "usable", r->qemu_usable);
        moat_gen_kv (g, "accel", h->kvm_openable && h->hw_flag ? "kvm" : "tcg");
        moat_gen_kv (g, "reason", r->qemu_reason);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        moat_gen_str (g, "auto");
        yajl_gen_map_open (g);
        moat_gen_kv (g, "hypervisor", r->auto_pick);
        moat_gen_kv (g, "reason", r->auto_why);
        yajl_gen_map_close (g);

        moat_gen_kbool (g, "ok", r->vmm_usable || r->qemu_usable);
        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        fwrite (buf, 1, len, stdout);
        yajl_gen_free (g);
}

int
moat_cmd_check (struct moat_global *gl, int argc, char **argv)
{
        bool json = false;
        (void)gl;
        for (int i = 1; i < argc; i++) {
                if (strcmp (argv[i], "--json") == 0)
                        json = true;
                else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
                        fputs (usage, stdout);
                        return 0;
                } else {
                        moat_cli_error ("check: unexpected argument \"%s\" (see moat check --help)", argv[i]);
                        return 1;
                }
        }
        struct report r = {0};
        probe (&r);
        if (json)
                print_json (&r);
        else
                print_text (&r);
        int rc = r.vmm_usable || r.qemu_usable ? 0 : 1;
        report_free (&r);
        return fflush (stdout) == 0 ? rc : 1;
}
