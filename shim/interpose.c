/* The exported libc names, and nothing else. Each wrapper: whether to
 * record (pg_core_on: the library ready, and not itself the caller), the
 * real call, then the core's hook with the "inside" guard set here, once,
 * and the real return value and errno given back. The guard is not held
 * across the real call: a signal handler that runs during it is the
 * program's, and its sockets are recorded. */
#include "shim/core.h"
#include "shim/enforce.h"
#include "shim/fdtab.h"
#include "shim/python.h"
#include "shim/real.h"
#include "shim/signals.h"
#include "shim/stack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG_EXPORT __attribute__((visibility("default")))
/* The hook, with the guard. */
/* The wrapper's frame is where stacks start (shim/stack.h): the library's
 * own frames are never walked. Kept and put back around the hook, so that a
 * signal handler's wrapper leaves the interrupted one's as it was. */
#define PG_HOOK(call)                                        \
	do {                                                 \
		void *pg_frame_saved_ = pg_stack_frame;      \
		pg_stack_frame = __builtin_frame_address(0); \
		pg_inside++;                                 \
		call;                                        \
		pg_inside--;                                 \
		pg_stack_frame = pg_frame_saved_;            \
	} while (0)

/* Declared by no header (bsd_signal left POSIX; __libc_start_main is glibc's
 * entry from _start). */
pg_sighandler_t bsd_signal(int sig, pg_sighandler_t h);
int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv, void (*init)(void),
		      void (*fini)(void), void (*rtld_fini)(void), void *stack_end);

PG_HOT PG_EXPORT int socket(int domain, int type, int protocol)
{
	int on = pg_core_on();
	int fd = pg_real.socket(domain, type, protocol);
	int err = errno;

	if (fd >= 0) {
		if (on)
			PG_HOOK(pg_core_socket(fd, domain, type, protocol));
		else if (pg_inside)
			pg_core_missed();
	}
	errno = err;
	return fd;
}

PG_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
	int on = pg_core_on();
	int rc = pg_real.socketpair(domain, type, protocol, sv);
	int err = errno;

	if (rc == 0) {
		if (on)
			PG_HOOK(pg_core_socketpair(sv, domain, type, protocol));
		else if (pg_inside)
			pg_core_missed(), pg_core_missed();
	}
	errno = err;
	return rc;
}

static int pg_accepted(int on, int nfd)
{
	int err = errno;

	if (nfd >= 0) {
		if (on)
			PG_HOOK(pg_core_accept(nfd));
		else if (pg_inside)
			pg_core_missed();
	}
	errno = err;
	return nfd;
}

PG_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int on = pg_core_on();

	return pg_accepted(on, pg_real.accept(fd, addr, len));
}

PG_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int on = pg_core_on();

	return pg_accepted(on, pg_real.accept4(fd, addr, len, flags));
}

PG_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int err = errno;

	if (pg_core_on() && pg_enforce_what)
		PG_HOOK(pg_core_bind(fd, addr, len));
	errno = err;
	return pg_real.bind(fd, addr, len);
}

PG_EXPORT int listen(int fd, int backlog)
{
	int on = pg_core_on();
	int rc = pg_real.listen(fd, backlog);
	int err = errno;

	if (rc == 0 && on)
		PG_HOOK(pg_core_listen(fd));
	errno = err;
	return rc;
}

/* connect, close and fclose are cancellation points: pthread_cancel unwinds
 * through them (the shim is built with -fexceptions), and what a wrapper
 * began before the real call is settled by its cleanup. */
struct pg_connect_guard {
	struct pg_enforce_conn c;
	int pending; /* begun, not yet ended */
};

static void pg_connect_unwound(struct pg_connect_guard *g)
{
	if (PG_UNLIKELY(g->pending))
		PG_HOOK(pg_core_connect_cancelled(&g->c));
}

