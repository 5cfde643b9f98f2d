/* SPDX-License-Identifier: Apache-2.0 */
/* moat setup: registration with podman, docker and containerd
 * (include/moat/setup.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "moat/json_gen.h"
#include "moat/process.h"
#include "moat/setup.h"
#include "moat/util.h"

static const char *const client_names[] = {
        [MOAT_SETUP_PODMAN] = "podman",
        [MOAT_SETUP_DOCKER] = "docker",
        [MOAT_SETUP_CONTAINERD] = "containerd",
};

/* the client's file, below root_dir */
static const char *const client_files[] = {
        [MOAT_SETUP_PODMAN] = "/etc/containers/containers.conf.d/moat.conf",
        [MOAT_SETUP_DOCKER] = "/etc/docker/daemon.json",
        [MOAT_SETUP_CONTAINERD] = "/etc/containerd/conf.d/moat.toml",
};

#define CONTAINERD_CONFIG "/etc/containerd/config.toml"
#define CONTAINERD_IMPORTS "/etc/containerd/conf.d/*.toml"
/* daemon.json is small; a larger file is refused, not parsed */
#define DAEMON_JSON_MAX (1 << 20)

int
moat_setup_client_lookup (const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE (client_names); i++)
                if (strcmp (name, client_names[i]) == 0)
                        return i;
        return -1;
}

static const char *
root_of (const char *root_dir)
{
        if (root_dir == NULL || strcmp (root_dir, "/") == 0)
                return "";
        return root_dir;
}

char *
moat_setup_path (enum moat_setup_client client, const char *root_dir)
{
        return xasprintf_r ("%s%s", root_of (root_dir), client_files[client]);
}

/* The first line of every file moat setup writes in TOML: how --remove
 * knows the file is its own. */
static char *
marker (enum moat_setup_client client)
{
        return xasprintf_r ("# Written by `moat setup %s`; `moat setup %s --remove` deletes it.\n",
                            client_names[client], client_names[client]);
}

static int
check_toml_string (const char *what, const char *s, moat_error_t *err)
{
        for (const char *p = s; *p; p++)
                if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
                        return moat_make_error (err, 0,
                                                "%s \"%s\": a quote, backslash or control character is not "
                                                "supported in this path",
                                                what, s);
        return 0;
}

/* Writes path atomically (a temporary file in its directory, renamed over
 * it), with the old file's mode or `mode` for a new one. */
static int
replace_file (const char *path, const char *data, size_t len, int mode, moat_error_t *err)
{
        cleanup_free char *tmp = xasprintf_r ("%s.moat-setup.XXXXXX", path);
        cleanup_close int fd = mkstemp (tmp);
        struct stat st;

        if (fd < 0)
                return moat_make_error (err, errno, "create a temporary file next to %s", path);
        if (stat (path, &st) == 0)
                mode = st.st_mode & 07777;
        if (fchmod (fd, mode) < 0 || write_all (fd, data, len) < 0 || fsync (fd) < 0) {
                moat_make_error (err, errno, "write %s", tmp);
                unlink (tmp);
                return -1;
        }
        if (rename (tmp, path) < 0) {
                moat_make_error (err, errno, "rename %s to %s", tmp, path);
                unlink (tmp);
                return -1;
        }
        return 0;
}

/* Creates the directories of path that are missing, reporting each. */
static int
make_parent (const char *path, bool dry_run, FILE *out, moat_error_t *err)
{
        cleanup_free char *dir = xstrdup (path);
        char *slash = strrchr (dir, '/');
        struct stat st;

        if (slash == NULL || slash == dir)
                return 0;
        *slash = '\0';
        if (stat (dir, &st) == 0) {
                if (!S_ISDIR (st.st_mode))
                        return moat_make_error (err, ENOTDIR, "%s", dir);
                return 0;
        }
        if (dry_run) {
                fprintf (out, "would create directory %s\n", dir);
                return 0;
        }
        if (mkdir_p (dir, 0755, err) < 0)
                return -1;
        fprintf (out, "created directory %s\n", dir);
        return 0;
}

/* --- podman and containerd: a drop-in file of moat's own ----------------- */

static char *
podman_text (const struct moat_setup_opts *o)
{
        cleanup_free char *m = marker (MOAT_SETUP_PODMAN);
        return xasprintf_r ("%s"
                            "# Registers moat as an OCI runtime: podman --runtime moat run ...\n"
                            "[engine.runtimes]\n"
                            "moat = [\"%s\"]\n",
                            m, o->moat_path);
}

