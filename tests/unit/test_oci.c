/* SPDX-License-Identifier: Apache-2.0 */
/* OCI config parsing, validation messages, tree helpers and signals.
 * JSON in this file is written with ' for " (J() converts). */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/oci.h"
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

/* `runc spec` output plus hooks, seccomp, resources, user namespace mappings. */
static const char full_config[] =
        "{'ociVersion':'1.0.2-dev',"
        "'process':{'terminal':true,'consoleSize':{'height':25,'width':80},"
        " 'user':{'uid':1000,'gid':1001,'umask':18,'additionalGids':[5,6,4294967295]},"
        " 'args':['sh','-c','echo hi'],"
        " 'env':['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin','TERM=xterm'],"
        " 'cwd':'/',"
        " 'capabilities':{'bounding':['CAP_AUDIT_WRITE','CAP_KILL','CAP_NET_BIND_SERVICE'],"
        "   'effective':['CAP_AUDIT_WRITE','CAP_KILL'],'permitted':['CAP_KILL'],'ambient':[]},"
        " 'rlimits':[{'type':'RLIMIT_NOFILE','hard':1024,'soft':1024},"
        "   {'type':'RLIMIT_CORE','hard':18446744073709551615,'soft':0}],"
        " 'noNewPrivileges':true,'oomScoreAdj':-500,'apparmorProfile':'docker-default',"
        " 'selinuxLabel':'system_u:system_r:container_t:s0'},"
        "'root':{'path':'rootfs','readonly':true},"
        "'hostname':'runc','domainname':'example.org',"
        "'mounts':["
        " {'destination':'/proc','type':'proc','source':'proc'},"
        " {'destination':'/"
        "dev','type':'tmpfs','source':'tmpfs','options':['nosuid','strictatime','mode=755','size=65536k']},"
        " {'destination':'/dev/pts','type':'devpts','source':'devpts',"
        "  'options':['nosuid','noexec','newinstance','ptmxmode=0666','mode=0620','gid=5']},"
        " {'destination':'/dev/"
        "shm','type':'tmpfs','source':'shm','options':['nosuid','noexec','nodev','mode=1777','size=65536k']},"
        " {'destination':'/dev/mqueue','type':'mqueue','source':'mqueue','options':['nosuid','noexec','nodev']},"
        " {'destination':'/sys','type':'sysfs','source':'sysfs','options':['nosuid','noexec','nodev','ro']},"
        " {'destination':'/sys/fs/"
        "cgroup','type':'cgroup','source':'cgroup','options':['nosuid','noexec','nodev','relatime','ro']},"
        " {'destination':'/data','source':'/srv/data','options':['rbind','rw']}],"
        "'hooks':{'prestart':[{'path':'/usr/bin/fix-mounts','args':['fix-mounts','arg1'],'env':['key1=value1']}],"
        " 'createRuntime':[{'path':'/usr/bin/setup-network'}],"
        " 'poststart':[{'path':'/usr/bin/notify-start','timeout':5}],"
        " 'poststop':[{'path':'/usr/sbin/cleanup.sh','args':['cleanup.sh','-f']}]},"
        "'annotations':{'com.example.key1':'value1','io.kubernetes.cri.container-type':'sandbox'},"
        "'linux':{"
        " 'uidMappings':[{'containerID':0,'hostID':100000,'size':65536}],"
        " 'gidMappings':[{'containerID':0,'hostID':200000,'size':65536}],"
        " 'devices':[{'path':'/dev/fuse','type':'c','major':10,'minor':229,'fileMode':438,'uid':0,'gid':0},"
        "   {'path':'/dev/fifo','type':'p'}],"
        " 'cgroupsPath':'/myRuntime/myContainer',"
        " 'resources':{'devices':[{'allow':false,'access':'rwm'},{'allow':true,'type':'c','major':10,'minor':229,'"
        "access':'rw'}],"
        "   "
        "'memory':{'limit':536870912,'reservation':268435456,'swap':-1,'swappiness':0,'kernel':-1,'disableOOMKiller':"
        "false},"
        "   'cpu':{'shares':1024,'quota':100000,'period':500000,'realtimeRuntime':950000,'cpus':'2-3','mems':'0-7'},"
        "   'pids':{'limit':32771},"
        "   'blockIO':{'weight':10},'hugepageLimits':[{'pageSize':'2MB','limit':9223372036854772000}],"
        "   'unified':{'memory.high':'500000000','io.weight':'100'}},"
        " 'sysctl':{'net.ipv4.ip_forward':'1','net.core.somaxconn':'256'},"
        " 'seccomp':{'defaultAction':'SCMP_ACT_ERRNO','defaultErrnoRet':1,"
        "   'architectures':['SCMP_ARCH_X86_64','SCMP_ARCH_X86','SCMP_ARCH_X32'],'flags':['SECCOMP_FILTER_FLAG_LOG'],"
        "   'listenerPath':'/run/seccomp.sock','listenerMetadata':'meta',"
        "   'syscalls':[{'names':['getcwd','chmod'],'action':'SCMP_ACT_ALLOW'},"
        "     {'names':['personality'],'action':'SCMP_ACT_ALLOW','args':[{'index':0,'value':8,'op':'SCMP_CMP_EQ'},"
        "        {'index':1,'value':18446744073709551615,'valueTwo':4,'op':'SCMP_CMP_MASKED_EQ'}]},"
        "     {'names':['mount'],'action':'SCMP_ACT_ERRNO','errnoRet':38}]},"
        " 'rootfsPropagation':'rslave',"
        " 'maskedPaths':['/proc/acpi','/proc/kcore','/sys/firmware'],"
        " 'readonlyPaths':['/proc/bus','/proc/sys'],"
        " 'mountLabel':'system_u:object_r:svirt_sandbox_file_t:s0:c715,c811',"
        " 'namespaces':[{'type':'pid'},{'type':'network','path':'/var/run/netns/neta'},{'type':'ipc'},"
        "   {'type':'uts'},{'type':'mount'},{'type':'user'},{'type':'cgroup'}]},"
        "'windows':{'ignored':true},'vm':{'hypervisor':{'path':'/x'}},'x-unknown':[1,{'a':null}]}";

