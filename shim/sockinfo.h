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
/* si->domain, type, protocol: what the caller knows already (-1: ask). */
void pg_sockinfo_query(int fd, struct pg_sockinfo *si);

const char *pg_sockinfo_family_name(int domain);
const char *pg_sockinfo_type_name(int type);
/* "tcp", "udp", ... or NULL */
const char *pg_sockinfo_proto_name(int domain, int type, int protocol);
const char *pg_sockinfo_tcp_state_name(int state);

/* Calls fn for every open descriptor of this thread's table that is a
 * socket, with its inode (at load: the sockets inherited across exec).
 * Opens /proc/self/status and closes it. Returns 0 or -errno. */
int pg_sockinfo_scan_own(void (*fn)(int fd, uint64_t inode, void *arg), void *arg);

#endif
