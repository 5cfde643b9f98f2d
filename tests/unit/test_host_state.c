/* SPDX-License-Identifier: Apache-2.0 */
/* Host-side pieces of the sandbox lifecycle that need no VM: container ids,
 * the state store, config checks, VM sizing, the guest config rewrite and
 * long Unix socket paths. JSON here is written with ' for " (J()). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/hypervisor.h"
#include "moat/oci.h"
#include "moat/paths.h"
#include "moat/sandbox.h"
#include "moat/share.h"
#include "moat/state.h"
#include "moat/util.h"

static char *
J (const char *s)
{
        char *r = xstrdup (s);
        for (char *p = r; *p; p++)
                if (*p == '\'')
                        *p = '"';
        return r;
}

static struct oci_config *
parse (const char *json)
{
        cleanup_free char *j = J (json);
        struct oci_config *c = NULL;
        cleanup_error moat_error_t err = NULL;
        if (oci_config_parse (j, "config.json", &c, &err) < 0)
                fail_msg ("parse: %s", err->msg);
        return c;
}

static void
test_validate_id (void **state)
{
        static const char *bad[] = {"", ".", "..", "a/b", "a b", "x\n", "é"};
        static const char *good[] = {"a", "abc-DEF_1.2+3", "..."};
        for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
                cleanup_error moat_error_t err = NULL;
                assert_int_equal (moat_state_validate_id (bad[i], &err), -1);
                assert_non_null (err);
        }
        for (size_t i = 0; i < ARRAY_SIZE (good); i++) {
                cleanup_error moat_error_t err = NULL;
                assert_int_equal (moat_state_validate_id (good[i], &err), 0);
        }
}

static void
test_state_roundtrip (void **state)
{
        char root[] = "/tmp/moat-test-state.XXXXXX";
        cleanup_error moat_error_t err = NULL;
        struct moat_state st = {0}, *back = NULL;
        char *keys[] = {"k", NULL}, *vals[] = {"v\"q", NULL};
        int lock = -1, lock2 = -1;

        assert_non_null (mkdtemp (root));
        assert_int_equal (moat_state_create (root, "c1", &lock, &err), 0);
        /* exclusive: a second create fails with a clear message */
        assert_int_equal (moat_state_create (root, "c1", &lock2, &err), -1);
        assert_string_equal (err->msg, "container \"c1\" already exists");
        moat_error_release (&err);

        st.id = "c1";
        st.bundle = "/b";
        st.rootfs = "/b/rootfs";
        st.status = "running";
        st.pid = 1234;
        st.created = "2024-01-01T00:00:00.000000000Z";
        st.annotation_keys = keys;
        st.annotation_values = vals;
        st.n_annotations = 1;
        st.hypervisor = "qemu";
        st.vsockd_pid = 99;
        assert_int_equal (moat_state_save (root, &st, &err), 0);
        assert_int_equal (moat_state_load (root, "c1", &back, &err), 0);
        assert_string_equal (back->id, "c1");
        assert_string_equal (back->bundle, "/b");
        assert_string_equal (back->status, "running");
        assert_int_equal (back->pid, 1234);
        assert_int_equal (back->vsockd_pid, 99);
        assert_int_equal (back->n_annotations, 1);
        assert_string_equal (back->annotation_values[0], "v\"q");
        moat_state_free (back);

        assert_int_equal (moat_state_load (root, "nope", &back, &err), -1);
        assert_string_equal (err->msg, "container \"nope\" does not exist");
        moat_error_release (&err);

        close (lock);
        assert_int_equal (moat_state_remove (root, "c1", &err), 0);
        assert_int_equal (access (root, F_OK), 0);
        rmdir (root);
}