static struct oci_config *
parse_ok (const char *jsrc)
{
        cleanup_free char *json = J (jsrc);
        struct oci_config *c = NULL;
        moat_error_t err = NULL;
        int r = oci_config_parse (json, "config.json", &c, &err);
        if (r < 0)
                fail_msg ("unexpected error: %s", err->msg);
        assert_non_null (c);
        return c;
}

static void
check_full (struct oci_config *c)
{
        struct oci_process *p = c->process;
        struct oci_linux *l = c->linux_;

        assert_string_equal (c->oci_version, "1.0.2-dev");
        assert_string_equal (c->root_path, "rootfs");
        assert_true (c->root_readonly);
        assert_string_equal (c->hostname, "runc");
        assert_string_equal (c->domainname, "example.org");

        assert_non_null (p);
        assert_true (p->terminal);
        assert_true (p->has_console_size);
        assert_int_equal (p->console_height, 25);
        assert_int_equal (p->console_width, 80);
        assert_int_equal (p->user.uid, 1000);
        assert_int_equal (p->user.gid, 1001);
        assert_true (p->user.has_umask);
        assert_int_equal (p->user.umask, 18);
        assert_int_equal (p->user.n_additional_gids, 3);
        assert_int_equal (p->user.additional_gids[2], 4294967295u);
        assert_int_equal (strv_len (p->args), 3);
        assert_string_equal (p->args[2], "echo hi");
        assert_int_equal (strv_len (p->env), 2);
        assert_string_equal (p->env[1], "TERM=xterm");
        assert_string_equal (p->cwd, "/");
        assert_non_null (p->caps);
        assert_int_equal (strv_len (p->caps->bounding), 3);
        assert_string_equal (p->caps->bounding[2], "CAP_NET_BIND_SERVICE");
        assert_int_equal (strv_len (p->caps->effective), 2);
        assert_null (p->caps->inheritable);
        assert_non_null (p->caps->ambient);
        assert_null (p->caps->ambient[0]);
        assert_int_equal (p->n_rlimits, 2);
        assert_string_equal (p->rlimits[0].type, "RLIMIT_NOFILE");
        assert_int_equal (p->rlimits[0].resource, RLIMIT_NOFILE);
        assert_int_equal (p->rlimits[0].soft, 1024);
        assert_int_equal (p->rlimits[1].resource, RLIMIT_CORE);
        assert_true (p->rlimits[1].hard == UINT64_MAX);
        assert_true (p->no_new_privileges);
        assert_true (p->has_oom_score_adj);
        assert_int_equal (p->oom_score_adj, -500);
        assert_string_equal (p->apparmor_profile, "docker-default");
        assert_string_equal (p->selinux_label, "system_u:system_r:container_t:s0");

        assert_int_equal (c->n_mounts, 8);
        assert_string_equal (c->mounts[0].destination, "/proc");
        assert_string_equal (c->mounts[0].type, "proc");
        assert_null (c->mounts[0].options);
        assert_string_equal (c->mounts[3].options[4], "size=65536k");
        assert_null (c->mounts[7].type);
        assert_string_equal (c->mounts[7].source, "/srv/data");
        assert_string_equal (c->mounts[7].options[0], "rbind");

        assert_int_equal (c->n_hooks[OCI_HOOK_PRESTART], 1);
        assert_string_equal (c->hooks[OCI_HOOK_PRESTART][0].path, "/usr/bin/fix-mounts");
        assert_string_equal (c->hooks[OCI_HOOK_PRESTART][0].args[1], "arg1");
        assert_string_equal (c->hooks[OCI_HOOK_PRESTART][0].env[0], "key1=value1");
        assert_int_equal (c->hooks[OCI_HOOK_PRESTART][0].timeout, 0);
        assert_int_equal (c->n_hooks[OCI_HOOK_CREATE_RUNTIME], 1);
        assert_int_equal (c->n_hooks[OCI_HOOK_CREATE_CONTAINER], 0);
        assert_null (c->hooks[OCI_HOOK_CREATE_CONTAINER]);
        assert_int_equal (c->hooks[OCI_HOOK_POSTSTART][0].timeout, 5);
        assert_string_equal (c->hooks[OCI_HOOK_POSTSTOP][0].args[1], "-f");
        assert_string_equal (oci_hook_names[OCI_HOOK_CREATE_RUNTIME], "createRuntime");

        assert_int_equal (c->n_annotations, 2);
        assert_string_equal (c->annotation_keys[1], "io.kubernetes.cri.container-type");
        assert_string_equal (c->annotation_values[1], "sandbox");

        assert_non_null (l);
        assert_int_equal (l->n_uid_mappings, 1);
        assert_int_equal (l->uid_mappings[0].host_id, 100000);
        assert_int_equal (l->uid_mappings[0].size, 65536);
        assert_int_equal (l->gid_mappings[0].host_id, 200000);
        assert_int_equal (l->n_devices, 2);
        assert_string_equal (l->devices[0].path, "/dev/fuse");
        assert_int_equal (l->devices[0].type, 'c');
        assert_int_equal (l->devices[0].major, 10);
        assert_int_equal (l->devices[0].minor, 229);
        assert_true (l->devices[0].has_file_mode);
        assert_int_equal (l->devices[0].file_mode, 0666);
        assert_true (l->devices[0].has_uid);
        assert_int_equal (l->devices[1].type, 'p');
        assert_false (l->devices[1].has_file_mode);
        assert_string_equal (l->cgroups_path, "/myRuntime/myContainer");

        struct oci_resources *r = l->resources;
        assert_non_null (r);
        assert_true (r->has_memory_limit);
        assert_int_equal (r->memory_limit, 536870912);
        assert_int_equal (r->memory_reservation, 268435456);
        assert_true (r->has_memory_swap);
        assert_int_equal (r->memory_swap, -1);
        assert_true (r->has_memory_swappiness);
        assert_int_equal (r->memory_swappiness, 0);
        assert_true (r->has_cpu_shares);
        assert_int_equal (r->cpu_shares, 1024);
        assert_int_equal (r->cpu_quota, 100000);
        assert_int_equal (r->cpu_period, 500000);
        assert_string_equal (r->cpu_cpus, "2-3");
        assert_string_equal (r->cpu_mems, "0-7");
        assert_true (r->has_pids_limit);
        assert_int_equal (r->pids_limit, 32771);
        assert_int_equal (r->n_unified, 2);
        assert_string_equal (r->unified_keys[0], "memory.high");
        assert_string_equal (r->unified_values[0], "500000000");
        assert_int_equal (r->n_devices, 2);
        assert_false (r->devices[0].allow);
        assert_int_equal (r->devices[0].type, 0);
        assert_int_equal (r->devices[0].major, -1);
        assert_int_equal (r->devices[0].minor, -1);
        assert_string_equal (r->devices[0].access, "rwm");
        assert_true (r->devices[1].allow);
        assert_int_equal (r->devices[1].type, 'c');
        assert_int_equal (r->devices[1].major, 10);

        assert_int_equal (l->n_sysctl, 2);
        assert_string_equal (l->sysctl_keys[1], "net.core.somaxconn");
        assert_string_equal (l->sysctl_values[1], "256");

        struct oci_seccomp *s = l->seccomp;
        assert_non_null (s);
        assert_string_equal (s->default_action, "SCMP_ACT_ERRNO");
        assert_true (s->has_default_errno_ret);
        assert_int_equal (s->default_errno_ret, 1);
        assert_int_equal (strv_len (s->architectures), 3);
        assert_string_equal (s->flags[0], "SECCOMP_FILTER_FLAG_LOG");
        assert_string_equal (s->listener_path, "/run/seccomp.sock");
        assert_int_equal (s->n_syscalls, 3);
        assert_string_equal (s->syscalls[0].names[1], "chmod");
        assert_string_equal (s->syscalls[0].action, "SCMP_ACT_ALLOW");
        assert_false (s->syscalls[0].has_errno_ret);
        assert_int_equal (s->syscalls[1].n_args, 2);
        assert_int_equal (s->syscalls[1].args[0].value, 8);
        assert_string_equal (s->syscalls[1].args[0].op, "SCMP_CMP_EQ");
        assert_int_equal (s->syscalls[1].args[1].index, 1);
        assert_true (s->syscalls[1].args[1].value == UINT64_MAX);
        assert_int_equal (s->syscalls[1].args[1].value_two, 4);
        assert_true (s->syscalls[2].has_errno_ret);
        assert_int_equal (s->syscalls[2].errno_ret, 38);

        assert_string_equal (l->rootfs_propagation, "rslave");
        assert_int_equal (strv_len (l->masked_paths), 3);
        assert_string_equal (l->readonly_paths[1], "/proc/sys");
        assert_string_equal (l->mount_label, "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811");
        assert_int_equal (l->n_namespaces, 7);
        assert_string_equal (l->namespaces[0].type_name, "pid");
        assert_int_equal (l->namespaces[0].clone_flag, CLONE_NEWPID);
        assert_null (l->namespaces[0].path);
        assert_int_equal (l->namespaces[1].clone_flag, CLONE_NEWNET);
        assert_string_equal (l->namespaces[1].path, "/var/run/netns/neta");
        assert_int_equal (l->namespaces[4].clone_flag, CLONE_NEWNS);
        assert_int_equal (l->namespaces[5].clone_flag, CLONE_NEWUSER);
        assert_int_equal (l->namespaces[6].clone_flag, CLONE_NEWCGROUP);
        assert_non_null (c->tree);
}

