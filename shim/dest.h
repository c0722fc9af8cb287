/* Where reports go: stderr, stdout or log_path, opened per report and closed
 * after it (the library keeps no descriptor between calls). */
#ifndef PG_DEST_H
#define PG_DEST_H

#include <limits.h>
#include <sys/types.h>

#include "shim/config.h"

struct pg_dest {
	/* Identity of fds 1 and 2 when the library loaded: a report never goes
	 * into a descriptor that has since become something else. */
	int std_ok[3];
	dev_t std_dev[3];
	ino_t std_ino[3];
	int pid; /* the process the chosen file belongs to */
	char chosen[PATH_MAX + 32]; /* report file of this process, once created */
	int warned; /* one warning per process for an unusable path */
};

void pg_dest_remember_std(struct pg_dest *d);

/* Opens the destination for one report. Returns a descriptor, or -1 when the
 * report must be dropped (the stream is no longer what it was). *close_after
 * tells whether the caller closes it (with close_fn). A path that cannot be
 * used is warned about once and the report goes to stderr. */
int pg_dest_open(struct pg_dest *d, const struct pg_config *c, int pid, int *close_after);

/* The file name for pid from log_path: "%p" replaced, else ".PID" added. */
int pg_dest_path(const char *log_path, int pid, char *out, size_t size);

#endif
