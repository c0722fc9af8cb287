/* The registry: which descriptors name which sockets, and where each socket
 * was created. Pure bookkeeping: no syscalls, no logging; the callers give it
 * the facts (inode, time, stack) they got from the kernel. */
#ifndef PG_REGISTRY_H
#define PG_REGISTRY_H

#include <stdint.h>
#include <stddef.h>
#include "shim/hash.h"

#define PG_MAX_DEPTH 64

/* A call site: one distinct creation (or close) stack, stored once. */
struct pg_site {
	uint64_t hash;
	uint32_t id; /* 1, 2, ... in order of first use */
	uint32_t depth;
	uint64_t created; /* sockets created here by this process */
	UT_hash_handle hh;
	uintptr_t frames[];
};

enum {
	PG_SOCK_INHERITED = 1u << 0, /* open when the library loaded, or at fork */
	PG_SOCK_LISTENING = 1u << 1, /* listen() succeeded on it */
	PG_SOCK_ACCEPTED = 1u << 2, /* made by accept/accept4 */
	PG_SOCK_ACTIVE_CLOSED = 1u << 4, /* its active close was counted (shutdown) */
};

/* What a report needs of one socket handle, copied out under the lock. */
struct pg_snap {
	int fd;
	uint32_t seq;
	uint64_t inode;
	const struct pg_site *site;
	int64_t created_ns;
	int domain, type, protocol;
	unsigned flags;
};

struct pg_totals {
	uint64_t created, closed, closed_unseen, inherited, lost, double_closes;
};

struct pg_double_close {
	int fd;
	uint64_t count;
	const struct pg_site *created, *closed, *closed_again;
	struct pg_double_close *next;
};

/* A descriptor that is being closed: taken out of the table before the real
 * close so that no other thread's new socket can be confused with it. */
struct pg_closing {
	int fd;
	uint32_t seq;
	void *sock;
	const struct pg_site *site;
	/* For the policy: what the socket holds, and whether this is its last
	 * handle (the connection really ends with this close). */
	uint32_t pool;
	void *dest;
	int last;
	unsigned flags;
};

/* Policy state of a socket (enforce.c): a pool slot (rule index + 1, 0 for
 * none) and a churn destination. Both are handed to the release callback
 * when the socket's last handle goes, however it goes. */
struct pg_conn {
	int type, protocol;
	unsigned flags;
	uint32_t pool;
	void *dest;
	const struct pg_site *site;
};
int pg_registry_get_conn(int fd, struct pg_conn *out);
/* Sets pool (when the socket holds none yet) and dest; returns 0, -ENOENT
 * (untracked), -EEXIST (it already holds a slot: pool not taken). */
int pg_registry_set_conn(int fd, uint32_t pool, void *dest);
void pg_registry_set_release(void (*fn)(uint32_t pool, void *dest));

void pg_registry_reset(void);

/* Interns a stack; NULL only when out of memory. */
const struct pg_site *pg_site_intern(const uintptr_t *frames, unsigned depth);

/* Records a new socket on fd. A live record already on fd was closed behind
 * our back and is counted as closed_unseen. Returns 0 or -ENOMEM (counted
 * in totals.lost). */
int pg_registry_add(int fd, uint64_t inode, const struct pg_site *site, int64_t now_ns, int domain,
		    int type, int protocol, unsigned flags);

/* newfd becomes another handle of the socket behind oldfd (dup & co.).
 * Returns 0, -ENOENT when oldfd is not tracked, -ENOMEM. */
int pg_registry_dup(int oldfd, int newfd);

void pg_registry_set_flags(int fd, unsigned flags);
int pg_registry_is_tracked(int fd);

/* close in two steps around the real call: begin takes fd out of the table
 * and says what was there; end settles a PG_ENTRY_LIVE one. close_site (may
 * be NULL) is kept in the tombstone for double-close reports. */
enum { PG_ENTRY_NONE, PG_ENTRY_TOMB, PG_ENTRY_LIVE };
enum pg_close_outcome {
	PG_CLOSED, /* the kernel released the descriptor */
	PG_NOT_CLOSED, /* the call failed and the descriptor is still there */
	PG_WAS_GONE, /* EBADF: it had been closed behind our back */
};
int pg_registry_close_begin(int fd, struct pg_closing *c);
void pg_registry_close_end(struct pg_closing *c, enum pg_close_outcome how,
			   const struct pg_site *close_site);

/* For a close of an untracked fd that failed with EBADF: if this process
 * closed a socket on fd and nothing reopened it since, fills the two earlier
 * stacks and returns 1. */
int pg_registry_tombstone(int fd, const struct pg_site **created, const struct pg_site **closed);
/* An untracked fd closed successfully: the number was reused, forget it. */
void pg_registry_forget(int fd);
void pg_registry_double_close(int fd, const struct pg_site *created, const struct pg_site *closed,
			      const struct pg_site *again);

/* Tracked descriptors in [lo, hi], for close_range/closefrom. Fills up to max
 * entries of out, returns how many there are in all. */
size_t pg_registry_fds_in(int lo, int hi, int *out, size_t max);

/* Copies out every live handle. Caller frees *out with pg_free. */
int pg_registry_snapshot(struct pg_snap **out, size_t *n);
/* Reconciles one handle of a snapshot with the inode the kernel shows for its
 * descriptor now (0: not open, or no socket). The hot path records sockets
 * without their inode (an fstat would cost as much as the rest of the
 * tracking): such a record takes the kernel's inode on first sight. Returns
 * 1 when the handle stands (s->inode set), 0 when it was dropped as stale. */
int pg_registry_reconcile(struct pg_snap *s, uint64_t kernel_inode);
/* A handle the kernel no longer has (gone, or another inode now): dropped
 * and, if it was the last handle, counted as closed_unseen; nothing happens
 * if the record changed since the snapshot (seq). */
void pg_registry_drop_stale(int fd, uint32_t seq);

void pg_registry_totals(struct pg_totals *t);
uint64_t pg_registry_open(void);
void pg_registry_count_lost(void);
/* The double closes seen, newest first; readers walk it without a lock
 * (entries are only prepended, never freed before a reset). */
const struct pg_double_close *pg_registry_double_closes(void);

/* fork: prepare takes every lock, parent releases; child releases, marks every
 * socket inherited and starts its own counts. */
void pg_registry_fork_prepare(void);
void pg_registry_fork_parent(void);
void pg_registry_fork_child(void);

#endif
