/* SPDX-License-Identifier: Apache-2.0 */
/* moat.conf and its drop-ins (libinih), the environment and flags layered
 * over built-in defaults: include/moat/config.h. */
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moat/config.h"
#include "moat/hypervisor.h"
#include "moat/log.h"
#include "moat/sandbox.h"
#include "moat/util.h"

#define STR_(x) #x
#define STR(x) STR_ (x)
/* guest.boot_timeout's default, in seconds */
_Static_assert(MOAT_BOOT_TIMEOUT_MS == 30000, "boot_timeout's default is \"30\"");

static const char *const hypervisors[] = {"auto", "moat-vmm", "qemu", NULL};
static const char *const log_levels[] = {"info", "debug", NULL};

static const struct moat_setting_spec specs[MOAT_SET__COUNT] = {
        [MOAT_SET_HYPERVISOR] = {"runtime", "hypervisor", "MOAT_HYPERVISOR", "MOAT_HYPERVISOR", MOAT_TYPE_CHOICE,
                                 "auto", hypervisors, 0, 0,
                                 "backend of a container without the org.moat.hypervisor annotation"},
        [MOAT_SET_LOG_LEVEL] = {"runtime", "log_level", "MOAT_LOG_LEVEL", "MOAT_LOG_LEVEL", MOAT_TYPE_CHOICE, "info",
                                log_levels, 0, 0, "debug: as --debug (MOAT_DEBUG set: debug too)"},
        [MOAT_SET_KERNEL] = {"guest", "kernel", "MOAT_KERNEL", "MOAT_KERNEL", MOAT_TYPE_PATH, "", NULL, 0, 0,
                             "guest kernel (empty: next to moat, then the data directory)"},
        [MOAT_SET_INITRAMFS] = {"guest", "initramfs", "MOAT_INITRD", "MOAT_INITRD", MOAT_TYPE_PATH, "", NULL, 0, 0,
                                "guest initramfs (empty: next to moat, then the data directory)"},
        [MOAT_SET_KERNEL_PARAMS] = {"guest", "kernel_params", "MOAT_KERNEL_PARAMS", "MOAT_KERNEL_PARAMS",
                                    MOAT_TYPE_TEXT, "", NULL, 0, 0, "appended to the guest kernel command line"},
        [MOAT_SET_MEMORY_MIB] = {"guest", "memory_mib", "MOAT_VM_DEFAULT_MIB", "MOAT_VM_DEFAULT_MIB", MOAT_TYPE_INT,
                                 STR (MOAT_VM_DEFAULT_MIB), NULL, 64, 1 << 20,
                                 "guest RAM (MiB) of a container without a memory limit"},
        [MOAT_SET_VCPUS] = {"guest", "vcpus", "MOAT_VM_DEFAULT_VCPUS", "MOAT_VM_DEFAULT_VCPUS", MOAT_TYPE_INT, "1",
                            NULL, 1, 256, "vCPUs of a container without a CPU quota"},
        [MOAT_SET_OVERHEAD_MIB] = {"guest", "overhead_mib", "MOAT_VM_OVERHEAD_MIB", "MOAT_VM_OVERHEAD_MIB",
                                   MOAT_TYPE_INT, STR (MOAT_VM_OVERHEAD_MIB), NULL, 32, 1 << 16,
                                   "guest RAM (MiB) added to a container's memory limit"},
        [MOAT_SET_BOOT_TIMEOUT] = {"guest", "boot_timeout", "MOAT_BOOT_TIMEOUT", "MOAT_BOOT_TIMEOUT_MS",
                                   MOAT_TYPE_SECONDS, "30", NULL, 0, 3600, "seconds to wait for the guest agent"},
        [MOAT_SET_QEMU] = {"hypervisor", "qemu", "MOAT_QEMU", "MOAT_QEMU", MOAT_TYPE_PATH,
                           "/usr/bin/qemu-system-x86_64", NULL, 0, 0, "the QEMU binary of the qemu backend"},
        [MOAT_SET_VMM] = {"hypervisor", "moat_vmm", "MOAT_VMM", "MOAT_VMM", MOAT_TYPE_PATH, "", NULL, 0, 0,
                          "moat-vmm (empty: next to moat, then the helper directory)"},
        [MOAT_SET_VSOCK] = {"hypervisor", "vsock_helper", "MOAT_VSOCK", "MOAT_VSOCK", MOAT_TYPE_PATH, "", NULL, 0, 0,
                            "moat-vsock (empty: next to moat, then the helper directory)"},
        [MOAT_SET_VMM_FORCE] = {"hypervisor", "vmm_force", "MOAT_VMM_FORCE", "MOAT_VMM_FORCE", MOAT_TYPE_BOOL, "false",
                                NULL, 0, 0, "try moat-vmm even where it reports it cannot run"},
};

