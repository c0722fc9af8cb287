/* Test program for tests/test_core.c: what the rebuilt core must survive,
 * run under the library.
 *
 *   prog_core alarm TICKS     a 1 kHz SIGALRM handler makes and closes 40
 *                             sockets a tick while main loops malloc/free;
 *                             prints "made N"
 *   prog_core closefrom       loops closefrom(3) and new sockets until a line
 *                             comes on stdin; prints "ready", then what it
 *                             found: foreign bytes, sockets closed under it,
 *                             closed listeners that still accepted
 *   prog_core thread_exit     main leaks a socket and calls pthread_exit;
 *                             its last thread leaks another and returns
 *   prog_core nomem N         leaks N sockets, then takes all the memory it
 *                             may have (RLIMIT_AS) and exits 0
 *   prog_core churn THREADS   threads make, dup, dup2 and close sockets and
 *                             fork until a line comes on stdin; prints
 *                             "ready", at the end "churned N forks F"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A line (or the end) on stdin: the test says stop. */
static int told_to_stop(void)
{
	struct pollfd p = { 0, POLLIN, 0 };

	return poll(&p, 1, 0) == 1;
}

/* ---- alarm ---- */

static volatile sig_atomic_t ticks, made, failed;

static void on_alarm(int sig)
{
	int fds[40], err = errno;

	(void)sig;
	for (int i = 0; i < 40; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		if (fds[i] < 0)
			failed++;
		else
			made++;
	}
	for (int i = 0; i < 40; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	ticks++;
	errno = err;
}

static int run_alarm(int want)
{
	struct sigaction sa;
	struct itimerval it = { { 0, 1000 }, { 0, 1000 } }, off = { { 0, 0 }, { 0, 0 } };
	void *keep[64] = { 0 };
	unsigned seed = 1;
	double t0 = now();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	/* Bounded: 60 s at most, whatever the machine. */
	while (ticks < want && now() - t0 < 60) {
		int i = (int)(rand_r(&seed) % 64);
		free(keep[i]);
		keep[i] = malloc(16 + rand_r(&seed) % 65536);
		if (keep[i])
			memset(keep[i], i, 16);
	}
	setitimer(ITIMER_REAL, &off, NULL);
	for (int i = 0; i < 64; i++)
		free(keep[i]);
	printf("ticks %d made %d failed %d in %.2f s\n", (int)ticks, (int)made, (int)failed,
	       now() - t0);
	return ticks >= want && failed == 0 ? 0 : 1;
}

/* ---- closefrom ---- */

static int listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("listener");
		exit(90);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	if (fd < 0)
		return -2;
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	return rc;
}

static int run_closefrom(void)
{
	long rounds = 0, foreign = 0, closed = 0, accepted = 0;
	double t0 = now();

	printf("ready\n");
	fflush(stdout);
	/* Until told, or 120 s. */
	while (!told_to_stop() && now() - t0 < 120) {
		int sv[2], port, l;
		char msg[32], got[256];
		ssize_t n;

		closefrom(3);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
			perror("socketpair");
			return 90;
		}
		l = listener(&port);
		snprintf(msg, sizeof(msg), "round %ld", rounds);
		if (write(sv[0], msg, strlen(msg)) != (ssize_t)strlen(msg))
			closed++;
		/* Exactly our bytes, nothing after them. */
		n = recv(sv[1], got, sizeof(got), 0);
		if (n != (ssize_t)strlen(msg) || memcmp(got, msg, (size_t)n) != 0)
			foreign++;
		sched_yield();
		if (recv(sv[1], got, sizeof(got), MSG_DONTWAIT) != -1 || errno != EAGAIN)
			foreign++;
		for (int i = 0; i < 2; i++)
			if (fcntl(sv[i], F_GETFD) < 0)
				closed++;
		if (fcntl(l, F_GETFD) < 0)
			closed++;
		/* A listener closed is closed: nothing may still accept on its
		 * port (a copy of our table would keep it alive). */
		close(l);
		if (connect_to(port) == 0)
			accepted++;
		rounds++;
	}
	printf("rounds %ld foreign %ld closed %ld accepted %ld\n", rounds, foreign, closed,
	       accepted);
	return 0;
}