static void
test_check_config_devices (void **state)
{
        struct oci_config *c;
        cleanup_error moat_error_t err = NULL;

        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'linux':{'devices':[{'path':'/dev/null','type':'c','major':1,'minor':3}]}}");
        assert_int_equal (moat_sandbox_check_config (c, &err), 0);
        oci_config_free (c);

        /* devices the guest kernel backs (fuse, tun, pts) are made in the guest */
        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'linux':{'devices':[{'path':'/dev/net/tun','type':'c','major':10,'minor':200},"
                   "{'path':'/dev/fuse','type':'c','major':10,'minor':229}]}}");
        assert_int_equal (moat_sandbox_check_config (c, &err), 0);
        oci_config_free (c);

        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'linux':{'devices':[{'path':'/dev/xyz','type':'c','major':195,'minor':0}]}}");
        assert_int_equal (moat_sandbox_check_config (c, &err), -1);
        assert_non_null (strstr (err->msg, "linux.devices: /dev/xyz: c 195:0 is a host device"));
        assert_non_null (strstr (err->msg, "host devices cannot be passed into the VM"));
        moat_error_release (&err);
        oci_config_free (c);

        /* a standard name with other numbers is a host device too */
        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'linux':{'devices':[{'path':'/dev/null','type':'b','major':8,'minor':0}]}}");
        assert_int_equal (moat_sandbox_check_config (c, &err), -1);
        assert_non_null (strstr (err->msg, "linux.devices: /dev/null"));
        oci_config_free (c);
}

static void
test_vm_size (void **state)
{
        struct oci_config *c;
        uint64_t mem;
        unsigned cpus;

        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'}}");
        moat_vm_size (c, &mem, &cpus);
        assert_int_equal (mem, MOAT_VM_DEFAULT_MIB);
        assert_int_equal (cpus, 1);
        oci_config_free (c);

        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'linux':{'resources':{'memory':{'limit':67108864},'cpu':{'quota':150000,'period':100000}}}}");
        moat_vm_size (c, &mem, &cpus);
        assert_int_equal (mem, 64 + MOAT_VM_OVERHEAD_MIB);
        assert_int_equal (cpus, sysconf (_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1);
        oci_config_free (c);

        /* a pod's sandbox: the CRI's sums over the pod's containers win */
        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'annotations':{'io.kubernetes.cri.container-type':'sandbox',"
                   "'io.kubernetes.cri.sandbox-memory':'268435456','io.kubernetes.cri.sandbox-cpu-quota':'50000',"
                   "'io.kubernetes.cri.sandbox-cpu-period':'100000'},"
                   "'linux':{'resources':{'cpu':{'shares':2}}}}");
        moat_vm_size (c, &mem, &cpus);
        assert_int_equal (mem, 256 + MOAT_VM_OVERHEAD_MIB);
        assert_int_equal (cpus, 1);
        oci_config_free (c);
        /* ... not on an app container, nor when they are not numbers */
        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'annotations':{'io.kubernetes.cri.container-type':'container',"
                   "'io.kubernetes.cri.sandbox-memory':'268435456'}}");
        moat_vm_size (c, &mem, &cpus);
        assert_int_equal (mem, MOAT_VM_DEFAULT_MIB);
        oci_config_free (c);
        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'r'},"
                   "'annotations':{'io.kubernetes.cri.container-type':'sandbox',"
                   "'io.kubernetes.cri.sandbox-memory':'lots'}}");
        moat_vm_size (c, &mem, &cpus);
        assert_int_equal (mem, MOAT_VM_DEFAULT_MIB);
        oci_config_free (c);
}

static void
test_cmdline (void **state)
{
        cleanup_free char *a = moat_vm_cmdline (false);
        cleanup_free char *b = moat_vm_cmdline (true);
        assert_string_equal (a, "console=ttyS0 reboot=t panic=-1 quiet");
        assert_string_equal (b, "console=ttyS0 reboot=t panic=-1 quiet moat.debug=1");
}