const struct moat_setting_spec *
moat_setting_spec (enum moat_setting s)
{
        return &specs[s];
}

int
moat_setting_lookup (const char *section, const char *key)
{
        for (int i = 0; i < MOAT_SET__COUNT; i++)
                if (strcmp (specs[i].section, section) == 0 && strcmp (specs[i].key, key) == 0)
                        return i;
        return -1;
}

static bool
known_section (const char *section)
{
        for (int i = 0; i < MOAT_SET__COUNT; i++)
                if (strcmp (specs[i].section, section) == 0)
                        return true;
        return false;
}

/* The keys of a section, for an error message: "a, b, c". */
static char *
section_keys (const char *section)
{
        char *out = xstrdup ("");
        for (int i = 0; i < MOAT_SET__COUNT; i++) {
                if (strcmp (specs[i].section, section) != 0)
                        continue;
                char *n = xasprintf_r ("%s%s%s", out, *out ? ", " : "", specs[i].key);
                free (out);
                out = n;
        }
        return out;
}

static char *
all_sections (void)
{
        char *out = xstrdup ("");
        for (int i = 0; i < MOAT_SET__COUNT; i++) {
                if (i > 0 && strcmp (specs[i - 1].section, specs[i].section) == 0)
                        continue;
                char *n = xasprintf_r ("%s%s[%s]", out, *out ? ", " : "", specs[i].section);
                free (out);
                out = n;
        }
        return out;
}

/* Checks and normalises one value. *msg: why it is bad (malloc'd). */
static int
convert (enum moat_setting s, const char *raw, bool from_file, char **text, long long *num, char **msg)
{
        const struct moat_setting_spec *sp = &specs[s];
        char *end;

        *num = 0;
        switch (sp->type) {
        case MOAT_TYPE_CHOICE: {
                char *list = xstrdup ("");
                for (const char *const *c = sp->choices; *c; c++) {
                        if (strcmp (*c, raw) == 0) {
                                free (list);
                                *text = xstrdup (raw);
                                return 0;
                        }
                        char *n = xasprintf_r ("%s%s%s", list, *list ? ", " : "", *c);
                        free (list);
                        list = n;
                }
                if (s == MOAT_SET_HYPERVISOR)
                        *msg = xasprintf_r ("unknown hypervisor \"%s\" (known: qemu, moat-vmm, auto)", raw);
                else
                        *msg = xasprintf_r ("\"%s\" is not one of: %s", raw, list);
                free (list);
                return -1;
        }
        case MOAT_TYPE_PATH:
                if (from_file && *raw && raw[0] != '/') {
                        *msg = xasprintf_r ("\"%s\" is not an absolute path", raw);
                        return -1;
                }
                *text = xstrdup (raw);
                return 0;
        case MOAT_TYPE_TEXT:
                for (const char *p = raw; *p; p++)
                        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
                                *msg = xasprintf_r ("\"%s\": only printable ASCII is allowed", raw);
                                return -1;
                        }
                if (strlen (raw) > 1024) {
                        *msg = xasprintf_r ("longer than 1024 characters");
                        return -1;
                }
                *text = xstrdup (raw);
                return 0;
        case MOAT_TYPE_INT: {
                errno = 0;
                long long v = strtoll (raw, &end, 10);
                if (*raw == '\0' || *end != '\0' || errno != 0 || v < sp->min || v > sp->max) {
                        *msg = xasprintf_r ("\"%s\": expected an integer from %lld to %lld", raw, sp->min, sp->max);
                        return -1;
                }
                *num = v;
                *text = xasprintf_r ("%lld", v);
                return 0;
        }
        case MOAT_TYPE_SECONDS: {
                errno = 0;
                double v = strtod (raw, &end);
                if (*raw == '\0' || *end != '\0' || errno != 0 || !(v > sp->min) || v > sp->max) {
                        *msg = xasprintf_r ("\"%s\": expected seconds, more than %lld and at most %lld", raw, sp->min,
                                            sp->max);
                        return -1;
                }
                *num = (long long)(v * 1000);
                if (*num < 1)
                        *num = 1;
                *text = xstrdup (raw);
                return 0;
        }
        case MOAT_TYPE_BOOL:
                if (strcmp (raw, "true") == 0 || strcmp (raw, "1") == 0 || strcmp (raw, "yes") == 0)
                        *num = 1;
                else if (strcmp (raw, "false") == 0 || strcmp (raw, "0") == 0 || strcmp (raw, "no") == 0)
                        *num = 0;
                else {
                        *msg = xasprintf_r ("\"%s\": expected true or false", raw);
                        return -1;
                }
                *text = xstrdup (*num ? "true" : "false");
                return 0;
        }
        *msg = xstrdup ("unknown type");
        return -1;
}

