/* SPDX-License-Identifier: Apache-2.0 */
/* The stand-in: the small host process that represents one container
 * process (the init or an exec) to whoever started it (conmon,
 * containerd-shim, a shell). Its pid is what --pid-file and the state
 * report. It relays its stdio (the caller's, or a host pty) to the guest
 * process's vsock streams, forwards every signal it receives to that
 * process, and exits with its status: the code, or death by the same
 * signal. */
#ifndef MOAT_STANDIN_H
#define MOAT_STANDIN_H

#include <stdbool.h>
#include <sys/types.h>

#include "moat/agent_client.h"
#include "moat/error.h"

#define MOAT_STANDIN_COMM "moat-standin"
#define MOAT_PRESERVE_FDS_MAX 256

/* One fd of --preserve-fds: the caller's fd 3+i, relayed over its own vsock
 * stream "fd<3+i>:<r|w|rw>" (the direction is the fd's access mode). */
struct moat_preserved_fd {
        int host_fd; /* the caller's fd, also the number the process gets */
        int mode;    /* O_RDONLY (host -> process), O_WRONLY (process -> host) or O_RDWR */
        int stream;  /* the vsock stream, -1 until opened */
};

struct moat_standin {
        const char *vsock_socket; /* hybrid socket of the sandbox */
        const char *id;
        const char *exec_id; /* NULL: the init process */
        bool terminal;
        int streams[3];            /* stdin, stdout, stderr vsock streams; terminal: streams[0] = "tty" */
        int in_fd, out_fd, err_fd; /* host side; -1: none */
        int winsize_fd;            /* a tty whose size goes to the guest on SIGWINCH; -1: none */
        int go_fd;      /* read one byte before waiting for the process (EOF: abort); -1: none (not closed) */
        bool power_off; /* power the VM off once the process exited (the init stand-in) */
        bool raw_in;    /* in_fd is a terminal to put in raw mode while relaying */
        pid_t vmm_pid;  /* to notice a dead VM */
        unsigned long long vmm_start;
        struct moat_preserved_fd *extra; /* --preserve-fds; the streams are closed, not the host fds */
        size_t n_extra;
};

/* --preserve-fds n: checks that the caller's fds 3 .. 3+n-1 are open (not
 * moat's own, close-on-exec ones) and can be relayed (a listening socket or
 * an O_PATH fd cannot), before anything boots. *out (malloc'd, NULL when n
 * is 0) has their modes, streams -1. */
int moat_preserved_fds_check (int n, struct moat_preserved_fd **out, moat_error_t *err);
/* Opens the stream of each (exec_id NULL: the init process). */
int moat_preserved_fds_open (const char *vsock_socket, const char *id, const char *exec_id, struct moat_preserved_fd *p,
                             size_t n, int timeout_ms, moat_error_t *err);
/* Closes the streams that are open (never the host fds). */
void moat_preserved_fds_close_streams (struct moat_preserved_fd *p, size_t n);

/* Blocks every signal the stand-in forwards (call early: signals that arrive
 * before the process exists stay pending and are forwarded later). */
void moat_standin_block_signals (void);

/* Runs the stand-in until the process exited and its output is drained.
 * Returns 0 with *ex, 1 if go_fd said abort, -1 with *err. Closes the
 * streams. */
int moat_standin_run (struct moat_standin *s, struct moat_exit *ex, moat_error_t *err);

/* Exits like the container process did: _exit(code), or raises the signal
 * that killed it (with its default action, no core dump). */
void moat_standin_exit (const struct moat_exit *ex) __attribute__ ((noreturn));

/* Sends fd over the Unix socket at path with SCM_RIGHTS (the message data is
 * the pty's name, as runc sends it). */
int moat_send_console (const char *socket_path, int fd, const char *name, moat_error_t *err);

/* A host pty for a container terminal: *master, *slave (raw mode, size
 * rows x cols if not 0). */
int moat_open_pty (int *master, int *slave, unsigned rows, unsigned cols, moat_error_t *err);

#endif
