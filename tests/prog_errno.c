/* Test program: calls every wrapped function on good and bad inputs and
 * prints return values, descriptor numbers and errno. Run with and without
 * the library; the two outputs must be identical. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHOW(expr)                                             \
	do {                                                   \
		errno = 0;                                     \
		long r_ = (long)(expr);                        \
		printf("%-60s = %ld errno=%s\n", #expr, r_,    \
		       r_ < 0 ? strerrorname_np(errno) : "-"); \
	} while (0)

static struct sockaddr_in loop(unsigned short port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static void on_usr2(int sig)
{
	(void)sig;
}

int main(void)
{
	struct sockaddr_in a = loop(0), b;
	socklen_t len = sizeof(b);
	int sv[2], s, l, c, fl;
	struct sigaction sa, old;
	struct rlimit rl;

	SHOW(s = socket(AF_INET, SOCK_STREAM, 0));
	SHOW(socket(9999, SOCK_STREAM, 0));
	SHOW(socket(AF_INET, 9999, 0));
	SHOW(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
	SHOW(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	SHOW(socketpair(AF_INET, SOCK_STREAM, 0, sv));
	SHOW(accept(s, NULL, NULL));
	SHOW(accept(-1, NULL, NULL));
	SHOW(accept4(s, NULL, NULL, 12345));
	SHOW(bind(-1, (struct sockaddr *)&a, sizeof(a)));
	SHOW(bind(s, (struct sockaddr *)&a, 3));
	SHOW(l = socket(AF_INET, SOCK_STREAM, 0));
	SHOW(bind(l, (struct sockaddr *)&a, sizeof(a)));
	SHOW(bind(l, (struct sockaddr *)&a, sizeof(a)));
	SHOW(listen(l, 4));
	SHOW(listen(-1, 4));
	SHOW(getsockname(l, (struct sockaddr *)&b, &len));
	SHOW(connect(s, (struct sockaddr *)&b, sizeof(b)));
	SHOW(connect(s, (struct sockaddr *)&b, sizeof(b)));
	SHOW(c = accept(l, NULL, NULL));
	SHOW(fcntl(l, F_SETFL, O_NONBLOCK));
	SHOW(accept4(l, NULL, NULL, SOCK_NONBLOCK));
	SHOW(shutdown(s, SHUT_WR));
	SHOW(shutdown(sv[0], 99));
	SHOW(connect(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&a, sizeof(a)));
	SHOW(fl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	SHOW(connect(fl, (struct sockaddr *)&b, sizeof(b)));
	SHOW(close(-1));
	SHOW(close(9999));
	SHOW(close(c));
	SHOW(close(c));
	SHOW(dup(-1));
	SHOW(dup(s));
	SHOW(dup2(s, s));
	SHOW(dup2(-1, 40));
	SHOW(dup2(s, 41));
	SHOW(dup2(s, -1));
	SHOW(dup3(s, s, 0));
	SHOW(dup3(s, 42, 12345));
	SHOW(dup3(s, 42, O_CLOEXEC));
	SHOW(fcntl(s, F_DUPFD, 100));
	SHOW(fcntl(s, F_DUPFD_CLOEXEC, -1));
	SHOW(fcntl(s, F_GETFD));
	SHOW(fcntl(-1, F_DUPFD, 0));
	SHOW(fcntl(s, F_SETFL, O_NONBLOCK));
	SHOW(fcntl(s, F_GETFL) & O_NONBLOCK);
	SHOW(close_range(60, 50, 0));
	SHOW(close_range(40, 45, 12345));
	SHOW(close_range(41, 42, CLOSE_RANGE_CLOEXEC));
	SHOW(fcntl(41, F_GETFD));
	SHOW(close_range(41, 42, 0));
	SHOW(fcntl(41, F_GETFD));
	SHOW(fclose(fdopen(dup(s), "r")));
	SHOW(sigaction(SIGUSR2, NULL, &old));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	SHOW(sigaction(SIGUSR2, &sa, &old));
	SHOW(sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == on_usr2);
	SHOW(sigaction(SIGKILL, &sa, NULL));
	SHOW(sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == SIG_DFL);
	SHOW(signal(SIGUSR1, on_usr2) == SIG_DFL);
	SHOW(signal(SIGUSR1, SIG_DFL) == on_usr2);
	SHOW(signal(SIGKILL, on_usr2) == SIG_ERR);
	SHOW(signal(-5, on_usr2) == SIG_ERR);

	/* EMFILE: the same descriptor numbers, and the failure one call later
	 * or earlier would show here. */
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 64;
	SHOW(setrlimit(RLIMIT_NOFILE, &rl));
	for (int i = 0; i < 80; i++) {
		errno = 0;
		int fd = i % 3 == 0   ? socket(AF_INET, SOCK_DGRAM, 0)
			 : i % 3 == 1 ? dup(s)
				      : fcntl(s, F_DUPFD, 0);
		printf("%d:%d:%s ", i, fd, fd < 0 ? strerrorname_np(errno) : "-");
	}
	printf("\n");
	SHOW(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	SHOW(accept(l, NULL, NULL));
	return 0;
}
