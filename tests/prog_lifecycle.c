/* Test program: one descriptor-lifecycle scenario per argument, run under the
 * library by tests/test_lifecycle.c, which checks the JSON report.
 *   prog_lifecycle SCENARIO */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* A system call the library cannot see (syscall() itself is followed):
 * the close or socket "behind its back" of these cases. */
static long raw(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static int tcp(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0) {
		perror("socket");
		exit(90);
	}
	return fd;
}

static void send_fd(int over, int fd)
{
	char byte = 'x';
	struct iovec iov = { &byte, 1 };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(over, &m, 0) != 1)
		exit(91);
}

static int recv_fd(int over)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	int fd;

	if (recvmsg(over, &m, 0) != 1)
		exit(92);
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
	return fd;
}

static volatile int stop;
static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}
static void *busy(void *arg)
{
	(void)arg;
	while (!stop)
		close(tcp());
	return NULL;
}

int main(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : "";

	if (!strcmp(s, "dup")) { /* 1 leaked, reached through the dup */
		int a = tcp(), d = dup(a);
		close(a);
		printf("dup=%d\n", d);
	} else if (!strcmp(s, "dup2")) { /* b closed by dup2; a's socket closed at last handle */
		int a = tcp(), b = tcp();
		if (dup2(a, b) != b)
			return 1;
		close(a);
		close(b);
	} else if (!strcmp(s, "dup3-leak")) { /* 1 leaked with 2 handles */
		int a = tcp(), b = tcp();
		dup3(a, b, O_CLOEXEC);
	} else if (!strcmp(s, "fcntl")) { /* 1 leaked via F_DUPFD_CLOEXEC copy */
		int a = tcp(), d = fcntl(a, F_DUPFD_CLOEXEC, 50);
		close(a);
		printf("dupfd=%d\n", d);
	} else if (!strcmp(s, "close_range")) { /* 0 leaked */
		int first = tcp();
		for (int i = 0; i < 4; i++)
			tcp();
		close_range((unsigned)first, ~0U, 0);
	} else if (!strcmp(s, "close_range_cloexec")) { /* 5 leaked */
		int first = tcp();
		for (int i = 0; i < 4; i++)
			tcp();
		close_range((unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC);
	} else if (!strcmp(s, "closefrom")) { /* 1 leaked (below the range) */
		tcp();
		int first = tcp();
		for (int i = 0; i < 3; i++)
			tcp();
		closefrom(first);
	} else if (!strcmp(s, "fclose")) { /* 0 leaked, 1 closed */
		FILE *f = fdopen(tcp(), "r+");
		fclose(f);
	} else if (!strcmp(s, "raw_close")) { /* closed_unseen 1 */
		int a = tcp();
		raw(SYS_close, a, 0, 0);
	} else if (!strcmp(s,
			   "raw_close_reuse")) { /* closed_unseen 1, the number reused by a file */
		int a = tcp();
		raw(SYS_close, a, 0, 0);
		if (open("/dev/null", O_RDONLY) != a)
			return 1;
	} else if (!strcmp(s, "raw_close_socket_reuse")) { /* 1 untracked + closed_unseen 1 */
		int a = tcp();
		raw(SYS_close, a, 0, 0);
		if (raw(SYS_socket, AF_INET, SOCK_DGRAM, 0) != a)
			return 1;
	} else if (!strcmp(s,
			   "scm_rights")) { /* received 1 (2 handles: the raw one too); 3 leaked */
		int sv[2];
		int raw_fd = (int)raw(SYS_socket, AF_INET6, SOCK_DGRAM, 0);
		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		send_fd(sv[0], raw_fd);
		printf("received=%d\n", recv_fd(sv[1]) != raw_fd);
	} else if (!strcmp(s, "close_range_twice")) { /* 3 double closes: a finite range */
		int first = tcp();
		tcp();
		tcp();
		close_range((unsigned)first, (unsigned)first + 2, 0);
		close_range((unsigned)first, (unsigned)first + 2, 0);
	} else if (!strcmp(s, "closefrom_twice")) { /* none: "close everything from here" */
		int first = tcp();
		tcp();
		tcp();
		closefrom(first);
		closefrom(first);
		close_range((unsigned)first, ~0U, 0);
	} else if (!strcmp(s, "dups")) { /* 1 leaked, 3 descriptors; a dup closed twice */
		int a = tcp(), d = dup(a);
		dup2(a, 40);
		fcntl(a, F_DUPFD, 50);
		close(d);
		close(d);
	} else if (!strcmp(s, "untracked_tcp")) { /* untracked 1 (a TCP one), 1 leaked */
		raw(SYS_socket, AF_INET, SOCK_STREAM, 0);
		tcp();
	} else if (!strcmp(s, "received_closed")) { /* received 1, closed; nothing leaked */
		int sv[2], got;
		int raw_fd = (int)raw(SYS_socket, AF_INET, SOCK_DGRAM, 0);
		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		send_fd(sv[0], raw_fd);
		got = recv_fd(sv[1]);
		raw(SYS_close, raw_fd, 0, 0);
		close(got);
		close(sv[0]);
		close(sv[1]);
	} else if (!strcmp(s, "double_close")) {
		int a = tcp();
		close(a);
		if (close(a) == 0)
			return 1;
	} else if (!strcmp(s, "fork")) { /* parent: 0 leaked; child: 1 inherited, 1 leaked */
		int p = tcp();
		pid_t pid = fork();
		if (pid == 0) {
			tcp();
			exit(0);
		}
		waitpid(pid, NULL, 0);
		close(p);
		printf("child=%d\n", pid);
	} else if (!strcmp(s, "exec")) { /* the new image: 1 inherited, 0 leaked */
		int a = tcp();
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", a);
		execl("/proc/self/exe", argv[0], "execed", fd, (char *)NULL);
		return 1;
	} else if (!strcmp(s, "execed")) {
		/* and one of its own, closed: something of its own to say (a
		 * process that only inherited writes no report) */
		close(tcp());
		printf("still open=%d\n", fcntl(atoi(argv[2]), F_GETFD) >= 0);
	} else if (!strcmp(s, "vfork")) { /* the child's close is not the parent's: 1 leaked */
		int a = tcp();
		pid_t pid = vfork();
		if (pid == 0) {
			close(a);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	} else if (!strcmp(s, "posix_spawn")) { /* 1 leaked; the child's closes do not count */
		int a = tcp();
		pid_t pid;
		posix_spawn_file_actions_t fa;
		char *child[] = { (char *)"true", NULL };
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addclose(&fa, a);
		if (posix_spawnp(&pid, "true", &fa, NULL, child, environ) != 0)
			return 1;
		waitpid(pid, NULL, 0);
	} else if (!strcmp(s,
			   "fork_storm")) { /* fork while another thread churns and signals land */
		pthread_t t;
		pthread_create(&t, NULL, busy, NULL);
		for (int i = 0; i < 200; i++) {
			pid_t pid = fork();
			if (pid == 0) {
				close(tcp()); /* the library works in the child */
				_exit(0);
			}
			kill(getpid(), SIGUSR1);
			waitpid(pid, NULL, 0);
		}
		stop = 1;
		pthread_join(t, NULL);
		printf("forked 200\n");
	} else if (!strcmp(s, "bind_no_port")) { /* the port a bind-before-connect client sees */
		struct sockaddr_in a = { .sin_family = AF_INET }, b;
		socklen_t len = sizeof(a);
		int l = tcp(), c = tcp();
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
		    getsockname(l, (struct sockaddr *)&a, &len))
			return 1;
		b = a;
		b.sin_port = 0;
		if (bind(c, (struct sockaddr *)&b, sizeof(b)) ||
		    getsockname(c, (struct sockaddr *)&b, &len))
			return 1;
		printf("after bind %d", ntohs(b.sin_port));
		if (connect(c, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(c, (struct sockaddr *)&b, &len))
			return 1;
		printf(", after connect %s\n", ntohs(b.sin_port) ? "a port" : "0");
		close(c);
		close(l);
	} else if (!strcmp(s,
			   "slowleak")) { /* a slow leak: one socket every 20 ms, until SIGTERM */
		signal(SIGTERM, on_term);
		printf("ready\n");
		fflush(stdout);
		while (!stop)
			if (tcp() >= 0)
				usleep(20000);
	} else if (!strcmp(s, "stderr_socket")) { /* a daemon: fd 2 closed, a socket there */
		int pair[2];
		close(2);
		/* A connected socket on fd 2: anything written to it would reach
		 * the peer, which tells us. */
		socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
		if (pair[0] != 2)
			return 1;
		printf("socket on fd %d\n", pair[0]);
		fflush(stdout);
		if (fork() == 0) {
			char buf[4096];
			ssize_t n, total = 0;
			close(2);
			while ((n = read(pair[1], buf, sizeof(buf))) > 0)
				total += n;
			printf("the peer read %zd byte(s)\n", total);
			fflush(stdout);
			_exit(0);
		}
		close(pair[1]);
		return 0;
	} else {
		fprintf(stderr, "unknown scenario '%s'\n", s);
		return 2;
	}
	fflush(stdout);
	return 0;
}