PG_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct pg_connect_guard g __attribute__((cleanup(pg_connect_unwound)));
	int on = pg_core_on() && pg_enforce_what, err = errno, rc = 0;

	g.pending = 0;
	if (on) {
		{
			/* A pool wait is a cancellation point, as connect is. */
			PG_INSIDE_SCOPE;
			rc = pg_core_connect_begin(fd, addr, len, &g.c);
		}
		if (rc < 0) {
			/* The pool policy says no: what real exhaustion looks like. */
			errno = -rc;
			return -1;
		}
		g.pending = 1;
		errno = err;
	}
	rc = pg_real.connect(fd, addr, len);
	err = errno;
	if (on) {
		g.pending = 0;
		PG_HOOK(pg_core_connect_end(&g.c, rc, err));
	}
	errno = err;
	return rc;
}

PG_EXPORT int shutdown(int fd, int how)
{
	int err = errno;

	if (pg_core_on() && pg_enforce_what)
		PG_HOOK(pg_core_shutdown(fd, how));
	errno = err;
	return pg_real.shutdown(fd, how);
}

struct pg_close_guard {
	struct pg_core_close op;
	int pending;
};

static void pg_close_unwound(struct pg_close_guard *g)
{
	if (PG_UNLIKELY(g->pending))
		PG_HOOK(pg_core_close_cancelled(&g->op));
}

PG_HOT PG_EXPORT int close(int fd)
{
	struct pg_close_guard g __attribute__((cleanup(pg_close_unwound)));
	int on = pg_core_on();
	int rc, err;

	g.pending = 0;
	if (on) {
		PG_HOOK(pg_core_close_begin(fd, &g.op));
		/* CPython's socket finalizer calls close() itself. */
		if (PG_UNLIKELY(pg_python_finalizer_call((uintptr_t)__builtin_return_address(0))))
			pg_fdtab_close_mark_finalizer(&g.op.c);
		g.pending = 1;
	}
	rc = pg_real.close(fd);
	err = errno;
	/* Linux releases the descriptor even when close fails (EINTR, EIO);
	 * only EBADF means there was none. */
	if (on) {
		g.pending = 0;
		PG_HOOK(pg_core_close_end(&g.op, rc < 0 && err == EBADF ? PG_WAS_GONE : PG_CLOSED));
	}
	errno = err;
	return rc;
}

PG_EXPORT int dup(int oldfd)
{
	int on = pg_core_on();
	int fd = pg_real.dup(oldfd);
	int err = errno;

	if (fd >= 0 && on)
		PG_HOOK(pg_core_dup(oldfd, fd, PG_VIA_DUP));
	errno = err;
	return fd;
}

/* dup2/dup3 onto an open descriptor close it first, inside the kernel. */
static int pg_dup23(int oldfd, int newfd, int flags, int three)
{
	struct pg_core_close op;
	int on = pg_core_on() && oldfd != newfd;
	int rc, err;

	if (on)
		PG_HOOK(pg_core_close_begin(newfd, &op));
	rc = three ? pg_real.dup3(oldfd, newfd, flags) : pg_real.dup2(oldfd, newfd);
	err = errno;
	if (on) {
		PG_HOOK(pg_core_close_end(&op, rc < 0 ? PG_NOT_CLOSED : PG_CLOSED));
		if (rc >= 0)
			PG_HOOK(pg_core_dup(oldfd, rc, three ? PG_VIA_DUP3 : PG_VIA_DUP2));
	}
	errno = err;
	return rc;
}

PG_EXPORT int dup2(int oldfd, int newfd)
{
	return pg_dup23(oldfd, newfd, 0, 0);
}

PG_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return pg_dup23(oldfd, newfd, flags, 1);
}

/* fcntl's third argument is an int or a pointer; passing it on as a pointer
 * keeps every bit of either (x86-64 and the other LP64 ABIs). */
static int pg_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	int on = pg_core_on();
	int rc = real(fd, cmd, arg);
	int err = errno;

	if (rc >= 0 && on && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		PG_HOOK(pg_core_dup(fd, rc, PG_VIA_FCNTL));
	errno = err;
	return rc;
}

PG_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	pg_real_bind();
	return pg_fcntl(pg_real.fcntl, fd, cmd, arg);
}

PG_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	pg_real_bind();
	return pg_fcntl(pg_real.fcntl64, fd, cmd, arg);
}