static void
test_full_config (void **state)
{
        struct oci_config *c = parse_ok (full_config);
        check_full (c);
        oci_config_free (c);
}

static void
test_round_trip (void **state)
{
        struct oci_config *c = parse_ok (full_config);
        cleanup_free char *json = oci_tree_to_json (c->tree);
        struct oci_config *c2 = NULL;
        moat_error_t err = NULL;

        assert_non_null (json);
        assert_int_equal (oci_config_parse (json, "round", &c2, &err), 0);
        check_full (c2);
        /* a second serialisation is byte-identical */
        cleanup_free char *json2 = oci_tree_to_json (c2->tree);
        assert_string_equal (json, json2);
        /* numbers keep their original text, unknown keys survive */
        assert_non_null (strstr (json, "\"hard\":18446744073709551615"));
        assert_non_null (strstr (json, "\"limit\":9223372036854772000"));
        assert_non_null (strstr (json, "\"x-unknown\":[1,{\"a\":null}]"));
        assert_non_null (strstr (json, "\"windows\":{\"ignored\":true}"));
        oci_config_free (c);
        oci_config_free (c2);
}

static void
test_minimal (void **state)
{
        /* no process, no linux; unknown keys and nulls are fine */
        struct oci_config *c = parse_ok ("{'ociVersion':'1.0.0','root':{'path':'/abs/rootfs'},'process':null,"
                                         "'mounts':null,'newThing':{'x':[true,false,null]}}");
        assert_null (c->process);
        assert_null (c->linux_);
        assert_int_equal (c->n_mounts, 0);
        assert_false (c->root_readonly);
        assert_null (c->hostname);
        oci_config_free (c);

        /* duplicate keys: the last one wins (as with Go's encoding/json) */
        c = parse_ok ("{'ociVersion':'1.0.0','root':{'path':'a'},'root':{'path':'b'}}");
        assert_string_equal (c->root_path, "b");
        oci_config_free (c);
}

