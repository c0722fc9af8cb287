/* Test program: legal things a program may do that a preload library must
 * survive (SPEC section 7). Each scenario prints what it saw; the tests
 * compare that, the status and the report with a run without the library.
 *   prog_robust SCENARIO [ARG] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A listener on 127.0.0.1 (port chosen by the kernel); backlog as given. */
static int listener(int backlog, struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) || listen(fd, backlog) ||
	    getsockname(fd, (struct sockaddr *)a, &len)) {
		perror("listener");
		exit(1);
	}
	return fd;
}

/* The system call thread tid is blocked in (from /proc), or -1. */
static long blocked_in(pid_t tid)
{
	char path[64], buf[256];
	long nr = -1;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		nr = strtol(buf, NULL, 10);
	}
	return nr;
}

/* Waits (bounded: 20 s) until thread tid sleeps in system call nr. */
static int wait_blocked(pid_t tid, long nr)
{
	double t0 = now();

	while (now() - t0 < 20) {
		if (blocked_in(tid) == nr)
			return 0;
		usleep(1000);
	}
	fprintf(stderr, "thread %d never blocked in syscall %ld\n", (int)tid, nr);
	return -1;
}

static struct sockaddr_in srv;
static volatile pid_t waiter_tid;

static void *connect_waiter(void *arg)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)arg;
	waiter_tid = (pid_t)syscall(SYS_gettid);
	connect(fd, (struct sockaddr *)&srv, sizeof(srv)); /* cancelled in here */
	printf("connect returned: not cancelled\n");
	return NULL;
}

static int do_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int rc = connect(fd, (struct sockaddr *)&srv, sizeof(srv));

	printf("connect: %s\n", rc == 0 ? "ok" : strerror(errno));
	return fd;
}

/* pool 127.0.0.1:* max=1 mode=block: the second connect waits for a slot
 * and is cancelled there; the pool and every close must still work. */
static int pool_cancel(void)
{
	int l = listener(16, &srv), a, c;
	pthread_t t;

	(void)l;
	a = do_connect();
	pthread_create(&t, NULL, connect_waiter, NULL);
	while (!waiter_tid)
		usleep(1000);
	if (wait_blocked(waiter_tid, SYS_futex))
		return 1;
	pthread_cancel(t);
	pthread_join(t, NULL);
	printf("waiter cancelled\n");
	close(a);
	printf("closed the first connection\n");
	c = do_connect();
	close(c);
	return 0;
}

/* pool max=2 mode=fail on a listener whose queue is full: the second
 * connect blocks in the kernel (SYN dropped) and is cancelled there; its
 * slot must come back. */
static int connect_cancel(void)
{
	int l = listener(0, &srv), a, b, c;
	pthread_t t;

	(void)l;
	a = do_connect(); /* fills the accept queue */
	pthread_create(&t, NULL, connect_waiter, NULL);
	while (!waiter_tid)
		usleep(1000);
	if (wait_blocked(waiter_tid, SYS_connect))
		return 1;
	pthread_cancel(t);
	pthread_join(t, NULL);
	printf("waiter cancelled\n");
	/* Two slots: a's and one free again; the third connect would be
	 * refused by the pool if the cancelled one still held a slot. */
	b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	c = connect(b, (struct sockaddr *)&srv, sizeof(srv));
	printf("connect after cancel: %s\n",
	       c == 0 || errno == EINPROGRESS ? "allowed" : strerror(errno));
	close(b);
	close(a);
	return 0;
}

static void *close_cancelled(void *arg)
{
	int fd = *(int *)arg;

	/* A cancel request pending when close() is reached is acted upon
	 * before the descriptor goes (glibc checks on entry). */
	pthread_cancel(pthread_self());
	close(fd);
	printf("close returned: not cancelled\n");
	return NULL;
}

static int close_cancel(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t t;

	pthread_create(&t, NULL, close_cancelled, &fd);
	pthread_join(t, NULL);
	printf("fd %s\n", fcntl(fd, F_GETFD) >= 0 ? "still open" : "closed");
	return 0;
}

static volatile int forks_done;

static void *forker(void *arg)
{
	int n = *(int *)arg;

	for (int i = 0; i < n; i++) {
		pid_t pid;
		int st;

		/* The program holds stdout's lock across fork, as a program
		 * that forks from inside a locked print would. */
		flockfile(stdout);
		pid = fork();
		if (pid == 0)
			_exit(0);
		funlockfile(stdout);
		waitpid(pid, &st, 0);
	}
	forks_done = 1;
	return NULL;
}

/* Forks while holding flockfile(stdout), while report signals ask for
 * reports to stdout. */
static int fork_flockfile(int n)
{
	pthread_t t;
	int sent = 0;

	if (socket(AF_INET, SOCK_STREAM, 0) < 0) /* the report thread runs */
		return 3;
	pthread_create(&t, NULL, forker, &n);
	while (!forks_done && sent < 100000) {
		kill(getpid(), SIGUSR1);
		sent++;
		usleep(1000);
	}
	pthread_join(t, NULL);
	fprintf(stderr, "forked %d times, %d report signal(s)\n", n, sent);
	return 0;
}

