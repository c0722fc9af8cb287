/* A stand-in for a process that has loaded libportguard, for the tests of
 * `portguard dump` that must not depend on the library itself:
 *
 *   prog_tool_sigwait FILE MODE
 *
 * maps FILE (name it libportguard.so: /proc/PID/maps then shows it) and,
 * by MODE: "catch:N" installs a handler for signal N; "block:N" blocks N in
 * every thread and waits for it with sigwait in a thread of its own (as a
 * library could); "none" does neither. Prints "ready PID", then "got N" when signal N arrives, and exits
 * 0; gives up after 30 s. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_signal(int sig)
{
	got = sig;
}

static void *waiter(void *arg)
{
	int sig;

	sigwait(arg, &sig);
	printf("got %d\n", sig);
	fflush(stdout);
	_exit(0);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t set;
	int fd, sig = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: prog_tool_sigwait FILE catch:N|block:N|none\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || mmap(NULL, 1, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) {
		perror(argv[1]);
		return 2;
	}
	close(fd);
	alarm(30);
	if (strncmp(argv[2], "catch:", 6) == 0) {
		sig = atoi(argv[2] + 6);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(sig, &sa, NULL);
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		while (!got)
			pause();
	} else if (strncmp(argv[2], "block:", 6) == 0) {
		sig = atoi(argv[2] + 6);
		sigemptyset(&set);
		sigaddset(&set, sig);
		/* Blocked before the thread starts: it inherits the mask. While
		 * it waits the kernel shows the signal unblocked for it, and
		 * blocked for the main thread, which /proc/PID/status shows. */
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		pthread_t t;
		pthread_create(&t, NULL, waiter, &set);
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		for (;;)
			pause();
	} else {
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		for (;;)
			pause();
	}
	printf("got %d\n", (int)got);
	return 0;
}