struct bad {
        const char *json;
        const char *msg;
};

#define BASE "'ociVersion':'1.0.2','root':{'path':'rootfs'}"
#define PROC(x) "{" BASE ",'process':{'args':['sh'],'cwd':'/'," x "}}"
#define LINUX(x) "{" BASE ",'linux':{" x "}}"

static const struct bad bad_cases[] = {
        {"{'ociVersion':", "config.json: parse error: premature EOF"},
        {"", "config.json: parse error: premature EOF"},
        {"{'a' 1}", "config.json: parse error: object key and value must be separated by a colon"},
        {"{'a':1}{", "config.json: parse error: trailing garbage"},
        {"{'a':'\\x'}", "config.json: parse error: lexical error"},
        {"[1,2]", "config.json: expected a JSON object"},
        {"{'root':{'path':'rootfs'}}", "config.json: ociVersion: missing"},
        {"{'ociVersion':1,'root':{'path':'rootfs'}}", "config.json: ociVersion: expected a string"},
        {"{'ociVersion':'1'}", "config.json: root: missing"},
        {"{'ociVersion':'1','root':'rootfs'}", "config.json: root: expected an object"},
        {"{'ociVersion':'1','root':{}}", "config.json: root.path: missing"},
        {"{'ociVersion':'1','root':{'path':''}}", "config.json: root.path: must not be empty"},
        {"{'ociVersion':'1','root':{'path':'r','readonly':'yes'}}", "config.json: root.readonly: expected a boolean"},
        {"{" BASE ",'process':[]}", "config.json: process: expected an object"},
        {"{" BASE ",'process':{'args':'sh','cwd':'/'}}", "config.json: process.args: expected an array of strings"},
        {"{" BASE ",'process':{'args':['sh',1],'cwd':'/'}}", "config.json: process.args: expected an array of strings"},
        {"{" BASE ",'process':{'args':[],'cwd':'/'}}", "config.json: process.args: must not be empty"},
        {"{" BASE ",'process':{'cwd':'/'}}", "config.json: process.args: missing"},
        {"{" BASE ",'process':{'args':['sh']}}", "config.json: process.cwd: missing"},
        {"{" BASE ",'process':{'args':['sh'],'cwd':'tmp'}}",
         "config.json: process.cwd: must be an absolute path, got \"tmp\""},
        {PROC ("'terminal':1"), "config.json: process.terminal: expected a boolean"},
        {PROC ("'consoleSize':{'height':1}"), "config.json: process.consoleSize.width: missing"},
        {PROC ("'user':{'uid':-1}"), "config.json: process.user.uid: expected an unsigned 32-bit integer"},
        {PROC ("'user':{'uid':1.5}"), "config.json: process.user.uid: expected an unsigned 32-bit integer"},
        {PROC ("'user':{'gid':4294967296}"), "config.json: process.user.gid: expected an unsigned 32-bit integer"},
        {PROC ("'user':{'uid':'0'}"), "config.json: process.user.uid: expected an unsigned 32-bit integer"},
        {PROC ("'user':{'additionalGids':[1,'x']}"),
         "config.json: process.user.additionalGids[1]: expected an unsigned 32-bit integer"},
        {PROC ("'env':{'A':'B'}"), "config.json: process.env: expected an array of strings"},
        {PROC ("'capabilities':{'bounding':'CAP_KILL'}"),
         "config.json: process.capabilities.bounding: expected an array of strings"},
        {PROC ("'rlimits':[{'type':'RLIMIT_FOO','soft':1,'hard':1}]"),
         "config.json: process.rlimits[0].type: unknown rlimit type \"RLIMIT_FOO\""},
        {PROC ("'rlimits':[{'type':'RLIMIT_NOFILE','hard':1}]"), "config.json: process.rlimits[0].soft: missing"},
        {PROC ("'rlimits':[{'type':'RLIMIT_NOFILE','soft':1,'hard':1},{'type':'RLIMIT_NOFILE','soft':2,'hard':2}]"),
         "config.json: process.rlimits[1].type: duplicate rlimit type \"RLIMIT_NOFILE\""},
        {PROC ("'rlimits':[{'type':'RLIMIT_NOFILE','soft':10,'hard':1}]"),
         "config.json: process.rlimits[0].soft: greater than hard"},
        {PROC ("'rlimits':[7]"), "config.json: process.rlimits[0]: expected an object"},
        {PROC ("'oomScoreAdj':5000"), "config.json: process.oomScoreAdj: must be between -1000 and 1000"},
        {PROC ("'oomScoreAdj':'1'"), "config.json: process.oomScoreAdj: expected a 32-bit integer"},
        {PROC ("'noNewPrivileges':'true'"), "config.json: process.noNewPrivileges: expected a boolean"},
        {"{" BASE ",'hostname':5}", "config.json: hostname: expected a string"},
        {"{" BASE ",'mounts':{}}", "config.json: mounts: expected an array of objects"},
        {"{" BASE ",'mounts':[{'destination':'/a'},{'destination':'b'}]}",
         "config.json: mounts[1].destination: must be an absolute path, got \"b\""},
        {"{" BASE ",'mounts':[{'type':'tmpfs'}]}", "config.json: mounts[0].destination: missing"},
        {"{" BASE ",'mounts':[{'destination':'/a','options':'ro'}]}",
         "config.json: mounts[0].options: expected an array of strings"},
        {"{" BASE ",'hooks':{'prestart':[{'path':'hook'}]}}",
         "config.json: hooks.prestart[0].path: must be an absolute path"},
        {"{" BASE ",'hooks':{'poststop':[{'path':'/h','timeout':0}]}}",
         "config.json: hooks.poststop[0].timeout: must be greater than zero"},
        {"{" BASE ",'hooks':{'createContainer':{}}}",
         "config.json: hooks.createContainer: expected an array of objects"},
        {"{" BASE ",'annotations':{'foo':1}}", "config.json: annotations.foo: expected a string"},
        {"{" BASE ",'linux':[]}", "config.json: linux: expected an object"},
        {LINUX ("'namespaces':[{'type':'pid'},{'type':'ipc'},{'type':'foo'}]"),
         "config.json: linux.namespaces[2].type: unknown namespace type \"foo\""},
        {LINUX ("'namespaces':[{'type':'pid'},{'type':'pid'}]"),
         "config.json: linux.namespaces[1].type: duplicate namespace type \"pid\""},
        {LINUX ("'namespaces':[{'path':'/x'}]"), "config.json: linux.namespaces[0].type: missing"},
        {LINUX ("'namespaces':['pid']"), "config.json: linux.namespaces[0]: expected an object"},
        {LINUX ("'namespaces':[{'type':'network','path':'netns'}]"),
         "config.json: linux.namespaces[0].path: must be an absolute path"},
        {LINUX ("'uidMappings':[{'containerID':0,'hostID':1000}]"), "config.json: linux.uidMappings[0].size: missing"},
        {LINUX ("'gidMappings':[{'containerID':0,'hostID':1000,'size':0}]"),
         "config.json: linux.gidMappings[0].size: must not be zero"},
        {LINUX ("'devices':[{'path':'/dev/x','type':'x','major':1,'minor':1}]"),
         "config.json: linux.devices[0].type: unknown device type \"x\""},
        {LINUX ("'devices':[{'path':'/dev/x','type':'c','minor':1}]"), "config.json: linux.devices[0].major: missing"},
        {LINUX ("'devices':[{'path':'dev/x','type':'c','major':1,'minor':1}]"),
         "config.json: linux.devices[0].path: must be an absolute path"},
        {LINUX ("'resources':{'memory':{'limit':'1G'}}"),
         "config.json: linux.resources.memory.limit: expected a 64-bit integer"},
        {LINUX ("'resources':{'memory':{'swappiness':200}}"),
         "config.json: linux.resources.memory.swappiness: must be between 0 and 100"},
        {LINUX ("'resources':{'cpu':{'shares':-2}}"),
         "config.json: linux.resources.cpu.shares: expected an unsigned 64-bit integer"},
        {LINUX ("'resources':{'pids':{'limit':1e3}}"),
         "config.json: linux.resources.pids.limit: expected a 64-bit integer"},
        {LINUX ("'resources':{'devices':[{'access':'rwm'}]}"),
         "config.json: linux.resources.devices[0].allow: missing"},
        {LINUX ("'resources':{'devices':[{'allow':true,'access':'rwx'}]}"),
         "config.json: linux.resources.devices[0].access: invalid access \"rwx\""},
        {LINUX ("'resources':{'devices':[{'allow':true,'type':'p'}]}"),
         "config.json: linux.resources.devices[0].type: unknown device type \"p\""},
        {LINUX ("'resources':{'unified':{'memory.max':100}}"),
         "config.json: linux.resources.unified.memory.max: expected a string"},
        {LINUX ("'sysctl':['a']"), "config.json: linux.sysctl: expected an object"},
        {LINUX ("'seccomp':{'syscalls':[]}"), "config.json: linux.seccomp.defaultAction: missing"},
        {LINUX ("'seccomp':{'defaultAction':'SCMP_ACT_DENY'}"),
         "config.json: linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_DENY\""},
        {LINUX ("'seccomp':{'defaultAction':'SCMP_ACT_ALLOW','syscalls':[{'names':[],'action':'SCMP_ACT_ERRNO'}]}"),
         "config.json: linux.seccomp.syscalls[0].names: must not be empty"},
        {LINUX ("'seccomp':{'defaultAction':'SCMP_ACT_ALLOW','syscalls':[{'names':['a'],'action':'ALLOW'}]}"),
         "config.json: linux.seccomp.syscalls[0].action: unknown seccomp action \"ALLOW\""},
        {LINUX ("'seccomp':{'defaultAction':'SCMP_ACT_ALLOW','syscalls':[{'names':['a'],'action':'SCMP_ACT_ERRNO',"
                "'args':[{'index':0,'value':1,'op':'SCMP_CMP_FOO'}]}]}"),
         "config.json: linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator \"SCMP_CMP_FOO\""},
        {LINUX ("'seccomp':{'defaultAction':'SCMP_ACT_ALLOW','syscalls':[{'names':['a'],'action':'SCMP_ACT_ERRNO',"
                "'args':[{'index':6,'value':1,'op':'SCMP_CMP_EQ'}]}]}"),
         "config.json: linux.seccomp.syscalls[0].args[0].index: must be between 0 and 5"},
        {LINUX ("'seccomp':{'defaultAction':'SCMP_ACT_ALLOW','syscalls':[{'names':['a'],'action':'SCMP_ACT_ERRNO',"
                "'args':[{'index':0,'op':'SCMP_CMP_EQ'}]}]}"),
         "config.json: linux.seccomp.syscalls[0].args[0].value: missing"},
        {LINUX ("'rootfsPropagation':'sideways'"), "config.json: linux.rootfsPropagation: unknown propagation"},
        {LINUX ("'maskedPaths':'/proc'"), "config.json: linux.maskedPaths: expected an array of strings"},
        {LINUX ("'cgroupsPath':{}"), "config.json: linux.cgroupsPath: expected a string"},
};

