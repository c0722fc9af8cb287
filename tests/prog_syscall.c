/* Test program: descriptors made, copied and closed through syscall(), as
 * libuv closes them (syscall(SYS_close)), and a table of other numbers
 * whose return value and errno must be as without the library. Prints one
 * line per call; run with and without the library, the outputs must be
 * identical. Leaves one socket open (made by syscall(SYS_socket)) and closes
 * one twice.
 *   build/tests/prog_syscall */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* errno is set to a marker first: a call that succeeds must leave it. */
#define SHOW(expr)                                                 \
	do {                                                       \
		errno = 4242;                                      \
		long r_ = (long)(expr);                            \
		int e_ = errno;                                    \
		printf("%-72s = %ld errno=%s\n", #expr, r_,        \
		       e_ == 4242 ? "kept" : strerrorname_np(e_)); \
	} while (0)

static long sys_pid;

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	char src[16] = "abcdefgh", dst[16] = { 0 };
	struct iovec l = { dst, 8 }, r = { src, 8 };
	struct timespec ts;
	long s, s2, d, lst, c, acc;
	int sv[2];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Numbers the library only passes on. */
	sys_pid = syscall(SYS_getpid);
	SHOW(syscall(SYS_getpid) == getpid());
	SHOW(syscall(SYS_gettid) == gettid());
	SHOW(syscall(SYS_read, -1, dst, 1));
	SHOW(syscall(SYS_futex, NULL, FUTEX_WAKE, 1, NULL, NULL, 0));
	SHOW(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts));
	SHOW(syscall(SYS_openat, AT_FDCWD, "/nonexistent/portguard", O_RDONLY, 0));
	SHOW(syscall(SYS_process_vm_readv, sys_pid, &l, 1, &r, 1, 0)); /* six arguments */
	SHOW(syscall(SYS_process_vm_readv, sys_pid, &l, 1, &r, 1, 1)); /* the sixth is read */
	SHOW(syscall(SYS_mmap, NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) > 0);
	SHOW(syscall(99999));
	/* Numbers the library follows, on bad input. */
	SHOW(syscall(SYS_close, -1));
	SHOW(syscall(SYS_close, (1L << 40) | 1000)); /* read as int 1000, as the kernel does */
	SHOW(syscall(SYS_dup, -1));
	SHOW(syscall(SYS_socket, AF_INET, 12345, 0));
	SHOW(syscall(SYS_fcntl, -1, F_GETFD));
	/* A socket made and closed, then closed again (a double close). */
	SHOW(s = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
	SHOW(syscall(SYS_close, s));
	SHOW(syscall(SYS_close, s));
	/* Copies, closed through syscall() too. */
	SHOW(s2 = syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0));
	SHOW(d = syscall(SYS_dup, s2));
	SHOW(syscall(SYS_dup3, s2, 50, 0));
	SHOW(syscall(SYS_fcntl, s2, F_DUPFD, 60));
	SHOW(syscall(SYS_close_range, 50, 60, 0));
	SHOW(syscall(SYS_close, d));
	SHOW(syscall(SYS_close, s2));
	SHOW(syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv));
	SHOW(syscall(SYS_close, sv[0]));
	SHOW(syscall(SYS_close, sv[1]));
	/* A connection on loopback: socket, bind, listen, connect, accept4,
	 * shutdown, close, all by number. */
	SHOW(lst = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
	SHOW(syscall(SYS_bind, lst, &a, sizeof(a)));
	SHOW(syscall(SYS_listen, lst, 4));
	SHOW(syscall(SYS_getsockname, lst, &a, &len));
	SHOW(c = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
	SHOW(syscall(SYS_connect, c, &a, sizeof(a)));
	SHOW(acc = syscall(SYS_accept4, lst, NULL, NULL, SOCK_CLOEXEC));
	SHOW(syscall(SYS_shutdown, c, SHUT_WR));
	SHOW(syscall(SYS_close, acc));
	SHOW(syscall(SYS_close, c));
	SHOW(syscall(SYS_close, lst));
	/* Left open: a leak at this line. */
	SHOW(syscall(SYS_socket, AF_INET6, SOCK_STREAM, 0)); /* LEAK-SYSCALL */
	return 0;
}
