/*
 * bench/calls.c: N calls of one wrapped function, for bench/calls.py to
 * count under callgrind (the instructions the wrapper adds per call):
 *   getppid   syscall(SYS_getppid): a number the syscall() wrapper only
 *             passes on (libc's futex paths are like it)
 *   close     socket() + syscall(SYS_close), libuv's way of closing
 *   recvmsg   recvmsg of one byte over a socketpair, no control data
 *   scm       sendmsg of a socket over a socketpair (SCM_RIGHTS), recvmsg,
 *             close of the received socket
 *
 *   build/bench/calls MODE N
 * Prints figures only (the count done).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void send_fd(int over, int fd)
{
	char byte = 'x', ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(over, &m, 0) != 1) {
		perror("calls: sendmsg");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[1] : "";
	long n = argc > 2 ? atol(argv[2]) : 0, done = 0;
	int sv[2], s = -1;
	char byte = 'x', ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n <= 0) {
		fprintf(stderr, "usage: %s getppid|close|recvmsg|scm N\n", argv[0]);
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("calls: socketpair");
		return 1;
	}
	if (!strcmp(mode, "scm") && (s = socket(AF_INET, SOCK_DGRAM, 0)) < 0) {
		perror("calls: socket");
		return 1;
	}
	for (long i = 0; i < n; i++) {
		if (!strcmp(mode, "getppid")) {
			done += syscall(SYS_getppid) > 0;
		} else if (!strcmp(mode, "close")) {
			int fd = socket(AF_INET, SOCK_DGRAM, 0);
			done += syscall(SYS_close, fd) == 0;
		} else if (!strcmp(mode, "recvmsg")) {
			if (write(sv[0], "x", 1) != 1)
				return 1;
			m.msg_control = NULL;
			m.msg_controllen = 0;
			done += recvmsg(sv[1], &m, 0) == 1;
		} else if (!strcmp(mode, "scm")) {
			send_fd(sv[0], s);
			m.msg_control = ctl;
			m.msg_controllen = sizeof(ctl);
			if (recvmsg(sv[1], &m, 0) == 1) {
				int got;
				memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
				done += close(got) == 0;
			}
		} else {
			fprintf(stderr, "calls: unknown mode %s\n", mode);
			return 2;
		}
	}
	printf("mode=%s done=%ld\n", mode, done);
	return done == n ? 0 : 1;
}