static void
test_bad_configs (void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE (bad_cases); i++) {
                cleanup_free char *json = J (bad_cases[i].json);
                struct oci_config *c = (struct oci_config *)0x1;
                moat_error_t err = NULL;
                int r = oci_config_parse (json, "config.json", &c, &err);
                if (r != -1 || err == NULL)
                        fail_msg ("case %zu (%s): parsed without error", i, json);
                assert_null (c);
                if (strstr (err->msg, bad_cases[i].msg) == NULL)
                        fail_msg ("case %zu: got \"%s\", want \"%s\"", i, err->msg, bad_cases[i].msg);
                moat_error_release (&err);
        }
}

static void
test_process_parse (void **state)
{
        cleanup_free char *json = J ("{'args':['/bin/ls','-l'],'cwd':'/work','env':['A=1'],'terminal':false,"
                                     "'user':{'uid':5,'gid':6},'capabilities':{'bounding':['CAP_CHOWN']}}");
        struct oci_process *p = NULL;
        moat_error_t err = NULL;

        assert_int_equal (oci_process_parse (json, "process.json", &p, &err), 0);
        assert_string_equal (p->args[0], "/bin/ls");
        assert_string_equal (p->cwd, "/work");
        assert_int_equal (p->user.uid, 5);
        assert_string_equal (p->caps->bounding[0], "CAP_CHOWN");
        assert_false (p->user.has_umask);
        oci_process_free (p);

        /* lone process: paths without the "process." prefix */
        cleanup_free char *bad = J ("{'args':['x'],'cwd':'rel'}");
        assert_int_equal (oci_process_parse (bad, "process.json", &p, &err), -1);
        assert_null (p);
        assert_string_equal (err->msg, "process.json: cwd: must be an absolute path, got \"rel\"");
        moat_error_release (&err);
        assert_int_equal (oci_process_parse ("{\"args\":", "process.json", &p, &err), -1);
        assert_non_null (strstr (err->msg, "process.json: parse error: "));
        moat_error_release (&err);

        /* from a tree, which stays the caller's */
        yajl_val v = yajl_tree_parse (json, NULL, 0);
        assert_int_equal (oci_process_parse_tree (v, "exec", &p, &err), 0);
        assert_string_equal (p->env[0], "A=1");
        yajl_tree_free (v);
        assert_string_equal (p->env[0], "A=1"); /* copies, not pointers into the tree */
        oci_process_free (p);
}

