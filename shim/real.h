/* The libc functions we wrap, bound once with dlsym(RTLD_NEXT). */
#ifndef PG_REAL_H
#define PG_REAL_H

#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>

typedef void (*pg_sighandler_t)(int);

struct pg_real {
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*shutdown)(int, int);
	int (*close)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*close_range)(unsigned, unsigned, int);
	void (*closefrom)(int);
	long (*syscall)(long, ...);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	int (*fclose)(FILE *);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	pg_sighandler_t (*signal)(int, pg_sighandler_t);
	pg_sighandler_t (*sigset)(int, pg_sighandler_t);
	pg_sighandler_t (*sysv_signal)(int, pg_sighandler_t);
	pg_sighandler_t (*bsd_signal)(int, pg_sighandler_t);
	void (*exit)(int) __attribute__((noreturn));
	int (*libc_start_main)(int (*)(int, char **, char **), int, char **, void (*)(void),
			       void (*)(void), void (*)(void), void *);
};

extern struct pg_real pg_real;

/* Binds every entry; cheap after the first call. */
void pg_real_bind(void);

#endif