PG_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	struct pg_core_range r;
	/* CLOSE_RANGE_CLOEXEC only marks descriptors; it closes none. */
	int on = pg_core_on() && !(flags & CLOSE_RANGE_CLOEXEC) && first <= last;
	int rc, err;

	if (on)
		PG_HOOK(pg_core_range_begin(first, last,
					    last < INT_MAX && !(flags & CLOSE_RANGE_UNSHARE), &r));
	rc = pg_real.close_range(first, last, flags);
	err = errno;
	if (on)
		PG_HOOK(pg_core_range_end(&r, rc == 0));
	errno = err;
	return rc;
}

PG_EXPORT void closefrom(int lowfd)
{
	struct pg_core_range r;
	int on = pg_core_on() && lowfd >= 0;
	int err;

	if (on)
		PG_HOOK(pg_core_range_begin((unsigned)lowfd, INT_MAX, 0, &r));
	pg_real.closefrom(lowfd);
	err = errno;
	if (on)
		PG_HOOK(pg_core_range_end(&r, 1));
	errno = err;
}

/* recvmsg and recvmmsg: descriptors received over SCM_RIGHTS. A message
 * without control data costs one compare. */
PG_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	int on = pg_core_on();
	ssize_t rc = pg_real.recvmsg(fd, msg, flags);
	int err = errno;

	if (rc >= 0 && on && msg && msg->msg_controllen >= sizeof(struct cmsghdr))
		PG_HOOK(pg_core_received_msg(msg));
	errno = err;
	return rc;
}

PG_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		       struct timespec *timeout)
{
	int on = pg_core_on();
	int rc = pg_real.recvmmsg(fd, vec, vlen, flags, timeout);
	int err = errno;

	for (int i = 0; on && vec && i < rc; i++)
		if (vec[i].msg_hdr.msg_controllen >= sizeof(struct cmsghdr))
			PG_HOOK(pg_core_received_msg(&vec[i].msg_hdr));
	errno = err;
	return rc;
}

/* ---- syscall(): libuv closes with syscall(SYS_close) ---- */

/* The system call itself, as glibc's syscall() makes it: no cancellation
 * point, errno set only on failure. */
static inline long pg_sys(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	if ((unsigned long)ret > -4096UL) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
#else
	pg_real_bind();
	return pg_real.syscall(nr, a, b, c, d, e, f);
#endif
}

/* The numbers that make, copy or close descriptors, with the same hooks as
 * their wrappers; descriptor arguments truncated to int, as the kernel
 * reads them. */