static void
test_resources_parse (void **state)
{
        cleanup_free char *json = J ("{'memory':{'limit':1048576},'cpu':{'quota':-1,'period':100000},"
                                     "'pids':{'limit':-1}}");
        struct oci_resources *r = NULL;
        moat_error_t err = NULL;

        assert_int_equal (oci_resources_parse (json, "resources.json", &r, &err), 0);
        assert_true (r->has_memory_limit);
        assert_int_equal (r->memory_limit, 1048576);
        assert_false (r->has_memory_swap);
        assert_int_equal (r->cpu_quota, -1);
        assert_int_equal (r->pids_limit, -1);
        assert_false (r->has_cpu_shares);
        oci_resources_free (r);

        cleanup_free char *bad = J ("{'memory':{'limit':true}}");
        assert_int_equal (oci_resources_parse (bad, "resources.json", &r, &err), -1);
        assert_string_equal (err->msg, "resources.json: memory.limit: expected a 64-bit integer");
        moat_error_release (&err);
}

static void
test_load (void **state)
{
        char dir[] = "/tmp/moat-test-oci-XXXXXX";
        moat_error_t err = NULL;
        struct oci_config *c = NULL;

        assert_non_null (mkdtemp (dir));
        assert_int_equal (oci_config_load (dir, &c, &err), -1);
        assert_non_null (strstr (err->msg, "config.json"));
        assert_int_equal (err->errno_, ENOENT);
        moat_error_release (&err);

        cleanup_free char *path = xasprintf_r ("%s/config.json", dir);
        cleanup_free char *json = J (full_config);
        FILE *f = fopen (path, "w");
        assert_non_null (f);
        fputs (json, f);
        fclose (f);
        assert_int_equal (oci_config_load (dir, &c, &err), 0);
        check_full (c);
        oci_config_free (c);

        f = fopen (path, "w");
        fputs ("{\"ociVersion\":\"1\"}", f);
        fclose (f);
        assert_int_equal (oci_config_load (dir, &c, &err), -1);
        /* the error names the file */
        assert_non_null (strstr (err->msg, path));
        assert_non_null (strstr (err->msg, "root: missing"));
        moat_error_release (&err);
        unlink (path);
        rmdir (dir);
}