/* ---- thread_exit ---- */

static void *last_thread(void *arg)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	(void)arg;
	/* main has gone by now, or soon: this thread is the last. */
	nanosleep(&ts, NULL);
	if (socket(AF_INET, SOCK_STREAM, 0) < 0)
		perror("socket");
	return NULL;
}

static int run_thread_exit(void)
{
	pthread_t t;

	if (socket(AF_INET, SOCK_STREAM, 0) < 0)
		perror("socket");
	pthread_create(&t, NULL, last_thread, NULL);
	printf("main leaves\n");
	fflush(stdout);
	pthread_exit(NULL);
}

/* ---- nomem ---- */

static int run_nomem(int n)
{
	struct rlimit rl;
	FILE *f;
	unsigned long vsize = 0;
	long got = 0;

	for (int i = 0; i < n; i++)
		if (socket(AF_INET, SOCK_STREAM, 0) < 0)
			perror("socket");
	f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%lu", &vsize) != 1)
		return 90;
	fclose(f);
	/* A little more than now, then all of it taken. */
	rl.rlim_cur = rl.rlim_max = vsize * (unsigned long)sysconf(_SC_PAGESIZE) + (4u << 20);
	if (setrlimit(RLIMIT_AS, &rl) < 0) {
		perror("setrlimit");
		return 90;
	}
	for (int i = 0; i < 1 << 20; i++) {
		void *p = malloc(4096);
		if (!p)
			break;
		got++;
	}
	for (int i = 0; i < 1 << 16; i++) {
		if (mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
		    MAP_FAILED)
			break;
		got++;
	}
	printf("took %ld pages, then none left\n", got);
	fflush(stdout);
	return 0;
}

/* ---- churn ---- */

static int stop_churn;
static long churned, forks;

static void *churner(void *arg)
{
	long mine = 0, my_forks = 0;

	(void)arg;
	for (long i = 0; !__atomic_load_n(&stop_churn, __ATOMIC_ACQUIRE) && i < 50000000; i++) {
		int fd = socket(AF_INET, i % 2 ? SOCK_STREAM : SOCK_DGRAM, 0), d, d2;
		if (fd < 0)
			continue;
		d = dup(fd);
		d2 = d >= 0 ? fcntl(d, F_DUPFD_CLOEXEC, 0) : -1;
		if (d2 >= 0)
			dup2(fd, d2); /* closes d2's first socket... the same one */
		if (i % 500 == 0) {
			pid_t pid = fork();
			if (pid == 0) {
				close(fd);
				_exit(0);
			}
			if (pid > 0) {
				waitpid(pid, NULL, 0);
				my_forks++;
			}
		}
		close(fd);
		if (d >= 0)
			close(d);
		if (d2 >= 0)
			close(d2);
		mine++;
	}
	__atomic_add_fetch(&churned, mine, __ATOMIC_RELAXED);
	__atomic_add_fetch(&forks, my_forks, __ATOMIC_RELAXED);
	return NULL;
}

static int run_churn(int threads)
{
	pthread_t t[64];
	double t0 = now();

	if (threads > 64)
		threads = 64;
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, churner, NULL);
	printf("ready\n");
	fflush(stdout);
	while (!told_to_stop() && now() - t0 < 120)
		poll(NULL, 0, 10);
	__atomic_store_n(&stop_churn, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("churned %ld forks %ld\n", churned, forks);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "alarm"))
		return run_alarm(atoi(argv[2]));
	if (argc >= 2 && !strcmp(argv[1], "closefrom"))
		return run_closefrom();
	if (argc >= 2 && !strcmp(argv[1], "thread_exit"))
		return run_thread_exit();
	if (argc >= 3 && !strcmp(argv[1], "nomem"))
		return run_nomem(atoi(argv[2]));
	if (argc >= 3 && !strcmp(argv[1], "churn"))
		return run_churn(atoi(argv[2]));
	fprintf(stderr, "usage: prog_core alarm TICKS | closefrom | thread_exit | nomem N | "
			"churn THREADS\n");
	return 2;
}