/* the runtime tables, as a drop-in holds them and as config.toml would */
static char *
containerd_tables (const struct moat_setup_opts *o)
{
        return xasprintf_r ("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.moat]\n"
                            "  runtime_type = \"io.containerd.moat.v2\"\n"
                            "  pod_annotations = [\"io.moat.*\"]\n"
                            "  privileged_without_host_devices = true\n"
                            "\n"
                            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.moat-runc]\n"
                            "  runtime_type = \"io.containerd.runc.v2\"\n"
                            "  privileged_without_host_devices = true\n"
                            "  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.moat-runc.options]\n"
                            "    BinaryName = \"%s\"\n",
                            o->moat_path);
}

static char *
containerd_text (const struct moat_setup_opts *o)
{
        cleanup_free char *m = marker (MOAT_SETUP_CONTAINERD);
        cleanup_free char *t = containerd_tables (o);
        return xasprintf_r ("%s"
                            "# CRI runtime handlers (a RuntimeClass's handler):\n"
                            "#   moat       containerd-shim-moat-v2 (io.containerd.moat.v2) from containerd's PATH\n"
                            "#   moat-runc  containerd's runc shim with moat as its runc binary\n"
                            "version = 2\n"
                            "\n%s",
                            m, t);
}

/* 1: path exists and is moat's (its text in *old), 0: absent, -1: error
 * (it exists and is not moat's, or cannot be read) */
