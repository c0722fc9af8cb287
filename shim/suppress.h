/* Leak suppressions: the text of a `suppressions=FILE` file, `leak:PATTERN`
 * lines as LeakSanitizer reads them, and the matcher a report asks per call
 * site. Pure: no I/O (the caller reads the file), no globals, no errno. */
#ifndef PG_SUPPRESS_H
#define PG_SUPPRESS_H

#include <stddef.h>
#include <stdint.h>

struct pg_suppress_rule {
	char *pattern; /* as written after "leak:", blanks around it removed */
	unsigned line; /* line in the file */
	uint64_t hits; /* sockets suppressed by this rule (the weights given) */
};

struct pg_suppress {
	struct pg_suppress_rule *rules; /* in file order: the first match wins */
	size_t n;
};

/* One frame of a call site, innermost first, inlined frames as entries of
 * their own. NULL (and a module "?") is unknown and matches nothing. file is
 * the source file: LeakSanitizer matches it too; pass NULL to match only
 * function and module. */
struct pg_suppress_frame {
	const char *function;
	const char *module; /* path; matched whole and by its basename */
	const char *file;
};

/* Parses len bytes of text (NULs are errors, not ends). Lines: blank, "#..."
 * comments, "leak:PATTERN"; blanks at either end of a line are ignored.
 * Returns 0 and sets *out (a file without rules gives n == 0), or -EINVAL
 * with "FILE:LINE: what is wrong" in err (file_name NULL: "suppressions"),
 * or -ENOMEM ("FILE: out of memory"); on error *out is NULL. err may be
 * NULL. */
int pg_suppress_parse(const char *text, size_t len, const char *file_name, struct pg_suppress **out,
		      char *err, size_t errlen);

/* NULL is fine. */
void pg_suppress_free(struct pg_suppress *s);

/* The index of the first rule matching a frame, frames tried innermost first
 * (per frame: its module against every rule, then its function and file), or
 * -1. The matching rule's hits grow by weight (the sockets of the site; 0 to
 * ask without counting). */
int pg_suppress_match(struct pg_suppress *s, const struct pg_suppress_frame *frames, size_t n,
		      uint64_t weight);

/* LeakSanitizer's pattern language: a substring match; "*" matches any run of
 * characters, "^" at the start anchors there, "$" at the end anchors there.
 * Every other character is literal. NULL or "" never matches. Returns 1/0. */
int pg_suppress_pattern_match(const char *pattern, const char *str);

void pg_suppress_reset_hits(struct pg_suppress *s);

#endif
