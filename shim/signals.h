/* The report signal: the library's handler while the program has none of its
 * own, and the thread that writes the report the handler asks for. */
#ifndef PG_SIGNALS_H
#define PG_SIGNALS_H

#include <signal.h>

#include "shim/real.h"

/* Installs the library's handler for sig (0: none) if the program's action
 * is the default. */
void pg_signals_init(int sig);

/* The request channel of the library's thread. post is async-signal-safe;
 * wait returns the requests made since the last wait (0 after timeout_ms
 * without any), several posts of one kind answered by one. */
enum {
	PG_REQ_REPORT = 1u << 0, /* the report signal */
	PG_REQ_EVENTS = 1u << 1, /* policy events to write */
	PG_REQ_EXIT = 1u << 2, /* the exit report */
	PG_REQ_RESERVE = 1u << 3, /* the registry grew: grow the report's memory */
};
void pg_signals_post(unsigned req);
unsigned pg_signals_wait(int timeout_ms);

/* The program's own calls for the report signal (SPEC section 4). While the
 * program has an action of its own (a handler, SIG_IGN), the kernel holds it
 * exactly as the program set it; while its action is SIG_DFL, the kernel
 * holds the library's handler and the program is shown the default action
 * it would read without the library. Each makes the real call (real) and
 * returns its result (sigaction: 0, or -1 with errno; the others: 0 with
 * *prev set), or 1 when sig is not the report signal (the caller makes the
 * call itself). vforked: a vfork child, which shares our memory
 * but has signal actions of its own: its calls change nothing of ours. */
int pg_signals_sigaction(int sig, const struct sigaction *act, struct sigaction *old, int vforked);
int pg_signals_signal(int sig, pg_sighandler_t h, pg_sighandler_t (*real)(int, pg_sighandler_t),
		      pg_sighandler_t *prev, int vforked);
int pg_signals_sigset(int sig, pg_sighandler_t h, pg_sighandler_t *prev, int vforked);

/* fork child: no request of the parent's is pending. */
void pg_signals_fork_child(void);

#endif
