/* Test program: makes N sockets (leaked on purpose), optionally installs its
 * own handler for a signal, prints "ready", then sleeps until SIGTERM (or S
 * seconds), and exits normally, printing how often its handler ran.
 *   prog_sleeper [-n SOCKETS] [-H SIGNUM] [-s SECONDS] [-a sigaction|signal|sysv|sigset|bsd]
 *                [-x STATUS] [-e]    (-e: leave through exit() rather than return) */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t handled, done;
static void on_sig(int sig)
{
	(void)sig;
	handled++;
}
static void on_term(int sig)
{
	(void)sig;
	done = 1;
}

sighandler_t bsd_signal(int sig, sighandler_t h);

int main(int argc, char **argv)
{
	int n = 1, hsig = 0, secs = 30, status = 0, use_exit = 0, opt;
	const char *api = "sigaction";

	while ((opt = getopt(argc, argv, "n:H:s:a:x:e")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'H': hsig = atoi(optarg); break;
		case 's': secs = atoi(optarg); break;
		case 'a': api = optarg; break;
		case 'x': status = atoi(optarg); break;
		case 'e': use_exit = 1; break;
		default: return 2;
		}
	}
	for (int i = 0; i < n; i++)
		if (socket(AF_INET, SOCK_STREAM, 0) < 0)
			return 3;
	if (hsig) {
		if (!strcmp(api, "sigaction")) {
			struct sigaction sa, old;
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = on_sig;
			if (sigaction(hsig, &sa, &old) < 0)
				return 4;
			/* The program must see its own previous action (the default),
			 * never the library's handler. */
			printf("previous action was %s\n", old.sa_handler == SIG_DFL ? "SIG_DFL"
							   : old.sa_handler == SIG_IGN
							       ? "SIG_IGN"
							       : "a handler");
		} else {
			sighandler_t prev = !strcmp(api, "signal") ? signal(hsig, on_sig)
					    : !strcmp(api, "sysv") ? sysv_signal(hsig, on_sig)
					    : !strcmp(api, "bsd")  ? bsd_signal(hsig, on_sig)
								   : sigset(hsig, on_sig);
			printf("previous action was %s\n", prev == SIG_DFL   ? "SIG_DFL"
							   : prev == SIG_IGN ? "SIG_IGN"
							   : prev == SIG_ERR ? "SIG_ERR"
									     : "a handler");
		}
	}
	signal(SIGTERM, on_term);
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < secs * 10 && !done; i++)
		usleep(100000);
	printf("handler ran %d time(s)\n", (int)handled);
	if (use_exit)
		exit(status);
	return status;
}