static __attribute__((noinline)) long pg_syscall_fd(long nr, long a, long b, long c, long d, long e,
						    long f)
{
	int on = pg_core_on(), err;
	long rc;

	switch (nr) {
	case SYS_socket:
		rc = pg_sys(nr, a, b, c, d, e, f);
		err = errno;
		if (rc >= 0 && on)
			PG_HOOK(pg_core_socket((int)rc, (int)a, (int)b, (int)c));
		else if (rc >= 0 && pg_inside)
			pg_core_missed();
		errno = err;
		return rc;
	case SYS_socketpair:
		rc = pg_sys(nr, a, b, c, d, e, f);
		err = errno;
		if (rc == 0 && on)
			PG_HOOK(pg_core_socketpair((const int *)d, (int)a, (int)b, (int)c));
		errno = err;
		return rc;
	case SYS_accept:
	case SYS_accept4:
		rc = pg_sys(nr, a, b, c, d, e, f);
		return rc < 0 ? rc : pg_accepted(on, (int)rc);
	case SYS_connect:
		if (on && pg_enforce_what) {
			struct pg_enforce_conn cn;
			int r;
			err = errno;
			{
				PG_INSIDE_SCOPE;
				r = pg_core_connect_begin((int)a, (const struct sockaddr *)b,
							  (socklen_t)c, &cn);
			}
			if (r < 0) {
				errno = -r;
				return -1;
			}
			errno = err;
			rc = pg_sys(nr, a, b, c, d, e, f);
			err = errno;
			PG_HOOK(pg_core_connect_end(&cn, (int)rc, err));
			errno = err;
			return rc;
		}
		return pg_sys(nr, a, b, c, d, e, f);
	case SYS_shutdown:
		err = errno;
		if (on && pg_enforce_what)
			PG_HOOK(pg_core_shutdown((int)a, (int)b));
		errno = err;
		return pg_sys(nr, a, b, c, d, e, f);
	case SYS_close: {
		struct pg_core_close op;
		if (on)
			PG_HOOK(pg_core_close_begin((int)a, &op));
		rc = pg_sys(nr, a, b, c, d, e, f);
		err = errno;
		if (on)
			PG_HOOK(pg_core_close_end(&op, rc < 0 && err == EBADF ? PG_WAS_GONE
									      : PG_CLOSED));
		errno = err;
		return rc;
	}
	case SYS_dup:
		rc = pg_sys(nr, a, b, c, d, e, f);
		err = errno;
		if (rc >= 0 && on)
			PG_HOOK(pg_core_dup((int)a, (int)rc, PG_VIA_DUP));
		errno = err;
		return rc;
#ifdef SYS_dup2
	case SYS_dup2:
#endif
	case SYS_dup3: {
		struct pg_core_close op;
		int three = nr == SYS_dup3, dup_on = on && (int)a != (int)b;
		if (dup_on)
			PG_HOOK(pg_core_close_begin((int)b, &op));
		rc = pg_sys(nr, a, b, c, d, e, f);
		err = errno;
		if (dup_on) {
			PG_HOOK(pg_core_close_end(&op, rc < 0 ? PG_NOT_CLOSED : PG_CLOSED));
			if (rc >= 0)
				PG_HOOK(pg_core_dup((int)a, (int)rc,
						    three ? PG_VIA_DUP3 : PG_VIA_DUP2));
		}
		errno = err;
		return rc;
	}
	case SYS_fcntl:
		rc = pg_sys(nr, a, b, c, d, e, f);
		err = errno;
		if (rc >= 0 && on && ((int)b == F_DUPFD || (int)b == F_DUPFD_CLOEXEC))
			PG_HOOK(pg_core_dup((int)a, (int)rc, PG_VIA_FCNTL));
		errno = err;
		return rc;
	case SYS_close_range: {
		struct pg_core_range r;
		unsigned first = (unsigned)a, last = (unsigned)b;
		int range_on = on && !((int)c & CLOSE_RANGE_CLOEXEC) && first <= last;
		if (range_on)
			PG_HOOK(pg_core_range_begin(
			    first, last, last < INT_MAX && !((int)c & CLOSE_RANGE_UNSHARE), &r));
		rc = pg_sys(nr, a, b, c, d, e, f);
		err = errno;
		if (range_on)
			PG_HOOK(pg_core_range_end(&r, rc == 0));
		errno = err;
		return rc;
	}
	}
	return pg_sys(nr, a, b, c, d, e, f);
}

/* Every other number: a range check and a jump to the system call, no
 * lock, errno untouched but by the call's own failure. */
PG_HOT PG_EXPORT long syscall(long nr, ...)
{
	va_list ap;
	long a, b, c, d, e, f;

	va_start(ap, nr);
	a = va_arg(ap, long);
	b = va_arg(ap, long);
	c = va_arg(ap, long);
	d = va_arg(ap, long);
	e = va_arg(ap, long);
	f = va_arg(ap, long);
	va_end(ap);
	switch (nr) {
	case SYS_socket:
	case SYS_socketpair:
	case SYS_accept:
	case SYS_accept4:
	case SYS_connect:
	case SYS_shutdown:
	case SYS_close:
	case SYS_dup:
#ifdef SYS_dup2
	case SYS_dup2:
#endif
	case SYS_dup3:
	case SYS_fcntl:
	case SYS_close_range: return pg_syscall_fd(nr, a, b, c, d, e, f);
	default: return pg_sys(nr, a, b, c, d, e, f);
	}
}

/* fclose closes its descriptor inside libc, where no wrapper sees it. */
PG_EXPORT int fclose(FILE *fp)
{
	struct pg_close_guard g __attribute__((cleanup(pg_close_unwound)));
	int on = pg_core_on() && fp;
	int fd = on ? fileno(fp) : -1;
	int rc, err;

	g.pending = 0;
	if (fd >= 0) {
		PG_HOOK(pg_core_close_begin(fd, &g.op));
		g.pending = 1;
	}
	/* Flushing the stream's buffer may be cancelled, before any close. */
	rc = pg_real.fclose(fp);
	err = errno;
	if (fd >= 0) {
		g.pending = 0;
		PG_HOOK(
		    pg_core_close_end(&g.op, rc == EOF && err == EBADF ? PG_WAS_GONE : PG_CLOSED));
	}
	errno = err;
	return rc;
}

