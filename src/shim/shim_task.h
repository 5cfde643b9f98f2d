/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's state (task.c, serve.c). */
#ifndef MOAT_SHIM_TASK_H
#define MOAT_SHIM_TASK_H

#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "moat/error.h"
#include "shim.h"
#include "shim_io.h"

/* a task's init process or one of its execs */
struct shim_proc {
        struct shim_proc *next; /* the task's execs */
        struct shim_task *task;
        char *exec_id;         /* NULL: the init */
        char *in, *out, *errp; /* what containerd gave */
        bool terminal;
        char *spec_file; /* exec: the process JSON, until Start */
        int status;      /* CONTAINERD__TASK__V2__STATUS__* */
        pid_t pid;       /* the stand-in */
        uint32_t exit_status;
        struct timespec exited_at;
        bool reaped;   /* the stand-in is gone */
        bool exited;   /* reported: output drained */
        bool starting; /* a Start is publishing its event */
        struct shim_io io;
        bool io_open;
};

struct shim_task {
        struct shim_task *next;
        char *id, *bundle;
        bool rootfs_mounted;
        bool deleting;
        struct shim_proc init;
        struct shim_proc *dead; /* deleted execs, freed with the task */
        int busy;               /* calls in flight that need the task to stay */
};

struct child_exit;
struct shim {
        const struct shim_opts *o;
        char *root; /* libmoat's state root for this namespace */
        pthread_mutex_t lock;
        pthread_cond_t cond; /* any exit or status change */
        struct shim_task *tasks;
        struct child_exit *exits;
        struct shim_events *events;
        int wake[2]; /* Shutdown: the accept loop ends */
        atomic_bool stopping;
        atomic_int n_conns;
        char *pod_cgroup; /* the host cgroup the shim moved itself into, NULL: none (podcg.c) */
};

/* podcg.c: the shim's own host cgroup under a pod's cgroup_parent */
/* <pod parent>/moat-shim-<id> for sandbox container id (malloc'd), NULL
 * when id is not a pod's sandbox with a host cgroup. */
char *shim_pod_cgroup (const char *root, const char *id);
/* After the sandbox container's create: the shim moves into it. */
void shim_enter_pod_cgroup (struct shim *s, const char *id);
/* Before the shim exits: out of it, and it is removed. */
void shim_leave_pod_cgroup (struct shim *s);

int shim_reaper_start (struct shim *s, moat_error_t *err);
/* Runs one libmoat call in an internal child (internal.c) for task id:
 * stdio (NULL: /dev/null) becomes its fds 0-2; *value gets what it
 * answered. */
int shim_call (struct shim *s, const char *id, const char *verb, const char *const *args, const int stdio[3],
               char **value, moat_error_t *err);
struct shim_proc *shim_find_proc_by_pid_locked (struct shim *s, pid_t pid);
/* The reaper saw proc's stand-in exit (lock held). */
void shim_proc_exited_locked (struct shim *s, struct shim_proc *p, int wait_status);
int shim_task_count (struct shim *s);
/* A string field of a request by name ("id", "exec_id"); "" if none. */
const char *shim_req_str (const ProtobufCMessage *req, const char *field);

/* task service handlers (ttrpc_handler_fn) */
int shim_h_create (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_start (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_state (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_wait (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_kill (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_delete (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_exec (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_resize (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_close_io (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_pids (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_pause (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_resume (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_update (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
int shim_h_stats (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);

#endif
