/* The report's output: stderr, stdout or log_path, opened per report and
 * closed after it, in the library's thread (shim/progfd.h: a stream of the
 * program's is reached through a copy of its descriptor). */
#ifndef PG_OUTPUT_H
#define PG_OUTPUT_H

#include <limits.h>
#include <sys/types.h>

#include "shim/config.h"

struct pg_output {
	/* Identity of fds 1 and 2 when the library loaded: a report never goes
	 * into a descriptor that has since become something else. */
	int std_ok[3];
	dev_t std_dev[3];
	ino_t std_ino[3];
	int pid; /* the process the chosen file belongs to */
	char chosen[PATH_MAX + 32]; /* report file of this process, once created */
	char fallback[PATH_MAX + 32]; /* $TMPDIR/portguard.PID, once used */
	char tmpdir[PATH_MAX]; /* $TMPDIR at load, or /tmp */
	int warned; /* one warning per process for an unusable path */
	int file; /* the last pg_output_open gave a file of ours */
};

void pg_output_remember_std(struct pg_output *d);

/* Opens the output for one report. Returns a descriptor, or -1 when even
 * the fallback file cannot be had. Give it back with pg_output_close. A
 * stream that is no longer what it was at start, or a log_path that cannot
 * be written, sends the report to $TMPDIR/portguard.PID, and one line
 * (once a process) names it on stderr, if stderr is still the program's. */
int pg_output_open(struct pg_output *d, const struct pg_config *c, int pid);
void pg_output_close(struct pg_output *d, int fd);

/* The file name for pid from log_path: "%p" replaced, else ".PID" added. */
int pg_output_path(const char *log_path, int pid, char *out, size_t size);

#endif