static void
value_clear (struct moat_config_value *v)
{
        free (v->text);
        free (v->file);
        memset (v, 0, sizeof *v);
}

static int
set_value (struct moat_config *c, enum moat_setting s, const char *raw, enum moat_config_origin origin,
           const char *file, int line, const char *name, char **msg)
{
        char *text = NULL;
        long long num;
        if (convert (s, raw, origin == MOAT_FROM_FILE, &text, &num, msg) < 0)
                return -1;
        value_clear (&c->v[s]);
        c->v[s].text = text;
        c->v[s].num = num;
        c->v[s].origin = origin;
        c->v[s].file = file ? xstrdup (file) : NULL;
        c->v[s].line = line;
        c->v[s].name = name;
        return 0;
}

void
moat_config_init_defaults (struct moat_config *c)
{
        memset (c, 0, sizeof *c);
        for (int i = 0; i < MOAT_SET__COUNT; i++) {
                char *msg = NULL;
                if (set_value (c, i, specs[i].def, MOAT_FROM_DEFAULT, NULL, 0, NULL, &msg) < 0)
                        abort (); /* a bad built-in default: a bug */
        }
}

void
moat_config_free (struct moat_config *c)
{
        for (int i = 0; i < MOAT_SET__COUNT; i++)
                value_clear (&c->v[i]);
        free (c->path);
        free (c->path_from);
        strv_free (c->dropins);
        memset (c, 0, sizeof *c);
}

char *
moat_config_source (const struct moat_config_value *v)
{
        switch (v->origin) {
        case MOAT_FROM_FILE:
                return xasprintf_r ("%s:%d", v->file, v->line);
        case MOAT_FROM_ENV:
                return xasprintf_r ("env %s", v->name);
        case MOAT_FROM_FLAG:
                return xasprintf_r ("flag %s", v->name);
        default:
                return xstrdup ("default");
        }
}

/* --- one file -------------------------------------------------------------- */

/* libinih reads the text line by line through this reader, so the handler
 * knows the line it is called for (Debian's libinih passes no line number
 * to the handler), whether that line was indented (a continuation line)
 * and whether it was cut (longer than libinih's line buffer). */
struct parse_ctx {
        struct moat_config *c;
        const char *file;
        const char *text, *pos;
        int line;
        bool indented;
        int too_long; /* the first line too long for libinih, 0: none */
        char *error;  /* the first error, "file:line: ..." */
        char prev_section[64], prev_key[64];
};

static char *
reader (char *str, int num, void *stream)
{
        struct parse_ctx *p = stream;
        const char *nl;
        size_t len;

        if (p->too_long || p->error || p->pos == NULL || *p->pos == '\0')
                return NULL;
        nl = strchr (p->pos, '\n');
        len = nl ? (size_t)(nl - p->pos) + 1 : strlen (p->pos);
        p->line++;
        if (len + 1 > (size_t)num || memchr (p->pos, '\0', len) != NULL) {
                p->too_long = p->line;
                return NULL;
        }
        memcpy (str, p->pos, len);
        str[len] = '\0';
        p->indented = len > 0 && (str[0] == ' ' || str[0] == '\t');
        p->pos += len;
        return str;
}