static void
test_signals (void **state)
{
        assert_int_equal (oci_signal_parse ("SIGKILL"), SIGKILL);
        assert_int_equal (oci_signal_parse ("KILL"), SIGKILL);
        assert_int_equal (oci_signal_parse ("kill"), SIGKILL);
        assert_int_equal (oci_signal_parse ("sigterm"), SIGTERM);
        assert_int_equal (oci_signal_parse ("9"), 9);
        assert_int_equal (oci_signal_parse ("15"), SIGTERM);
        assert_int_equal (oci_signal_parse ("SIGHUP"), SIGHUP);
        assert_int_equal (oci_signal_parse ("WINCH"), SIGWINCH);
        assert_int_equal (oci_signal_parse ("SIGCHLD"), SIGCHLD);
        assert_int_equal (oci_signal_parse ("SIGCLD"), SIGCHLD);
        assert_int_equal (oci_signal_parse ("SIGUSR1"), SIGUSR1);
        assert_int_equal (oci_signal_parse ("SIGSTOP"), SIGSTOP);
        assert_int_equal (oci_signal_parse ("SIGPWR"), SIGPWR);
        assert_int_equal (oci_signal_parse ("SIGRTMIN"), SIGRTMIN);
        assert_int_equal (oci_signal_parse ("SIGRTMIN+3"), SIGRTMIN + 3);
        assert_int_equal (oci_signal_parse ("RTMIN+1"), SIGRTMIN + 1);
        assert_int_equal (oci_signal_parse ("SIGRTMAX"), SIGRTMAX);
        assert_int_equal (oci_signal_parse ("SIGRTMAX-2"), SIGRTMAX - 2);
        assert_int_equal (oci_signal_parse ("64"), 64);
        assert_int_equal (oci_signal_parse ("0"), -1);
        assert_int_equal (oci_signal_parse ("65"), -1);
        assert_int_equal (oci_signal_parse ("-9"), -1);
        assert_int_equal (oci_signal_parse ("9x"), -1);
        assert_int_equal (oci_signal_parse (""), -1);
        assert_int_equal (oci_signal_parse (NULL), -1);
        assert_int_equal (oci_signal_parse ("SIG"), -1);
        assert_int_equal (oci_signal_parse ("SIGFOO"), -1);
        assert_int_equal (oci_signal_parse ("SIGRTMIN+99"), -1);
        assert_int_equal (oci_signal_parse ("SIGRTMIN+"), -1);
        assert_int_equal (oci_signal_parse ("SIGRTMIN-1"), -1);
        assert_int_equal (oci_signal_parse ("SIGRTMAX-99"), -1);
        assert_int_equal (oci_signal_parse ("SIGKILLX"), -1);
        assert_int_equal (oci_signal_parse ("SIGSIGSIGSIGSIGSIGSIGSIGSIGSIGSIGSIGSIGSIGKILL"), -1);
}