static pthread_barrier_t exit_barrier;

static void *exiter(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&exit_barrier);
	exit(0);
}

/* Two threads call exit(0) at once, with a leak. */
static int exit_race(void)
{
	pthread_t a, b;

	if (socket(AF_INET, SOCK_STREAM, 0) < 0)
		return 3;
	printf("exiting\n");
	fflush(stdout);
	pthread_barrier_init(&exit_barrier, NULL, 3);
	pthread_create(&a, NULL, exiter, NULL);
	pthread_create(&b, NULL, exiter, NULL);
	pthread_barrier_wait(&exit_barrier);
	for (;;)
		pause();
}

/* A bad pointer: the kernel says EFAULT, and so must we. */
static int bad_address(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	int rc;

	errno = 0;
	rc = bind(s, (const struct sockaddr *)1, 16);
	printf("bind((void *)1): %d %s\n", rc, strerror(errno));
	errno = 0;
	rc = connect(s, (const struct sockaddr *)1, 16);
	printf("connect((void *)1): %d %s\n", rc, strerror(errno));
	errno = 0;
	rc = bind(s, (const struct sockaddr *)(uintptr_t)0xffffffffffffff00ull, 16);
	printf("bind(kernel address): %d %s\n", rc, strerror(errno));
	errno = 0;
	rc = connect(s, NULL, 16);
	printf("connect(NULL): %d %s\n", rc, strerror(errno));
	close(s);
	return 0;
}

/* A stack of our own, as a coroutine library makes one: mapped pages, and
 * unmapped memory right above them. The function that switches to it has
 * a large frame, so that an unwinder that believes its CFI reads far above
 * the stack's top. */
static int co_fd = -1;

__attribute__((noinline)) static void on_coroutine(void)
{
	co_fd = socket(AF_INET, SOCK_STREAM, 0);
	close(co_fd);
	co_fd = socket(AF_INET6, SOCK_STREAM, 0);
}

__attribute__((noinline, optimize("omit-frame-pointer"))) static void run_on(char *top)
{
	volatile char big[16384];

	big[0] = 1;
	(void)big;
	__asm__ volatile("mov %%rsp, %%rbx\n\t"
			 "mov %0, %%rsp\n\t"
			 "call *%1\n\t"
			 "mov %%rbx, %%rsp\n\t"
			 :
			 : "r"(top), "r"(on_coroutine)
			 : "rbx", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
			   "memory", "cc");
	big[1] = 2;
}

static int coroutine(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = 16 * page;
	char *m =
	    mmap(NULL, size + 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return 3;
	/* Nothing mapped for 8 pages above the stack: run_on's CFA lands
	 * there. */
	munmap(m + size, 8 * page);
	/* Return addresses of garbage on the stack below its top: a walk
	 * that trusts them must still stop inside the mapping. */
	for (size_t i = 0; i < size / sizeof(uintptr_t); i++)
		((uintptr_t *)m)[i] = (uintptr_t)run_on + 7;
	run_on(m + size - 64);
	printf("coroutine: socket on fd %s\n", co_fd >= 0 ? "made" : "not made");
	return 0;
}

/* One socket with three descriptors, carried across exec. */
static int inherit(const char *self)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	int d1 = dup(s), d2 = fcntl(s, F_DUPFD, 20);

	if (s < 0 || d1 < 0 || d2 < 0)
		return 3;
	execl(self, self, "inherited", (char *)NULL);
	return 4;
}

int main(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(s, "pool_cancel"))
		return pool_cancel();
	if (!strcmp(s, "connect_cancel"))
		return connect_cancel();
	if (!strcmp(s, "close_cancel"))
		return close_cancel();
	if (!strcmp(s, "fork_flockfile"))
		return fork_flockfile(argc > 2 ? atoi(argv[2]) : 300);
	if (!strcmp(s, "exit_race"))
		return exit_race();
	if (!strcmp(s, "bad_address"))
		return bad_address();
	if (!strcmp(s, "coroutine"))
		return coroutine();
	if (!strcmp(s, "inherit"))
		return inherit(argv[0]);
	if (!strcmp(s, "inherited")) {
		/* One of its own, closed: a process that only inherited has
		 * nothing of its own to say and writes no report. */
		int own = socket(AF_INET, SOCK_DGRAM, 0);
		if (own >= 0)
			close(own);
		printf("inherited\n");
		return 0;
	}
	if (!strcmp(s, "segv")) {
		if (socket(AF_INET, SOCK_STREAM, 0) < 0)
			return 3;
		raise(SIGSEGV);
		return 0;
	}
	fprintf(stderr, "unknown scenario '%s'\n", s);
	return 2;
}
