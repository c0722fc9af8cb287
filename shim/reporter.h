/* Report orchestration: the library's thread, which writes every report
 * and event line from a descriptor table of its own (shim/progfd.h), what
 * asks it to (the report signal, events, the exit), where reports go, and
 * the exit status rule (exitcode). */
#ifndef PG_REPORTER_H
#define PG_REPORTER_H

/* At load: the output's streams, suppressions, the report signal. */
void pg_reporter_init(void);

/* A socket was recorded: the thread is started if it is not running and
 * this is not a signal handler (starting a thread is not
 * async-signal-safe: then the next socket, or the exit, starts it). */
/* 0 until the thread runs, or while nothing would ask it anything before
 * the exit (report_signal=0, no policy: started at the exit, if at all). */
extern int pg_reporter_settled;
void pg_reporter_start_if_safe(void);
static inline void pg_reporter_socket_seen(void)
{
	if (__builtin_expect(!__atomic_load_n(&pg_reporter_settled, __ATOMIC_ACQUIRE), 0))
		pg_reporter_start_if_safe();
}
/* Policy events are queued. */
void pg_reporter_wake_events(void);
/* The exit report (from the library's destructor), and exitcode. */
void pg_reporter_exit(void);

/* Whether the thread runs (tests). */
int pg_reporter_running(void);

/* fork child: no thread, the parent's requests forgotten. */
void pg_reporter_fork_child(void);

#endif
