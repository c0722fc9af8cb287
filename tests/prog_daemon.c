/* Test program: a small daemon whose SIGUSR1 means "stop" (memcached's), as
 * tests/sh_tool_dump.sh runs it under the library.
 *
 *   prog_daemon [--rewrite-env] [--stderr-to FILE] [--leak-every N]
 *
 * Listens on 127.0.0.1 (a free port), prints "port N" and serves: each
 * connection gets "hello\n" and is closed; with --leak-every N, every Nth
 * connection also leaks a socket. SIGUSR1: prints "Gracefully stopping" and
 * exits 0. --rewrite-env overwrites its environment in place and clears it
 * (as setproctitle does); --stderr-to points fd 2 at FILE (nginx's
 * error.log). Ends by itself after 120 s. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static volatile sig_atomic_t stop;

static void on_usr1(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct sigaction sa;
	int l, leak_every = 0, served = 0;
	time_t t0 = time(NULL);

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rewrite-env")) {
			for (char **e = environ; *e; e++)
				memset(*e, 'x', strlen(*e));
			clearenv();
		} else if (!strcmp(argv[i], "--stderr-to") && i + 1 < argc) {
			int fd = open(argv[++i], O_WRONLY | O_CREAT | O_APPEND, 0600);
			if (fd < 0 || dup2(fd, 2) < 0)
				return 90;
			close(fd);
		} else if (!strcmp(argv[i], "--leak-every") && i + 1 < argc) {
			leak_every = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: prog_daemon [--rewrite-env] [--stderr-to FILE] "
					"[--leak-every N]\n");
			return 2;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: poll returns EINTR */
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 16) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return 91;
	printf("port %d\n", ntohs(a.sin_port));
	fflush(stdout);
	while (!stop && time(NULL) - t0 < 120) {
		struct pollfd p = { l, POLLIN, 0 };
		int c;
		if (poll(&p, 1, 1000) <= 0)
			continue;
		c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		if (write(c, "hello\n", 6) != 6)
			perror("write");
		close(c);
		served++;
		if (leak_every > 0 && served % leak_every == 0 &&
		    socket(AF_INET, SOCK_DGRAM, 0) < 0)
			perror("socket");
	}
	printf("Gracefully stopping after %d connection(s)\n", served);
	return 0;
}