static int
handler (void *user, const char *section, const char *name, const char *value)
{
        struct parse_ctx *p = user;
        cleanup_free char *msg = NULL;
        cleanup_free char *unq = NULL;
        size_t vlen;
        int s;

        if (p->error)
                return 0;
        if (p->indented && strcmp (p->prev_section, section) == 0 && strcmp (p->prev_key, name) == 0) {
                p->error = xasprintf_r ("%s:%d: %s.%s: an indented line continues its value; continuation lines "
                                        "are not supported (start each key at the beginning of its line)",
                                        p->file, p->line, section, name);
                return 0;
        }
        snprintf (p->prev_section, sizeof p->prev_section, "%s", section);
        snprintf (p->prev_key, sizeof p->prev_key, "%s", name);
        if (*section == '\0') {
                cleanup_free char *secs = all_sections ();
                p->error =
                        xasprintf_r ("%s:%d: %s: key outside a section (sections: %s)", p->file, p->line, name, secs);
                return 0;
        }
        if (!known_section (section)) {
                cleanup_free char *secs = all_sections ();
                p->error = xasprintf_r ("%s:%d: %s.%s: unknown section [%s] (sections: %s)", p->file, p->line, section,
                                        name, section, secs);
                return 0;
        }
        s = moat_setting_lookup (section, name);
        if (s < 0) {
                cleanup_free char *keys = section_keys (section);
                p->error = xasprintf_r ("%s:%d: %s.%s: unknown key (keys of [%s]: %s)", p->file, p->line, section, name,
                                        section, keys);
                return 0;
        }
        /* "value" is the value itself */
        vlen = strlen (value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"')
                unq = xstrndup (value + 1, vlen - 2);
        else
                unq = xstrdup (value);
        if (set_value (p->c, s, unq, MOAT_FROM_FILE, p->file, p->line, NULL, &msg) < 0) {
                p->error = xasprintf_r ("%s:%d: %s.%s: %s", p->file, p->line, section, name, msg);
                return 0;
        }
        return 1;
}

int
moat_config_parse_string (struct moat_config *c, const char *file, const char *text, moat_error_t *err)
{
        struct parse_ctx p = {.c = c, .file = file, .text = text, .pos = text};
        int r = ini_parse_stream (reader, &p, handler, &p);

        if (p.error) {
                moat_make_error (err, 0, "%s", p.error);
                free (p.error);
                return -1;
        }
        if (p.too_long)
                return moat_make_error (err, 0, "%s:%d: line too long (at most %d characters)", file, p.too_long,
                                        INI_MAX_LINE - 3);
        if (r > 0)
                return moat_make_error (err, 0,
                                        "%s:%d: syntax error (expected \"[section]\", \"key = value\" or a comment "
                                        "starting with # or ;)",
                                        file, r);
        if (r < 0)
                return moat_make_error (err, ENOMEM, "%s: libinih could not parse it (error %d)", file, r);
        return 0;
}

/* A config file is small: anything larger than this is not one. */
#define CONFIG_MAX_BYTES (1 << 20)

static int
parse_file (struct moat_config *c, const char *path, bool must_exist, bool *found, moat_error_t *err)
{
        cleanup_free char *text = NULL;
        cleanup_error moat_error_t e = NULL;
        struct stat st;
        size_t len;

        *found = false;
        if (stat (path, &st) < 0) {
                if (errno == ENOENT && !must_exist)
                        return 0;
                return moat_make_error (err, errno, "config file %s", path);
        }
        if (S_ISDIR (st.st_mode))
                return moat_make_error (err, EISDIR, "config file %s", path);
        if (S_ISREG (st.st_mode) && st.st_size > CONFIG_MAX_BYTES)
                return moat_make_error (err, EFBIG, "config file %s: larger than %d bytes", path, CONFIG_MAX_BYTES);
        if (read_file (path, &text, &len, &e) < 0)
                return moat_make_error (err, e->errno_, "config file %s", path);
        if (len > CONFIG_MAX_BYTES)
                return moat_make_error (err, EFBIG, "config file %s: larger than %d bytes", path, CONFIG_MAX_BYTES);
        if (strlen (text) != len)
                return moat_make_error (err, 0, "config file %s: has a NUL byte (not a text file)", path);
        *found = true;
        return moat_config_parse_string (c, path, text, err);
}

static int
cmp_str (const void *a, const void *b)
{
        return strcmp (*(char *const *)a, *(char *const *)b);
}

/* The *.conf files of dir, sorted by name (strcmp: the C locale's order). */
static int
list_dropins (const char *dir, char ***out, moat_error_t *err)
{
        DIR *d = opendir (dir);
        char **v = NULL;
        size_t n = 0;
        struct dirent *de;

        *out = NULL;
        if (d == NULL) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return 0;
                return moat_make_error (err, errno, "config drop-in directory %s", dir);
        }
        while ((de = readdir (d)) != NULL) {
                size_t l = strlen (de->d_name);
                if (de->d_name[0] == '.' || l <= 5 || strcmp (de->d_name + l - 5, ".conf") != 0)
                        continue;
                v = xrealloc (v, (n + 2) * sizeof *v);
                v[n++] = xasprintf_r ("%s/%s", dir, de->d_name);
                v[n] = NULL;
        }
        closedir (d);
        if (n)
                qsort (v, n, sizeof *v, cmp_str);
        *out = v;
        return 0;
}

