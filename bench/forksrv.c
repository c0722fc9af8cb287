/* bench/forksrv: a forking server (a child per connection, as socat fork,
 * postgres or inetd-style servers), connections per second.
 *
 *   forksrv [-n CONNS] [-l] [-L LIBRARY] [-O OPTIONS]
 *
 * Starts the server as a process of its own (with LD_PRELOAD=LIBRARY and
 * PORTGUARD_OPTIONS=OPTIONS when -L is given), then, bare itself, connects
 * CONNS times one after the other and reads each answer to its end. Each
 * child writes "ok\n" and exits with exit(), its connection still open: the
 * kernel closes it after the child's exit handlers, the library's exit
 * report included, so the client waits for that report as a real client of
 * such a server does. With -l every child also leaks one socket (a report
 * with a symbolized site); without, a child only inherited its sockets and
 * has nothing to say. Prints "conns=N seconds=S per_sec=R". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static __attribute__((noinline)) void leak_one(void)
{
	if (socket(AF_INET, SOCK_DGRAM, 0) < 0)
		perror("socket");
}

static int serve(int leak)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return 90;
	printf("port %d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);
		pid_t pid;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (c < 0) {
			if (errno == EINTR)
				continue;
			return 91;
		}
		pid = fork();
		if (pid == 0) {
			close(l);
			if (write(c, "ok\n", 3) != 3)
				_exit(92);
			if (leak)
				leak_one();
			exit(0); /* c is closed by the kernel, after the exit report */
		}
		close(c);
	}
}

int main(int argc, char **argv)
{
	long conns = 500;
	int leak = 0, opt, port = 0, p[2];
	const char *lib = NULL, *opts = "";
	char *sargv[4], serve_arg[] = "serve", mode[8], env_pre[4096], env_opt[4096], line[64];
	char **senv;
	size_t ne = 0;
	pid_t srv;
	FILE *f;
	double t0, t1;

	if (argc > 1 && !strcmp(argv[1], "serve"))
		return serve(argc > 2 && !strcmp(argv[2], "leak"));
	while ((opt = getopt(argc, argv, "n:lL:O:")) != -1) {
		switch (opt) {
		case 'n': conns = atol(optarg); break;
		case 'l': leak = 1; break;
		case 'L': lib = optarg; break;
		case 'O': opts = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-n CONNS] [-l] [-L LIBRARY] [-O OPTIONS]\n",
				argv[0]);
			return 2;
		}
	}
	for (char **e = environ; *e; e++)
		ne++;
	senv = calloc(ne + 3, sizeof(*senv));
	ne = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "PORTGUARD_OPTIONS=", 18))
			senv[ne++] = *e;
	if (lib) {
		snprintf(env_pre, sizeof(env_pre), "LD_PRELOAD=%s", lib);
		snprintf(env_opt, sizeof(env_opt), "PORTGUARD_OPTIONS=%s", opts);
		senv[ne++] = env_pre;
		senv[ne++] = env_opt;
	}
	sargv[0] = argv[0];
	sargv[1] = serve_arg;
	snprintf(mode, sizeof(mode), "%s", leak ? "leak" : "clean");
	sargv[2] = mode;
	sargv[3] = NULL;
	if (pipe(p) < 0)
		return 3;
	{
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
		posix_spawn_file_actions_addclose(&fa, p[0]);
		if (posix_spawn(&srv, "/proc/self/exe", &fa, NULL, sargv, senv) != 0)
			return 4;
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "port %d", &port) != 1) {
		kill(srv, SIGKILL);
		return 5;
	}
	t0 = now();
	for (long i = 0; i < conns; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int s = socket(AF_INET, SOCK_STREAM, 0);
		char buf[16];
		ssize_t n;
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("connect");
			kill(srv, SIGKILL);
			return 6;
		}
		while ((n = read(s, buf, sizeof(buf))) > 0)
			;
		close(s);
	}
	t1 = now();
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	printf("conns=%ld seconds=%.3f per_sec=%.1f\n", conns, t1 - t0, conns / (t1 - t0));
	return 0;
}
