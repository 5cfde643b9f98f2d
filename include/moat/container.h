/* SPDX-License-Identifier: Apache-2.0 */
/* What the verbs that work on an existing container share (ps, pause,
 * resume, update, events): a bounded lock and a connection to its agent. */
#ifndef MOAT_CONTAINER_H
#define MOAT_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"
#include "moat/agent_client.h"
#include "moat/state.h"

/* Takes the container's state lock (<root>/<id>/lock), waiting at most
 * timeout_ms; fails with EWOULDBLOCK 'container "<id>" is busy (another
 * moat command holds its lock)'. Unknown id: 'container "<id>" does not
 * exist'. */
int moat_container_lock (const char *root, const char *id, int timeout_ms, int *lock_fd, moat_error_t *err);

/* A connection to the container's agent (st->vsock_socket), checked. */
int moat_container_connect (const struct moat_state *st, int timeout_ms, struct moat_agent **out, moat_error_t *err);

/* pause (true) or resume a container: takes its lock, checks the live
 * status (pause needs "running", resume "paused"), calls the agent and
 * stores the new status ("paused" / "running"). */
int moat_container_pause (const char *root, const char *id, bool pause, moat_error_t *err);

/* Loads the state of a container that must be running or paused (live
 * status) and connects to its agent. */
int moat_container_open (const char *root, const char *id, struct moat_state **st, struct moat_agent **a,
                         moat_error_t *err);

/* A Go-style duration ("5s", "500ms", "1m30s", "1.5s", "2h"; a bare
 * number is seconds) in milliseconds; must be > 0. `flag` names the input
 * in errors. */
int moat_parse_duration (const char *flag, const char *s, int64_t *ms, moat_error_t *err);

/* runc's event JSON for stats: {"type":"stats","id":...,"data":{"cpu":...,
 * "memory":...,"pids":...}} on one line (malloc'd). */
char *moat_stats_event_json (const char *id, const struct moat_stats *s);

#endif