static int
apply_env (struct moat_config *c, moat_error_t *err)
{
        for (int i = 0; i < MOAT_SET__COUNT; i++) {
                const char *e = specs[i].env ? getenv (specs[i].env) : NULL;
                cleanup_free char *msg = NULL;
                if (e == NULL || *e == '\0')
                        continue;
                if (set_value (c, i, e, MOAT_FROM_ENV, NULL, 0, specs[i].env, &msg) < 0)
                        return moat_make_error (err, 0, "%s=%s: %s", specs[i].env, e, msg);
        }
        /* MOAT_DEBUG (any value): log_level debug, unless MOAT_LOG_LEVEL says otherwise */
        if (getenv ("MOAT_DEBUG") != NULL && c->v[MOAT_SET_LOG_LEVEL].origin != MOAT_FROM_ENV) {
                cleanup_free char *msg = NULL;
                set_value (c, MOAT_SET_LOG_LEVEL, "debug", MOAT_FROM_ENV, NULL, 0, "MOAT_DEBUG", &msg);
        }
        return 0;
}

static int
read_files (struct moat_config *c, const char *path, bool explicit, moat_error_t *err)
{
        cleanup_free char *dir = NULL;
        bool found;

        if (parse_file (c, path, explicit, &found, err) < 0)
                return -1;
        c->path_found = found;
        dir = xasprintf_r ("%s.d", path);
        if (list_dropins (dir, &c->dropins, err) < 0)
                return -1;
        for (size_t i = 0; c->dropins && c->dropins[i]; i++)
                if (parse_file (c, c->dropins[i], true, &found, err) < 0)
                        return -1;
        return 0;
}

int
moat_config_read (struct moat_config *c, const char *path, const char *path_from, moat_error_t *err)
{
        const char *env = getenv ("MOAT_CONFIG");
        bool explicit = true;

        moat_config_init_defaults (c);
        if (path == NULL && env && *env) {
                path = env;
                path_from = "MOAT_CONFIG";
        } else if (path == NULL) {
                path = MOAT_CONFIG_DEFAULT_PATH;
                path_from = "default";
                explicit = false;
        }
        c->path = xstrdup (path);
        c->path_from = xstrdup (path_from ? path_from : "--config");
        if (read_files (c, path, explicit, err) < 0 || apply_env (c, err) < 0) {
                moat_config_free (c);
                return -1;
        }
        return 0;
}

int
moat_config_set_flag (struct moat_config *c, enum moat_setting s, const char *value, const char *flag,
                      moat_error_t *err)
{
        cleanup_free char *msg = NULL;
        if (set_value (c, s, value, MOAT_FROM_FLAG, NULL, 0, flag, &msg) < 0)
                return moat_make_error (err, 0, "%s %s: %s", flag, value, msg);
        return 0;
}

/* --- the process's configuration ------------------------------------------ */

static struct moat_config current;
static bool loaded;

int
moat_config_load (const char *path, const char *path_from, moat_error_t *err)
{
        struct moat_config c;
        if (moat_config_read (&c, path, path_from, err) < 0)
                return -1;
        if (loaded)
                moat_config_free (&current);
        current = c;
        loaded = true;
        return 0;
}

struct moat_config *
moat_config (void)
{
        cleanup_error moat_error_t err = NULL;
        if (loaded)
                return &current;
        if (moat_config_read (&current, NULL, NULL, &err) < 0) {
                cleanup_error moat_error_t e2 = NULL;
                moat_warn ("%s; using the built-in defaults and the environment", err->msg);
                moat_config_init_defaults (&current);
                current.path = xstrdup ("");
                current.path_from = xstrdup ("default");
                if (apply_env (&current, &e2) < 0) {
                        moat_warn ("%s; ignoring the environment", e2->msg);
                        moat_config_free (&current);
                        moat_config_init_defaults (&current);
                        current.path = xstrdup ("");
                        current.path_from = xstrdup ("default");
                }
        }
        loaded = true;
        return &current;
}

const struct moat_config_value *
moat_config_value (enum moat_setting s)
{
        return &moat_config ()->v[s];
}

const char *
moat_config_str (enum moat_setting s)
{
        return moat_config ()->v[s].text;
}

long long
moat_config_num (enum moat_setting s)
{
        return moat_config ()->v[s].num;
}
