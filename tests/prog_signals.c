/* Test program: what a program sees of its own SIGUSR1 actions. Its output
 * must be the same with and without the library.
 *   prog_signals readback   every API's read-back of SIGUSR1, printed
 *   prog_signals eintr      a handler without SA_RESTART; prints "ready",
 *                           then blocks in read() on stdin until a signal
 *   prog_signals vfork      a vfork child resets SIGUSR1; the parent's
 *                           handler must still run */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

sighandler_t bsd_signal(int sig, sighandler_t h);

static volatile sig_atomic_t handled;
static void on_sig(int sig)
{
	(void)sig;
	handled++;
}
static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	handled++;
}

static void *libc_restorer;

static const char *name_of(sighandler_t h)
{
	if (h == SIG_DFL)
		return "SIG_DFL";
	if (h == SIG_IGN)
		return "SIG_IGN";
	if (h == SIG_ERR)
		return "SIG_ERR";
	if (h == SIG_HOLD)
		return "SIG_HOLD";
	if (h == on_sig)
		return "on_sig";
	if (h == (sighandler_t)(void (*)(void))on_info)
		return "on_info";
	return "another handler";
}

/* The struct as the program gets it (the kernel's 64 signals of the mask:
 * glibc leaves stack garbage in the rest). */
static void show(const char *what)
{
	struct sigaction sa;
	const unsigned long *m = (const unsigned long *)&sa.sa_mask;

	memset(&sa, 0x5a, sizeof(sa));
	if (sigaction(SIGUSR1, NULL, &sa) < 0) {
		printf("%s: sigaction failed: %s\n", what, strerror(errno));
		return;
	}
	printf("%s: handler %s flags %#x mask %#lx restorer %s\n", what, name_of(sa.sa_handler),
	       (unsigned)sa.sa_flags, *m,
	       sa.sa_restorer == NULL            ? "NULL"
	       : sa.sa_restorer == libc_restorer ? "glibc's"
						 : "another");
}

static int readback(void)
{
	struct sigaction sa, old;
	sigset_t set;

	/* glibc's restorer, as it fills it in for any sigaction. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGUSR2, NULL, &old);
	libc_restorer = (void *)old.sa_restorer;

	show("at start");
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_info;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigaddset(&sa.sa_mask, SIGTERM);
	memset(&old, 0x5a, sizeof(old));
	sigaction(SIGUSR1, &sa, &old);
	printf("sigaction: previous %s flags %#x\n", name_of(old.sa_handler),
	       (unsigned)old.sa_flags);
	show("after sigaction(SA_SIGINFO|SA_ONSTACK|SA_NODEFER)");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sa.sa_flags = SA_RESTART | SA_RESETHAND;
	memset(&old, 0x5a, sizeof(old));
	sigaction(SIGUSR1, &sa, &old);
	printf("sigaction(SIG_DFL): previous %s flags %#x\n", name_of(old.sa_handler),
	       (unsigned)old.sa_flags);
	show("after sigaction(SIG_DFL, SA_RESTART|SA_RESETHAND)");
	printf("signal: previous %s\n", name_of(signal(SIGUSR1, on_sig)));
	show("after signal");
	printf("signal(SIG_DFL): previous %s\n", name_of(signal(SIGUSR1, SIG_DFL)));
	show("after signal(SIG_DFL)");
	printf("sysv_signal: previous %s\n", name_of(sysv_signal(SIGUSR1, on_sig)));
	show("after sysv_signal");
	printf("bsd_signal: previous %s\n", name_of(bsd_signal(SIGUSR1, SIG_DFL)));
	show("after bsd_signal(SIG_DFL)");
	siginterrupt(SIGUSR1, 1);
	printf("signal after siginterrupt: previous %s\n", name_of(signal(SIGUSR1, on_sig)));
	show("after siginterrupt + signal");
	printf("sigset: previous %s\n", name_of(sigset(SIGUSR1, SIG_DFL)));
	show("after sigset(SIG_DFL)");
	printf("sigset(SIG_HOLD): previous %s\n", name_of(sigset(SIGUSR1, SIG_HOLD)));
	sigprocmask(SIG_BLOCK, NULL, &set);
	printf("held: %d\n", sigismember(&set, SIGUSR1));
	printf("sigset(SIG_HOLD) again: previous %s\n", name_of(sigset(SIGUSR1, SIG_HOLD)));
	printf("sigset(on_sig): previous %s\n", name_of(sigset(SIGUSR1, on_sig)));
	sigprocmask(SIG_BLOCK, NULL, &set);
	printf("held: %d\n", sigismember(&set, SIGUSR1));
	show("after sigset(on_sig)");
	printf("signal(SIG_IGN): previous %s\n", name_of(signal(SIGUSR1, SIG_IGN)));
	show("after signal(SIG_IGN)");
	errno = 0;
	printf("sigaction(65): %d %s\n", sigaction(65, &sa, NULL), strerror(errno));
	return 0;
}

static int eintr(void)
{
	struct sigaction sa;
	char c;
	ssize_t n;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig; /* no SA_RESTART: read() must fail with EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	if (socket(AF_INET, SOCK_STREAM, 0) < 0) /* a leak, so there is a report */
		return 3;
	printf("ready\n");
	fflush(stdout);
	n = read(0, &c, 1);
	printf("read: %zd %s, handler ran %d time(s)\n", n, n < 0 ? strerror(errno) : "",
	       (int)handled);
	return 0;
}

static int vfork_child(void)
{
	pid_t pid;
	int st;

	signal(SIGUSR1, on_sig);
	pid = vfork();
	if (pid == 0) {
		/* As a child about to exec does: its own actions only. */
		signal(SIGUSR1, SIG_DFL);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	raise(SIGUSR1);
	printf("vfork: handler ran %d time(s)\n", (int)handled);
	return 0;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";

	if (!strcmp(what, "readback"))
		return readback();
	if (!strcmp(what, "eintr"))
		return eintr();
	if (!strcmp(what, "vfork"))
		return vfork_child();
	fprintf(stderr, "usage: prog_signals readback|eintr|vfork\n");
	return 2;
}
