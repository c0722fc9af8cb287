/* What the kernel says about a socket descriptor, asked at report time so
 * that the hot path stores only what it must. */
#ifndef PG_SOCKINFO_H
#define PG_SOCKINFO_H

#include <stdint.h>

struct pg_sockinfo {
	int domain, type, protocol;
	int listening;
	int tcp_state; /* 0: not TCP or unknown */
	char local[128];
	char remote[128]; /* "" when not connected */
};

/* Inode of the socket behind fd; 0 when fd is not a socket. */
uint64_t pg_sockinfo_inode(int fd);
/* The inode to reconcile a handle with: its descriptor's, or 0 when that is
 * no socket, or (for a record not yet seen, known_inode 0) a socket of
 * another family or type than the one recorded (domain/type -1: unknown):
 * the number was reused behind our back. */
uint64_t pg_sockinfo_identity(int fd, uint64_t known_inode, int domain, int type);

/* si->domain, type, protocol: what the caller knows already (-1: ask). */
void pg_sockinfo_query(int fd, struct pg_sockinfo *si);

const char *pg_sockinfo_family_name(int domain);
const char *pg_sockinfo_type_name(int type);
/* "tcp", "udp", ... or NULL */
const char *pg_sockinfo_proto_name(int domain, int type, int protocol);
const char *pg_sockinfo_tcp_state_name(int state);

/* Calls fn for every open descriptor of this process that is a socket, with
 * its inode. skip (may be NULL) says which descriptors need no look (known
 * ones), which saves an fstat each. Opens /proc/self/fd (O_CLOEXEC) and
 * closes it before returning. Returns 0 or -errno. close_fn: the real close. */
int pg_sockinfo_scan(void (*fn)(int fd, uint64_t inode, void *arg), int (*skip)(int fd, void *arg),
		     void *arg, int (*close_fn)(int));

#endif