static void
test_share_rewrite (void **state)
{
        char dir[] = "/tmp/moat-test-share.XXXXXX";
        cleanup_free char *bundle = NULL;
        cleanup_free char *sdir = NULL;
        cleanup_free char *guest = NULL;
        cleanup_free char *p = NULL;
        cleanup_error moat_error_t err = NULL;
        struct moat_share s;
        struct oci_config *c;
        FILE *f;

        if (geteuid () != 0)
                skip ();
        /* our own mount namespace: a failing assertion must not leave the
         * staged binds in the host's mount table */
        assert_int_equal (unshare (CLONE_NEWNS), 0);
        assert_int_equal (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        assert_non_null (mkdtemp (dir));
        bundle = xasprintf_r ("%s/bundle", dir);
        sdir = xasprintf_r ("%s/state", dir);
        p = xasprintf_r ("%s/rootfs/etc", bundle);
        assert_int_equal (mkdir_p (p, 0755, &err), 0);
        assert_int_equal (mkdir_p (sdir, 0700, &err), 0);
        free (p);
        p = xasprintf_r ("%s/hostfile", dir);
        f = fopen (p, "w");
        fputs ("x\n", f);
        fclose (f);

        cleanup_free char *json = xasprintf_r (
                "{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'rootfs','readonly':true},"
                "'mounts':[{'destination':'/proc','type':'proc','source':'proc'},"
                "{'destination':'/etc/hosts','type':'bind','source':'%s','options':['rbind','ro']}],"
                "'hooks':{'prestart':[{'path':'/bin/true'}],'createContainer':[{'path':'/bin/true'}],"
                "'startContainer':[{'path':'/bin/true'}],'poststop':[{'path':'/bin/true'}]},"
                "'linux':{'namespaces':[{'type':'network','path':'/run/netns/x'},{'type':'pid'}]}}",
                p);
        c = parse (json);
        assert_int_equal (moat_share_init (&s, sdir, &err), 0);
        assert_int_equal (moat_share_stage (&s, "c1", bundle, c, &guest, &err), 0);
        assert_non_null (strstr (guest, "\"path\":\"/run/moat/share/c1/rootfs\""));
        assert_non_null (strstr (guest, "\"source\":\"/run/moat/share/c1/mounts/1\""));
        /* createContainer and startContainer run in the guest */
        assert_non_null (strstr (guest, "startContainer"));
        assert_non_null (strstr (guest, "createContainer"));
        assert_null (strstr (guest, "prestart"));
        /* host namespace paths do not reach the guest; the types do */
        assert_null (strstr (guest, "/run/netns/x"));
        assert_non_null (strstr (guest, "\"type\":\"network\""));
        assert_null (strstr (guest, "poststop"));
        /* the read-only rootfs got its mount point on the host side */
        free (p);
        p = xasprintf_r ("%s/rootfs/etc/hosts", bundle);
        assert_int_equal (access (p, F_OK), 0);
        /* staged file bind shows the host file */
        free (p);
        p = xasprintf_r ("%s/shared/c1/mounts/1", sdir);
        {
                cleanup_free char *data = NULL;
                assert_int_equal (read_file (p, &data, NULL, &err), 0);
                assert_string_equal (data, "x\n");
        }
        /* createContainer hooks got a view of the host's root, without the
         * host's /proc; what they write lands on the host */
        free (p);
        p = xasprintf_r ("%s/shared/c1/host/etc/passwd", sdir);
        assert_int_equal (access (p, R_OK), 0);
        free (p);
        p = xasprintf_r ("%s/shared/c1/host/proc/self", sdir);
        assert_int_equal (access (p, F_OK), -1);
        free (p);
        p = xasprintf_r ("%s/shared/c1/host%s/written-through-the-view", sdir, dir);
        {
                cleanup_free char *back = xasprintf_r ("%s/written-through-the-view", dir);
                assert_int_equal (write_file (p, "y", 1, 0644, &err), 0);
                assert_int_equal (access (back, F_OK), 0);
        }
        /* withdrawn: the view is an empty directory again */
        assert_int_equal (moat_share_drop_host_view (&s, &err), 0);
        free (p);
        p = xasprintf_r ("%s/shared/c1/host/etc", sdir);
        assert_int_equal (access (p, F_OK), -1);
        assert_int_equal (moat_share_release (&s, &err), 0);
        free (p);
        p = xasprintf_r ("%s/shared", sdir);
        assert_int_equal (access (p, F_OK), -1);
        oci_config_free (c);
        assert_int_equal (rm_rf (dir, &err), 0);
}

/* In the "VMM": the pod container's staged files, then the unstage.
 * Returns 0, or the number of the check that failed. */
static int
member_checks (const char *share, const char *bundle, int mntns)
{
        moat_error_t err = NULL;
        struct moat_share s;
        struct oci_config *c;
        char *guest = NULL, *json, *p;
        struct stat st;
        int rc = 0;

        json = xasprintf_r ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'rootfs'},"
                            "'mounts':[{'destination':'/data','type':'bind','source':'%s/vol','options':['rbind']}],"
                            "'linux':{'namespaces':[{'type':'network','path':'/proc/1/ns/net'},{'type':'mount'}]}}",
                            bundle);
        c = parse (json);
        if (moat_share_join (&s, share, "c2", mntns, &err) < 0 ||
            moat_share_stage (&s, "c2", bundle, c, &guest, &err) < 0)
                return 1;
        if (strstr (guest, "\"source\":\"/run/moat/share/c2/mounts/0\"") == NULL)
                return 2;
        /* here (the VMM's namespace) the rootfs and the volume are staged */
        p = xasprintf_r ("%s/c2/rootfs/marker", share);
        if (access (p, F_OK) < 0)
                return 3;
        free (p);
        p = xasprintf_r ("%s/c2/mounts/0/v", share);
        if (access (p, F_OK) < 0)
                return 4;
        free (p);
        /* a pod's container cannot have createContainer hooks */
        oci_config_free (c);
        free (guest);
        guest = NULL;
        c = parse ("{'ociVersion':'1.0.2','process':{'args':['sh'],'cwd':'/'},'root':{'path':'rootfs'},"
                   "'hooks':{'createContainer':[{'path':'/bin/true'}]}}");
        {
                struct moat_share s3;
                if (moat_share_join (&s3, share, "c3", mntns, &err) < 0)
                        return 5;
                if (moat_share_stage (&s3, "c3", bundle, c, &guest, &err) == 0 || err->errno_ != ENOTSUP)
                        return 6;
                moat_error_release (&err);
                free (s3.dir);
                free (s3.owned);
        }
        oci_config_free (c);
        free (s.dir);
        free (s.owned);
        strv_free (s.mounted);
        /* unstaged: no mount below share/c2, the directory gone, the
         * volume's file still on the host */
        if (moat_share_unstage (share, "c2", &err) < 0)
                return 7;
        p = xasprintf_r ("%s/c2", share);
        if (stat (p, &st) == 0)
                rc = 8;
        free (p);
        p = xasprintf_r ("%s/vol/v", bundle);
        if (rc == 0 && access (p, F_OK) < 0)
                rc = 9;
        free (p);
        free (json);
        return rc;
}

