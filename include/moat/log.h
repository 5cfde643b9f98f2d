/* SPDX-License-Identifier: Apache-2.0 */
/* Process-wide log: to a file (--log) as text or JSON, both in runc's
 * (logrus's) formats: time="..." level=error msg="..." and
 * {"level":"error","msg":"...","time":"..."}; without --log, warnings (and
 * debug lines with --debug) go to stderr. */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

enum moat_log_level { MOAT_LOG_ERROR = 0, MOAT_LOG_WARNING, MOAT_LOG_INFO, MOAT_LOG_DEBUG };

/* path NULL: stderr. json: runc-style JSON lines. */
int moat_log_init (const char *path, int json, int debug);
void moat_log (enum moat_log_level lvl, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
#define moat_debug(...) moat_log (MOAT_LOG_DEBUG, __VA_ARGS__)
#define moat_warn(...) moat_log (MOAT_LOG_WARNING, __VA_ARGS__)

#endif
