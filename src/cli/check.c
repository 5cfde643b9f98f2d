/* SPDX-License-Identifier: Apache-2.0 */
/* moat check: tell which hypervisor backend this host can use and why, in
 * the spirit of `kata-runtime check`: /dev/kvm, hardware virtualization,
 * vhost-vsock (not needed), the guest kernel and initramfs, moat's helpers,
 * QEMU, and what `auto` picks. Exit 0 if some backend can run a container
 * here, 1 otherwise. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "cli.h"
#include "moat/hostcgroup.h"
#include "moat/hypervisor.h"
#include "moat/json_gen.h"
#include "moat/paths.h"
#include "moat/util.h"

static const char usage[] =
        "Usage: moat check [--json]\n"
        "Reports what this host offers moat's hypervisor backends (/dev/kvm, hardware\n"
        "virtualization, vhost-vsock, guest kernel and initramfs, moat-vsock, moat-vmm,\n"
        "QEMU), which backend `auto` picks, the host's cgroups and the limits moat sets\n"
        "on a sandbox's cgroup, and how each backend is confined. Exit status 0 if some backend can run\n"
        "containers here, 1 otherwise.\n"
        "  --json    machine-readable output\n";

static bool
auto_usable (const struct moat_host_report *r)
{
        return strcmp (r->auto_pick, "moat-vmm") == 0 ? r->vmm_usable : r->qemu_usable;
}

static const char *
cg_mode_text (const char *mode)
{
        if (strcmp (mode, "hybrid") == 0)
                return "hybrid (cgroup v1 controllers and a cgroup2 mount)";
        if (strcmp (mode, "v1") == 0)
                return "cgroup v1";
        if (strcmp (mode, "v2") == 0)
                return "cgroup v2";
        return "none mounted";
}

static void
print_text (const struct moat_host_report *r, const struct moat_hostcg_info *cg)
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
        const struct moat_host_file *fs[] = {&r->kernel, &r->initrd, &r->vsockd, &r->vmm};
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
        printf ("host cgroups:             %s; limits on a sandbox's cgroup (libcgroup):%s%s%s%s",
                cg_mode_text (cg->mode), cg->memory ? " memory" : "", cg->cpu ? " cpu" : "", cg->pids ? " pids" : "",
                cg->memory || cg->cpu || cg->pids ? "" : " none");
        if (cg->error)
                printf (" (libcgroup: %s)", cg->error);
        printf ("\n");
        printf ("confinement moat-vmm:     %s\n", moat_vmm_confinement);
        printf ("confinement qemu:         %s\n", moat_qemu_confinement);
        printf ("vm template:              %s\n", r->template_status);
        if (auto_usable (r))
                printf ("verdict: OK, containers run here with hypervisor %s\n", r->auto_pick);
        else if (r->vmm_usable || r->qemu_usable)
                printf ("verdict: OK, containers run here with hypervisor=%s (auto's choice %s cannot run)\n",
                        r->vmm_usable ? "moat-vmm" : "qemu", r->auto_pick);
        else
                printf ("verdict: FAIL, no hypervisor backend can run containers here\n");
}

static void
print_json (const struct moat_host_report *r, const struct moat_hostcg_info *cg)
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
                const struct moat_host_file *f;
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
        moat_gen_kv (g, "template", r->template_status);

        moat_gen_str (g, "host_cgroups");
        yajl_gen_map_open (g);
        moat_gen_kv (g, "mode", cg->mode);
        moat_gen_str (g, "limits");
        yajl_gen_array_open (g);
        if (cg->memory)
                moat_gen_str (g, "memory");
        if (cg->cpu)
                moat_gen_str (g, "cpu");
        if (cg->pids)
                moat_gen_str (g, "pids");
        yajl_gen_array_close (g);
        moat_gen_kv (g, "error", cg->error);
        yajl_gen_map_close (g);

        moat_gen_str (g, "confinement");
        yajl_gen_map_open (g);
        moat_gen_kv (g, "moat-vmm", moat_vmm_confinement);
        moat_gen_kv (g, "qemu", moat_qemu_confinement);
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
        struct moat_host_report r = {0};
        struct moat_hostcg_info cg;
        moat_host_report_probe (&r);
        moat_hostcg_probe (&cg);
        if (json)
                print_json (&r, &cg);
        else
                print_text (&r, &cg);
        int rc = r.vmm_usable || r.qemu_usable ? 0 : 1;
        moat_host_report_free (&r);
        return fflush (stdout) == 0 ? rc : 1;
}
