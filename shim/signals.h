/* The report signal: the library's handler while the program has none of its
 * own, and the thread that writes the report the handler asks for. */
#ifndef PG_SIGNALS_H
#define PG_SIGNALS_H

#include <signal.h>

#include "shim/real.h"

/* Installs the library's handler for sig (0: none) if the program's action
 * is the default. on_wake runs on the library's own thread each time it is
 * woken: report is 1 when the signal asked for a report (several signals
 * may be answered by one), 0 for a pg_signals_wake(). */
void pg_signals_init(int sig, void (*on_wake)(int report));

/* Wakes the library's thread without asking for a report (events to
 * write). Returns 0, or -ESRCH when there is no thread (the caller does the
 * work itself). */
int pg_signals_wake(void);

/* Starts the report thread if it is not running (the first socket). */
void pg_signals_start_thread(void);

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

void pg_signals_fork_child(void);

#endif
