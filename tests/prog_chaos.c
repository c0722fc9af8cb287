/* Test program: everything at once, for SECONDS. Threads make, dup and
 * close sockets (socket, socketpair, accept, dup, dup2, dup3, fcntl,
 * close_range over their own descriptors); one forks children that exit,
 * exec this program again, or make sockets and leak them; one starts
 * threads that block in connect, accept or close and cancels them; the
 * test sends report signals meanwhile. Prints "ready" once running, and at
 * the end "done", what it did, and how its children ended (a child that
 * does not end within 10 s is killed and counted as hung).
 *   prog_chaos SECONDS
 *   prog_chaos child       (what an exec'd child runs) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHURNERS 4

static volatile int stop;
static struct sockaddr_in srv;
static int lfd;
static const char *self;
static unsigned long made[CHURNERS], forks, execs, abnormal, hung, cancels;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *server(void *arg)
{
	(void)arg;
	while (!stop) {
		int c = accept(lfd, NULL, NULL);
		if (c >= 0)
			close(c);
	}
	return NULL;
}

static void *churn(void *arg)
{
	long id = (long)arg;
	unsigned seed = (unsigned)id * 7919u;

	while (!stop) {
		int a = socket(rand_r(&seed) % 2 ? AF_INET : AF_INET6, SOCK_STREAM, 0), pair[2];
		int b = a >= 0 ? dup(a) : -1, c;

		made[id]++;
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0) {
			c = fcntl(pair[0], F_DUPFD_CLOEXEC, 100 + (int)id * 50);
			if (c >= 0 && b >= 0)
				dup2(c, b); /* closes b's old socket handle */
			if (c >= 0)
				close(c);
			/* Only our own numbers: pair[0] and pair[1] when they
			 * are next to each other. */
			if (pair[1] == pair[0] + 1)
				close_range((unsigned)pair[0], (unsigned)pair[1], 0);
			else {
				close(pair[0]);
				close(pair[1]);
			}
		}
		if (rand_r(&seed) % 4 == 0) {
			int s = socket(AF_INET, SOCK_STREAM, 0);
			if (s >= 0 && connect(s, (struct sockaddr *)&srv, sizeof(srv)) == 0 &&
			    rand_r(&seed) % 2)
				shutdown(s, SHUT_WR);
			if (s >= 0) {
				/* dup3 onto a descriptor of its own: an implicit
				 * close. */
				int d = dup(s);
				if (d >= 0 && dup3(s, d, O_CLOEXEC) >= 0)
					close(d);
				close(s);
			}
		}
		if (b >= 0)
			close(b);
		if (a >= 0)
			close(a);
	}
	return NULL;
}

static char abnormal_what[128];

static void reap(pid_t pid, int kind)
{
	double t0 = now();
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (now() - t0 > 10) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			hung++;
			return;
		}
		usleep(1000);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (!abnormal++)
			snprintf(abnormal_what, sizeof(abnormal_what),
				 " (first: child kind %d, %s %d)", kind,
				 WIFEXITED(st) ? "status" : "signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
}

static void *forker(void *arg)
{
	(void)arg;
	while (!stop) {
		pid_t pid = fork();
		if (pid == 0) {
			switch (forks % 3) {
			case 0: _exit(0);
			case 1: execl(self, self, "child", (char *)NULL); _exit(127);
			default:
				if (socket(AF_INET, SOCK_DGRAM, 0) < 0)
					_exit(3);
				exit(0);
			}
		}
		if (pid > 0) {
			int kind = (int)(forks % 3);
			if (kind == 1)
				execs++;
			forks++;
			reap(pid, kind);
		}
		usleep(2000);
	}
	return NULL;
}

static void close_it(void *arg)
{
	int *fd = arg;

	if (*fd >= 0)
		close(*fd);
}

/* Cancelled wherever it is; its cleanup closes what it holds, as a careful
 * program's does. */
static void *victim(void *arg)
{
	long kind = (long)arg;
	int s = -1, one = -1;

	pthread_cleanup_push(close_it, &s);
	pthread_cleanup_push(close_it, &one);
	for (;;) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (kind == 0) {
			connect(s, (struct sockaddr *)&srv, sizeof(srv));
		} else if (kind == 1) {
			struct sockaddr_in a = { .sin_family = AF_INET };
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			one = socket(AF_INET, SOCK_STREAM, 0);
			if (bind(one, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(one, 1) == 0)
				accept(one, NULL, NULL); /* blocks: cancelled here */
			/* Forgotten before the close, a cancellation point:
			 * the cleanup never closes a number twice. */
			int t = one;
			one = -1;
			close(t);
		} else {
			pthread_testcancel();
		}
		int t = s;
		s = -1;
		close(t);
	}
	pthread_cleanup_pop(0);
	pthread_cleanup_pop(0);
	return NULL;
}

static void *canceller(void *arg)
{
	unsigned seed = 12345;

	(void)arg;
	while (!stop) {
		pthread_t t;
		if (pthread_create(&t, NULL, victim, (void *)(long)(cancels % 3)))
			continue;
		usleep(rand_r(&seed) % 3000);
		pthread_cancel(t);
		pthread_join(t, NULL);
		cancels++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 10, t0;
	pthread_t srv_t, ch[CHURNERS], fk, cn;
	socklen_t len = sizeof(srv);
	unsigned long total = 0;

	self = argv[0];
	if (argc > 1 && !strcmp(argv[1], "child")) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s >= 0)
			close(s);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	srv.sin_family = AF_INET;
	srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&srv, sizeof(srv)) || listen(lfd, 128) ||
	    getsockname(lfd, (struct sockaddr *)&srv, &len))
		return 3;
	pthread_create(&srv_t, NULL, server, NULL);
	for (long i = 0; i < CHURNERS; i++)
		pthread_create(&ch[i], NULL, churn, (void *)i);
	pthread_create(&fk, NULL, forker, NULL);
	pthread_create(&cn, NULL, canceller, NULL);
	printf("ready\n");
	fflush(stdout);
	t0 = now();
	while (now() - t0 < secs)
		usleep(20000);
	stop = 1;
	for (int i = 0; i < CHURNERS; i++) {
		pthread_join(ch[i], NULL);
		total += made[i];
	}
	pthread_join(fk, NULL);
	pthread_join(cn, NULL);
	/* The server may sit in accept(): one more connection wakes it. */
	{
		int s = socket(AF_INET, SOCK_STREAM, 0);
		connect(s, (struct sockaddr *)&srv, sizeof(srv));
		close(s);
	}
	pthread_join(srv_t, NULL);
	printf("done: %lu rounds, %lu forks (%lu exec), %lu cancels; children abnormal %lu, hung "
	       "%lu\n%s",
	       total, forks, execs, cancels, abnormal, hung, abnormal_what);
	return 0;
}