static int
read_own_file (enum moat_setup_client client, const char *path, char **old, moat_error_t *err)
{
        cleanup_free char *m = marker (client);
        cleanup_error moat_error_t e = NULL;
        struct stat st;

        *old = NULL;
        if (lstat (path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return moat_make_error (err, errno, "%s", path);
        }
        if (!S_ISREG (st.st_mode))
                return moat_make_error (err, 0, "%s: not a regular file; not touching it", path);
        if (read_file (path, old, NULL, &e) < 0)
                return moat_make_error (err, e->errno_, "%s", path);
        if (strncmp (*old, m, strlen (m)) != 0) {
                free (*old);
                *old = NULL;
                return moat_make_error (err, 0,
                                        "%s exists and was not written by moat setup (its first line is not \"%.*s\"); "
                                        "not touching it",
                                        path, (int)strlen (m) - 1, m);
        }
        return 1;
}

static int
dropin_add (enum moat_setup_client client, const char *path, const char *text, const struct moat_setup_opts *o,
            FILE *out, moat_error_t *err)
{
        cleanup_free char *old = NULL;
        int r = read_own_file (client, path, &old, err);
        if (r < 0)
                return -1;
        if (r == 1 && strcmp (old, text) == 0) {
                fprintf (out, "unchanged %s (moat is registered already)\n", path);
                return 0;
        }
        if (o->dry_run) {
                fprintf (out, "would %s %s:\n%s", r ? "rewrite" : "write", path, text);
                return 0;
        }
        if (make_parent (path, false, out, err) < 0 || replace_file (path, text, strlen (text), 0644, err) < 0)
                return -1;
        fprintf (out, "%s %s\n", r ? "rewrote" : "wrote", path);
        return 0;
}

static int
dropin_remove (enum moat_setup_client client, const char *path, const struct moat_setup_opts *o, FILE *out,
               moat_error_t *err)
{
        cleanup_free char *old = NULL;
        cleanup_free char *dir = xstrdup (path);
        int r = read_own_file (client, path, &old, err);
        if (r < 0)
                return -1;
        if (r == 0) {
                fprintf (out, "nothing to remove: %s does not exist\n", path);
                return 0;
        }
        if (o->dry_run) {
                fprintf (out, "would remove %s\n", path);
                return 0;
        }
        if (unlink (path) < 0)
                return moat_make_error (err, errno, "remove %s", path);
        fprintf (out, "removed %s\n", path);
        /* the drop-in directory, if that left it empty */
        *strrchr (dir, '/') = '\0';
        if (rmdir (dir) == 0)
                fprintf (out, "removed empty directory %s\n", dir);
        return 0;
}

/* --- containerd: does config.toml import the drop-in? --------------------- */

/* Runs `containerd --config CONFIG config dump` (containerd's own TOML
 * parser and its imports) and looks for path in its imports line.
 * 1: imported, 0: not, -1: containerd failed (config.toml is broken). */
static int
containerd_imports (const char *containerd, const char *config, const char *path, moat_error_t *err)
{
        char logt[] = "/tmp/moat-setup-dump.XXXXXX";
        cleanup_close int lfd = mkstemp (logt);
        cleanup_free char *dump = NULL;
        cleanup_free char *want = xasprintf_r ("\"%s\"", path);
        cleanup_error moat_error_t e = NULL;
        char *const argv[] = {(char *)containerd, "--config", (char *)config, "config", "dump", NULL};
        struct moat_spawn_opts so = {.log = logt, .pass_fd = -1};
        pid_t pid;
        int status = 0, r;
        struct stat st;

        if (lfd < 0)
                return moat_make_error (err, errno, "create a temporary file");
        if (moat_spawn (argv, &so, &pid, err) < 0) {
                unlink (logt);
                return -1;
        }
        r = moat_wait_pid (pid, 30000, &status);
        if (r == 0) {
                moat_stop_pid (pid, SIGKILL, 1000);
                unlink (logt);
                return moat_make_error (err, ETIMEDOUT, "%s config dump", containerd);
        }
        if (fstat (lfd, &st) < 0 || st.st_size > (16 << 20) || read_file (logt, &dump, NULL, &e) < 0) {
                unlink (logt);
                return moat_make_error (err, errno, "%s config dump: its output", containerd);
        }
        unlink (logt);
        if (r < 0 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
                char *nl = strchr (dump, '\n');
                if (nl)
                        *nl = '\0';
                return moat_make_error (err, 0, "%s --config %s config dump failed: %s", containerd, config, dump);
        }
        for (char *line = dump; line && *line;) {
                char *nl = strchr (line, '\n');
                if (nl)
                        *nl = '\0';
                if (strncmp (line, "imports = [", 11) == 0)
                        return strstr (line, want) != NULL;
                line = nl ? nl + 1 : NULL;
        }
        return 0;
}

static int
containerd_add (const char *path, const struct moat_setup_opts *o, FILE *out, moat_error_t *err)
{
        cleanup_free char *text = containerd_text (o);
        cleanup_free char *tables = containerd_tables (o);
        cleanup_free char *config = xasprintf_r ("%s%s", root_of (o->root_dir), CONTAINERD_CONFIG);
        cleanup_free char *imports = xasprintf_r ("%s%s", root_of (o->root_dir), CONTAINERD_IMPORTS);
        cleanup_free char *old = NULL;
        const char *why = NULL;
        struct stat st;
        bool had;
        int r;

        if (o->dry_run)
                return dropin_add (MOAT_SETUP_CONTAINERD, path, text, o, out, err);
        had = read_own_file (MOAT_SETUP_CONTAINERD, path, &old, err) == 1;
        if (err && *err)
                return -1;
        if (o->containerd == NULL)
                why = " (no containerd binary on PATH to ask)";
        else if (stat (config, &st) < 0)
                why = " (there is no config.toml)";
        else {
                if (dropin_add (MOAT_SETUP_CONTAINERD, path, text, o, out, err) < 0)
                        return -1;
                r = containerd_imports (o->containerd, config, path, err);
                if (r == 1) {
                        fprintf (out, "containerd imports it (%s config dump); restart containerd\n", o->containerd);
                        return 0;
                }
                /* not imported: take back what this call wrote */
                if (!had && unlink (path) == 0)
                        fprintf (out, "removed %s again: containerd does not import it\n", path);
                if (r < 0)
                        return -1;
        }
        fprintf (out,
                 "nothing changed: containerd would not read %s%s. Either add\n"
                 "  imports = [\"%s\"]\n"
                 "at the top of %s (before its first table, with version = 2) and run moat setup containerd "
                 "again, or add these tables to it by hand:\n\n%s",
                 path, why ? why : "", imports, config, tables);
        return 0;
}

/* --- docker: merge into daemon.json ---------------------------------------- */

/* daemon.json parsed: NULL *tree when the file does not exist. */
static int
docker_read (const char *path, yajl_val *tree, moat_error_t *err)
{
        cleanup_free char *text = NULL;
        cleanup_error moat_error_t e = NULL;
        char ebuf[256] = "";
        struct stat st;
        size_t len;

        *tree = NULL;
        if (stat (path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return moat_make_error (err, errno, "%s", path);
        }
        if (!S_ISREG (st.st_mode) || st.st_size > DAEMON_JSON_MAX)
                return moat_make_error (err, 0, "%s: not a regular file of at most %d bytes; left untouched", path,
                                        DAEMON_JSON_MAX);
        if (read_file (path, &text, &len, &e) < 0)
                return moat_make_error (err, e->errno_, "%s", path);
        /* an empty file is what dockerd reads as no settings */
        if (strspn (text, " \t\r\n") == len) {
                *tree = yajl_tree_parse ("{}", NULL, 0);
                return 0;
        }
        *tree = yajl_tree_parse (text, ebuf, sizeof ebuf);
        if (*tree == NULL) {
                /* yajl's message spans lines and pads them: one line */
                char *w = ebuf;
                for (char *p = ebuf; *p; p++) {
                        char ch = *p == '\n' || *p == '\t' ? ' ' : *p;
                        if (ch == ' ' && (w == ebuf || w[-1] == ' '))
                                continue;
                        *w++ = ch;
                }
                while (w > ebuf && w[-1] == ' ')
                        w--;
                *w = '\0';
                return moat_make_error (err, 0, "%s: not valid JSON (%s); left untouched", path, ebuf);
        }
        if (!YAJL_IS_OBJECT (*tree)) {
                yajl_tree_free (*tree);
                *tree = NULL;
                return moat_make_error (err, 0, "%s: not a JSON object; left untouched", path);
        }
        return 0;
}

static yajl_val
obj_get (yajl_val obj, const char *key)
{
        for (size_t i = 0; obj && YAJL_IS_OBJECT (obj) && i < obj->u.object.len; i++)
                if (strcmp (obj->u.object.keys[i], key) == 0)
                        return obj->u.object.values[i];
        return NULL;
}

/* "moat": {"path": P} exactly */
static bool
is_our_entry (yajl_val v, const char *moat_path)
{
        yajl_val p = obj_get (v, "path");
        if (v == NULL || !YAJL_IS_OBJECT (v) || v->u.object.len != 1 || p == NULL || !YAJL_IS_STRING (p))
                return false;
        return strcmp (p->u.string, moat_path) == 0;
}

/* The new daemon.json: tree with runtimes.moat set to {"path": P} (add) or
 * taken out (remove; "runtimes" too once it is empty). *empty: the result
 * has no key at all. */
static char *
docker_render (yajl_val tree, const struct moat_setup_opts *o, bool *empty)
{
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len, n = 0;
        bool done = false;
        char *out;

        yajl_gen_config (g, yajl_gen_beautify, 1);
        yajl_gen_config (g, yajl_gen_indent_string, "  ");
        yajl_gen_map_open (g);
        for (size_t i = 0; tree && i < tree->u.object.len; i++) {
                const char *k = tree->u.object.keys[i];
                yajl_val v = tree->u.object.values[i];
                if (strcmp (k, "runtimes") != 0) {
                        moat_gen_str (g, k);
                        moat_gen_value (g, v);
                        n++;
                        continue;
                }
                size_t others = 0;
                for (size_t j = 0; j < v->u.object.len; j++)
                        others += strcmp (v->u.object.keys[j], "moat") != 0;
                if (o->remove && others == 0)
                        continue;
                moat_gen_str (g, "runtimes");
                yajl_gen_map_open (g);
                for (size_t j = 0; j < v->u.object.len; j++) {
                        if (strcmp (v->u.object.keys[j], "moat") != 0) {
                                moat_gen_str (g, v->u.object.keys[j]);
                                moat_gen_value (g, v->u.object.values[j]);
                        } else if (!o->remove) {
                                moat_gen_str (g, "moat");
                                yajl_gen_map_open (g);
                                moat_gen_kv (g, "path", o->moat_path);
                                yajl_gen_map_close (g);
                                done = true;
                        }
                }
                if (!o->remove && !done) {
                        moat_gen_str (g, "moat");
                        yajl_gen_map_open (g);
                        moat_gen_kv (g, "path", o->moat_path);
                        yajl_gen_map_close (g);
                        done = true;
                }
                yajl_gen_map_close (g);
                n++;
        }
        if (!o->remove && !done) {
                moat_gen_str (g, "runtimes");
                yajl_gen_map_open (g);
                moat_gen_str (g, "moat");
                yajl_gen_map_open (g);
                moat_gen_kv (g, "path", o->moat_path);
                yajl_gen_map_close (g);
                yajl_gen_map_close (g);
                n++;
        }
        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        out = xasprintf_r ("%.*s%s", (int)len, buf, len && buf[len - 1] == '\n' ? "" : "\n");
        yajl_gen_free (g);
        *empty = n == 0;
        return out;
}

static int
copy_file (const char *from, const char *to, moat_error_t *err)
{
        cleanup_free char *text = NULL;
        size_t len;
        if (read_file (from, &text, &len, err) < 0)
                return -1;
        return replace_file (to, text, len, 0600, err);
}

static int
docker (const char *path, const struct moat_setup_opts *o, FILE *out, moat_error_t *err)
{
        cleanup_free char *backup = xasprintf_r ("%s.moat-backup", path);
        cleanup_free char *text = NULL;
        yajl_val tree = NULL;
        yajl_val runtimes, entry;
        bool empty;

        if (docker_read (path, &tree, err) < 0)
                return -1;
        runtimes = obj_get (tree, "runtimes");
        if (runtimes && !YAJL_IS_OBJECT (runtimes)) {
                yajl_tree_free (tree);
                return moat_make_error (err, 0, "%s: \"runtimes\" is not an object; left untouched", path);
        }
        entry = obj_get (runtimes, "moat");
        if (!o->remove && is_our_entry (entry, o->moat_path)) {
                fprintf (out, "unchanged %s (runtimes.moat is %s already)\n", path, o->moat_path);
                yajl_tree_free (tree);
                return 0;
        }
        if (o->remove && entry == NULL) {
                fprintf (out, "nothing to remove: %s has no runtimes.moat\n", path);
                yajl_tree_free (tree);
                return 0;
        }
        if (entry && !o->remove)
                fprintf (out, "%s: runtimes.moat was something else, replacing it\n", path);
        text = docker_render (tree, o, &empty);
        if (o->dry_run) {
                if (o->remove && empty)
                        fprintf (out, "would remove %s (it holds nothing but runtimes.moat)\n", path);
                else
                        fprintf (out, "would write %s:\n%s", path, text);
                yajl_tree_free (tree);
                return 0;
        }
        /* setup saves the file it changes; remove takes its entry out
         * and then drops that backup, so nothing of moat's is left */
        if (tree && !o->remove) {
                if (copy_file (path, backup, err) < 0) {
                        yajl_tree_free (tree);
                        return moat_error_wrap (err, "back up %s", path);
                }
                fprintf (out, "saved the previous %s as %s\n", path, backup);
        }
        yajl_tree_free (tree);
        if (o->remove && empty) {
                if (unlink (path) < 0)
                        return moat_make_error (err, errno, "remove %s", path);
                fprintf (out, "removed %s (it held nothing but runtimes.moat)\n", path);
        } else {
                if (make_parent (path, false, out, err) < 0 || replace_file (path, text, strlen (text), 0644, err) < 0)
                        return -1;
                fprintf (out, "%s runtimes.moat %s %s; restart dockerd\n", o->remove ? "removed" : "set",
                         o->remove ? "from" : "in", path);
        }
        if (o->remove && unlink (backup) == 0)
                fprintf (out, "removed %s\n", backup);
        return 0;
}

int
moat_setup (enum moat_setup_client client, const struct moat_setup_opts *o, FILE *out, moat_error_t *err)
{
        cleanup_free char *path = moat_setup_path (client, o->root_dir);

        if (o->moat_path == NULL || o->moat_path[0] != '/')
                return moat_make_error (err, 0, "the runtime path must be absolute (got \"%s\")",
                                        o->moat_path ? o->moat_path : "");
        if (check_toml_string ("runtime path", o->moat_path, err) < 0)
                return -1;
        if (client == MOAT_SETUP_PODMAN) {
                cleanup_free char *text = podman_text (o);
                return o->remove ? dropin_remove (client, path, o, out, err)
                                 : dropin_add (client, path, text, o, out, err);
        }
        if (client == MOAT_SETUP_CONTAINERD)
                return o->remove ? dropin_remove (client, path, o, out, err) : containerd_add (path, o, out, err);
        return docker (path, o, out, err);
}
