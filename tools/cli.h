/* What every subcommand of the portguard tool shares: messages, number
 * parsing, allocation that ends the tool (never the shim) on exhaustion. */
#ifndef PG_CLI_H
#define PG_CLI_H

#include <stddef.h>
#include <stdio.h>

/* Exit statuses: 2 is "bad usage" for every subcommand (SPEC section 6). */
#define PG_EXIT_USAGE 2

/* Set by main: "portguard" or "portguard run" etc., the prefix of messages. */
extern const char *pg_cli_prog;

/* "portguard run: MESSAGE\n" on stderr. */
void pg_cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the problem and the usage text on stderr; the caller exits 2. */
int pg_cli_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whole-string decimal integer in [min, max]; 0 or -EINVAL / -ERANGE. */
int pg_cli_parse_long(const char *s, long min, long max, long *out);
/* Whole-string finite decimal number in [min, max]; 0 or -EINVAL. */
int pg_cli_parse_double(const char *s, double min, double max, double *out);

/* Allocation for the tool: on exhaustion it says so and exits 3, since a
 * half-made answer would be a wrong one. */
void *pg_cli_alloc(size_t size);
void *pg_cli_calloc(size_t n, size_t size);
void *pg_cli_realloc(void *p, size_t size);
char *pg_cli_strdup(const char *s);
char *pg_cli_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a small /proc file whole into buf (NUL-terminated, trailing newline
 * kept). Returns the length or -errno. */
long pg_cli_read_small(const char *path, char *buf, size_t size);

#endif
