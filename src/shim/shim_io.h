/* SPDX-License-Identifier: Apache-2.0 */
/* A task's stdio (io.c). */
#ifndef MOAT_SHIM_IO_H
#define MOAT_SHIM_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "moat/error.h"

struct pump;
struct shim_io {
        int fds[3];  /* for the stand-in (-1: none); closed once it has them */
        int keep[3]; /* our read ends of the output fifos */
        bool terminal;
        int stdin_w;      /* the stdin pipe's write end, until the pump takes it */
        char *stdin_fifo; /* the stdin fifo, opened by the pump */
        int stdin_path;   /* an O_PATH fd of it */
        int stop;         /* eventfd: the stdin pump stops */
        char *console_dir, *console_path;
        int console_lfd;
        int master;   /* the terminal, once received */
        pid_t logger; /* binary:// */
        pthread_t in_thread, out_thread;
        bool in_started, out_started;
        struct pump *in_pump, *out_pump;
};

/* Opens what containerd gave (paths or URIs; "" or NULL: none). */
int shim_io_open (struct shim_io *io, const char *id, const char *ns, const char *in, const char *out, const char *errp,
                  bool terminal, moat_error_t *err);
/* The stand-in has been forked with io->fds (non-terminal): close ours and
 * start copying stdin. */
int shim_io_started (struct shim_io *io, moat_error_t *err);
/* Terminal: receive the pty master on io->console_path and start copying. */
int shim_io_take_console (struct shim_io *io, int timeout_ms, moat_error_t *err);
int shim_io_resize (struct shim_io *io, unsigned rows, unsigned cols);
/* CloseIO: the process's stdin ends (after what was queued). */
void shim_io_close_stdin (struct shim_io *io);
/* Waits until every byte of output has been written, then closes our
 * write ends (the reader gets EOF once the stand-in's are closed too). */
void shim_io_drain (struct shim_io *io);
void shim_io_free (struct shim_io *io);

#endif
