/* PORTGUARD_OPTIONS: key=value pairs separated by ':' or white space. */
#ifndef PG_CONFIG_H
#define PG_CONFIG_H

#include <limits.h>

enum pg_format { PG_FORMAT_TEXT, PG_FORMAT_JSON };
enum pg_dest_kind { PG_DEST_STDERR, PG_DEST_STDOUT, PG_DEST_PATH };

struct pg_config {
	enum pg_dest_kind dest;
	char log_path[PATH_MAX]; /* PG_DEST_PATH only, as given */
	enum pg_format format;
	int report_at_exit;
	int report_signal; /* 0: none */
	int stack_depth;
	int exitcode;
	int ignore_listening;
	long min_age_ms;
	char suppressions[PATH_MAX]; /* "" for none */
	int symbolize;
	int native_frames; /* keep the interpreter's C frames between Python frames */
	char policy[PATH_MAX]; /* "" for none */
	int verbosity;
	int strict;
	/* Shorthands for policy directives (SPEC section 5). */
	int reuseaddr, reuseport, bind_no_port;
};

void pg_config_defaults(struct pg_config *c);

/* Parses text into c (over its current values). Each unknown key or bad value
 * is passed to warn() as one line without the "portguard: " prefix, and that
 * key keeps its value. secure: a secure-execution process, where path options
 * are ignored (with a warning). Returns the number of warnings. */
int pg_config_parse(struct pg_config *c, const char *text, int secure,
		    void (*warn)(const char *line, void *arg), void *arg);

#endif