/* moat_share_join: a pod's container staged from inside another mount
 * namespace (the sandbox VMM's), invisible in ours, and unstaged. */
static void
test_share_member (void **state)
{
        char dir[] = "/tmp/moat-share-member-XXXXXX";
        moat_error_t err = NULL;
        cleanup_free char *bundle = NULL, *share = NULL, *p = NULL, *nspath = NULL;
        int hold[2], st;
        pid_t vmm, child;
        cleanup_close int mntns = -1;
        char c;

        (void)state;
        assert_int_equal (unshare (CLONE_NEWNS), 0);
        assert_int_equal (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        assert_non_null (mkdtemp (dir));
        bundle = xasprintf_r ("%s/bundle", dir);
        share = xasprintf_r ("%s/shared", dir);
        p = xasprintf_r ("%s/rootfs", bundle);
        assert_int_equal (mkdir_p (p, 0755, &err), 0);
        free (p);
        p = xasprintf_r ("%s/vol", bundle);
        assert_int_equal (mkdir_p (p, 0755, &err), 0);
        free (p);
        assert_int_equal (mkdir_p (share, 0711, &err), 0);
        p = xasprintf_r ("%s/rootfs/marker", bundle);
        assert_int_equal (write_file (p, "m", 1, 0644, &err), 0);
        free (p);
        p = xasprintf_r ("%s/vol/v", bundle);
        assert_int_equal (write_file (p, "v", 1, 0644, &err), 0);
        free (p);
        /* the "VMM": a process in a mount namespace of its own */
        assert_int_equal (pipe (hold), 0);
        vmm = fork ();
        assert_true (vmm >= 0);
        if (vmm == 0) {
                close (hold[1]);
                if (unshare (CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit (1);
                if (read (hold[0], &c, 1) < 0)
                        _exit (1);
                _exit (0);
        }
        close (hold[0]);
        nspath = xasprintf_r ("/proc/%d/ns/mnt", (int)vmm);
        for (int i = 0; i < 200; i++) {
                /* until the child has its own namespace */
                struct stat a, b;
                if (stat (nspath, &a) == 0 && stat ("/proc/self/ns/mnt", &b) == 0 && a.st_ino != b.st_ino)
                        break;
                usleep (10000);
        }
        mntns = open (nspath, O_RDONLY | O_CLOEXEC);
        assert_true (mntns >= 0);
        child = fork ();
        assert_true (child >= 0);
        if (child == 0)
                _exit (member_checks (share, bundle, mntns));
        assert_int_equal (waitpid (child, &st, 0), child);
        close (hold[1]);
        waitpid (vmm, NULL, 0);
        assert_true (WIFEXITED (st));
        assert_int_equal (WEXITSTATUS (st), 0);
        /* nothing of it was ever mounted here */
        p = xasprintf_r ("%s/c2/rootfs/marker", share);
        assert_int_equal (access (p, F_OK), -1);
        assert_int_equal (rm_rf (dir, &err), 0);
}

static void
test_unix_path_long (void **state)
{
        char buf[256];
        int dirfd = -1;
        cleanup_error moat_error_t err = NULL;
        cleanup_free char *longp = NULL;
        char pad[200];

        assert_int_equal (moat_unix_path ("/run/x.sock", buf, sizeof buf, &dirfd, &err), 0);
        assert_string_equal (buf, "/run/x.sock");
        assert_int_equal (dirfd, -1);

        memset (pad, 'a', sizeof pad - 1);
        pad[sizeof pad - 1] = '\0';
        longp = xasprintf_r ("/tmp/%s/s.sock", pad);
        assert_int_equal (moat_unix_path (longp, buf, sizeof buf, &dirfd, &err), -1); /* dir missing */
        moat_error_release (&err);
        {
                cleanup_free char *d = xasprintf_r ("/tmp/%s", pad);
                mkdir (d, 0700);
                assert_int_equal (moat_unix_path (longp, buf, sizeof buf, &dirfd, &err), 0);
                assert_true (dirfd >= 0);
                assert_true (strlen (buf) < 108);
                assert_non_null (strstr (buf, "/proc/self/fd/"));
                close (dirfd);
                rmdir (d);
        }
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_validate_id),
                cmocka_unit_test (test_state_roundtrip),
                cmocka_unit_test (test_check_config_devices),
                cmocka_unit_test (test_vm_size),
                cmocka_unit_test (test_cmdline),
                cmocka_unit_test (test_share_rewrite),
                cmocka_unit_test (test_share_member),
                cmocka_unit_test (test_unix_path_long),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}