static void
test_tree_json_escaping (void **state)
{
        /* control characters, quotes, backslashes and UTF-8 survive a round trip */
        const char *src = "{\"s\":\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/\xc3\xa9\\u2028\",\"n\":[-0,1.5e3,-12,"
                          "18446744073709551616,0.1],\"e\":{},\"a\":[],\"t\":true,\"f\":false,\"z\":null,"
                          "\"k\\\"ey\":1}";
        yajl_val v = yajl_tree_parse (src, NULL, 0);
        assert_non_null (v);
        cleanup_free char *out = oci_tree_to_json (v);
        assert_string_equal (out, "{\"s\":\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/\xc3\xa9\xe2\x80\xa8\","
                                  "\"n\":[-0,1.5e3,-12,18446744073709551616,0.1],\"e\":{},\"a\":[],\"t\":true,"
                                  "\"f\":false,\"z\":null,\"k\\\"ey\":1}");
        yajl_val v2 = yajl_tree_parse (out, NULL, 0);
        assert_non_null (v2);
        const char *sp[] = {"s", NULL};
        assert_string_equal (oci_tree_get (v2, sp)->u.string, oci_tree_get (v, sp)->u.string);
        yajl_tree_free (v);
        yajl_tree_free (v2);

        cleanup_free char *nul = oci_tree_to_json (NULL);
        assert_string_equal (nul, "null");
}

static void
test_tree_edit (void **state)
{
        struct oci_config *c = parse_ok (full_config);
        const char *root_path[] = {"root", "path", NULL};
        const char *mounts_path[] = {"mounts", NULL};
        const char *hooks_path[] = {"hooks", NULL};
        const char *missing_path[] = {"root", "nope", "deeper", NULL};
        const char *through_string[] = {"ociVersion", "x", NULL};
        moat_error_t err = NULL;

        assert_ptr_equal (oci_tree_get (c->tree, NULL), c->tree);
        assert_null (oci_tree_get (c->tree, missing_path));
        assert_null (oci_tree_get (c->tree, through_string));

        /* rewrite root.path and a bind mount source, drop hooks */
        yajl_val rp = oci_tree_get (c->tree, root_path);
        assert_true (YAJL_IS_STRING (rp));
        oci_tree_set_string (rp, "/run/moat/share/abc/rootfs");
        yajl_val mounts = oci_tree_get (c->tree, mounts_path);
        assert_true (YAJL_IS_ARRAY (mounts));
        const char *src_key[] = {"source", NULL};
        oci_tree_set_string (oci_tree_get (mounts->u.array.values[7], src_key), "/run/moat/share/abc/mounts/0");
        oci_tree_remove_key (c->tree, "hooks");
        assert_null (oci_tree_get (c->tree, hooks_path));
        oci_tree_remove_key (c->tree, "hooks"); /* absent: no-op */
        oci_tree_remove_key (rp, "x");          /* not an object: no-op */
        /* set_string on a non-string node replaces the whole value */
        const char *linux_path[] = {"linux", "resources", NULL};
        oci_tree_set_string (oci_tree_get (c->tree, linux_path), "gone");
        /* drop the proc mount, add a key, replace a key */
        oci_tree_array_remove (mounts, 0);
        oci_tree_array_remove (mounts, 99);
        oci_tree_object_set (c->tree, "hostname", oci_tree_new_string ("guest"));
        oci_tree_object_set (c->tree, "newkey", oci_tree_new_string ("v\"1"));

        cleanup_free char *json = oci_tree_to_json (c->tree);
        assert_null (strstr (json, "\"hooks\""));
        assert_non_null (strstr (json, "\"resources\":\"gone\""));
        assert_non_null (strstr (json, "\"newkey\":\"v\\\"1\""));
        /* the rewritten document reparses: the edits show in the structs */
        struct oci_config *c2 = NULL;
        cleanup_free char *fixed = NULL;
        /* linux.resources is now a string, which the parser rejects by name */
        assert_int_equal (oci_config_parse (json, "guest", &c2, &err), -1);
        assert_non_null (strstr (err->msg, "guest: linux.resources: expected an object"));
        moat_error_release (&err);
        const char *linux_only[] = {"linux", NULL};
        oci_tree_remove_key (oci_tree_get (c->tree, linux_only), "resources");
        fixed = oci_tree_to_json (c->tree);
        assert_int_equal (oci_config_parse (fixed, "guest", &c2, &err), 0);
        assert_string_equal (c2->root_path, "/run/moat/share/abc/rootfs");
        assert_int_equal (c2->n_mounts, 7);
        assert_string_equal (c2->mounts[0].destination, "/dev");
        assert_string_equal (c2->mounts[6].source, "/run/moat/share/abc/mounts/0");
        assert_int_equal (c2->n_hooks[OCI_HOOK_PRESTART], 0);
        assert_string_equal (c2->hostname, "guest");
        assert_null (c2->linux_->resources);
        assert_int_equal (c2->linux_->n_namespaces, 7);
        oci_config_free (c2);
        oci_config_free (c);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_full_config),
                cmocka_unit_test (test_round_trip),
                cmocka_unit_test (test_minimal),
                cmocka_unit_test (test_bad_configs),
                cmocka_unit_test (test_process_parse),
                cmocka_unit_test (test_resources_parse),
                cmocka_unit_test (test_load),
                cmocka_unit_test (test_signals),
                cmocka_unit_test (test_tree_json_escaping),
                cmocka_unit_test (test_tree_edit),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}