/* The report signal's actions (shim/signals.c); a vfork child's calls are
 * its own and change nothing of the parent's. */
PG_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int rc;

	pg_core_on();
	if (!pg_inside) {
		rc = pg_signals_sigaction(sig, act, old, pg_vfork_child);
		if (rc != 1)
			return rc;
	}
	return pg_real.sigaction(sig, act, old);
}

static pg_sighandler_t pg_signal_common(int sig, pg_sighandler_t h,
					pg_sighandler_t (*real)(int, pg_sighandler_t))
{
	pg_sighandler_t prev;

	pg_core_on();
	if (!pg_inside && pg_signals_signal(sig, h, real, &prev, pg_vfork_child) == 0)
		return prev;
	return real(sig, h);
}

PG_EXPORT pg_sighandler_t signal(int sig, pg_sighandler_t h)
{
	pg_real_bind();
	return pg_signal_common(sig, h, pg_real.signal);
}

PG_EXPORT pg_sighandler_t bsd_signal(int sig, pg_sighandler_t h)
{
	pg_real_bind();
	return pg_signal_common(sig, h, pg_real.bsd_signal);
}

PG_EXPORT pg_sighandler_t sysv_signal(int sig, pg_sighandler_t h)
{
	pg_real_bind();
	return pg_signal_common(sig, h, pg_real.sysv_signal);
}

PG_EXPORT pg_sighandler_t sigset(int sig, pg_sighandler_t h)
{
	pg_sighandler_t prev;

	pg_real_bind();
	pg_core_on();
	if (!pg_inside && pg_signals_sigset(sig, h, &prev, pg_vfork_child) == 0)
		return prev;
	return pg_real.sigset(sig, h);
}

/* vfork's error path (errno from the asm stub below). */
int pg_vfork_fail(int err);
__attribute__((used, externally_visible)) int pg_vfork_fail(int err)
{
	errno = err;
	return -1;
}

#if defined(__x86_64__)
/* vfork cannot be wrapped in C: the child returns through our frame and the
 * parent would resume on a clobbered one. This is glibc's own vfork (return
 * address kept in a register, not on the shared stack) plus one store: the
 * child sets pg_vfork_child in the TLS it shares with the suspended parent
 * thread, and the parent clears it when it resumes (after the child's exec
 * or _exit), so that nothing the child does reaches the parent's registry.
 * posix_spawn needs none of this: its child calls libc internals only. */
__asm__(".text\n"
	".globl vfork\n"
	".type vfork,@function\n"
	"vfork:\n"
	"	pop %rdi\n"
	"	mov $58, %eax\n" /* SYS_vfork */
	"	syscall\n"
	"	push %rdi\n"
	"	cmp $-4095, %rax\n"
	"	jae 2f\n"
	"	movq pg_vfork_child@gottpoff(%rip), %rcx\n"
	"	test %rax, %rax\n"
	"	jnz 1f\n"
	"	movl $1, %fs:(%rcx)\n"
	"	ret\n"
	"1:	movl $0, %fs:(%rcx)\n"
	"	ret\n"
	"2:	neg %eax\n"
	"	mov %eax, %edi\n"
	"	jmp pg_vfork_fail\n"
	".size vfork, .-vfork\n");
#endif

/* The exit status, for exitcode: exit() as called by the program, and the
 * return value of main, which glibc passes to exit() internally. */
PG_EXPORT void exit(int status)
{
	pg_real_bind();
	pg_core_exit_status(status);
	pg_real.exit(status);
}

static int (*pg_main_real)(int, char **, char **);

static int pg_main(int argc, char **argv, char **envp)
{
	int rc = pg_main_real(argc, argv, envp);

	pg_core_exit_status(rc);
	return rc;
}

PG_EXPORT int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv,
				void (*init)(void), void (*fini)(void), void (*rtld_fini)(void),
				void *stack_end)
{
	pg_real_bind();
	pg_main_real = main;
	return pg_real.libc_start_main(pg_main, argc, argv, init, fini, rtld_fini, stack_end);
}
