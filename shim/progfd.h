/* The program's descriptors as the library's thread reaches them. That
 * thread works in a descriptor table of its own, empty when it starts
 * (close_range(0, ~0U, CLOSE_RANGE_UNSHARE) copies nothing): whatever it
 * opens (the report file, /proc files, libdw's files) is out of reach of
 * the program's closefrom, close_range and dup2, and never takes a number
 * the program would get. It reaches a program's descriptor by duplicating
 * it for a moment (pidfd_getfd on its own process) and names one by
 * /proc/PID/task/TID/fd (a live thread: after main's pthread_exit,
 * /proc/self/fd is empty). Where the kernel cannot do that, it shares the
 * program's table as any thread does, and these calls use the numbers as
 * they are. */
#ifndef PG_PROGFD_H
#define PG_PROGFD_H

#include <stddef.h>
#include <stdint.h>

/* In the library's thread, first thing: the table of its own. Returns 1
 * when it has one. */
int pg_progfd_setup(int pid);
int pg_progfd_private(void);
/* Before each report: which thread's table to read, and its size (every
 * open descriptor is below it; 0 when unknown). */
int pg_progfd_begin(void);

/* A descriptor here for the program's fd, or -1 (not open). Give it back
 * with pg_progfd_put. */
int pg_progfd_get(int fd);
void pg_progfd_put(int here);
/* The socket inode behind the program's fd; 0: not open or no socket. */
uint64_t pg_progfd_inode(int fd);

/* Every socket among the program's descriptors, in descriptor order: one
 * directory read and one readlinkat a descriptor (the cheapest way from a
 * table of our own). Fills up to cap; returns how many there are, or -1
 * when the directory cannot be read. After pg_progfd_begin. */
struct pg_progfd_sock {
	int fd;
	uint64_t inode;
};
long pg_progfd_sockets(struct pg_progfd_sock *out, size_t cap);

/* fork child: the thread and its table are the parent's. */
void pg_progfd_fork_child(void);

#endif
