/* The report signal: our handler in front of the program's, and the thread
 * that writes the report the handler asks for. */
#ifndef PG_SIGNALS_H
#define PG_SIGNALS_H

#include <signal.h>

#include "shim/real.h"

/* Installs the handler for sig (0: none) unless the program inherited it
 * ignored. on_wake runs on the library's own thread each time it is woken:
 * report is 1 when the signal asked for a report (several signals may be
 * answered by one), 0 for a pg_signals_wake(). */
void pg_signals_init(int sig, void (*on_wake)(int report));

/* Wakes the library's thread without asking for a report (events to
 * write). Returns 0, or -ESRCH when there is no thread (the caller does the
 * work itself). */
int pg_signals_wake(void);

/* Starts the report thread if it is not running (the first socket). */
void pg_signals_start_thread(void);

/* The program's view of the report signal. These return -1 when sig is not
 * ours (the caller makes the real call), -2 when the real change failed
 * (errno set), 0 with the emulated result. */
int pg_signals_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
enum pg_sigflavor { PG_SIG_BSD, PG_SIG_SYSV, PG_SIG_SET };
int pg_signals_signal(int sig, pg_sighandler_t h, enum pg_sigflavor flavor, pg_sighandler_t *prev);

void pg_signals_fork_child(void);

#endif
