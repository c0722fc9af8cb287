/* A small buffered writer straight to a descriptor (never through the
 * program's stdio), with JSON string escaping. */
#ifndef PG_OUT_H
#define PG_OUT_H

#include <stddef.h>

struct pg_out {
	int fd;
	int error; /* first write error, -errno */
	size_t len, cap;
	char *buf; /* own, or the caller's (pg_out_init_buf) */
	char own[16384];
};

void pg_out_init(struct pg_out *o, int fd);
/* Into buf (size bytes, no descriptor): what does not fit is cut;
 * pg_out_end_buf ends the string. */
void pg_out_init_buf(struct pg_out *o, char *buf, size_t size);
void pg_out_end_buf(struct pg_out *o);
void pg_out_write(struct pg_out *o, const char *s, size_t n);
void pg_out_puts(struct pg_out *o, const char *s);
/* Decimal numbers, without printf (a report writes several per socket). */
void pg_out_ulong(struct pg_out *o, unsigned long v);
void pg_out_long(struct pg_out *o, long v);
void pg_out_printf(struct pg_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal, quotes included; NULL writes null. */
void pg_out_json_str(struct pg_out *o, const char *s);
int pg_out_flush(struct pg_out *o);

/* One warning line "portguard: ..." on stderr, errno preserved; dropped when
 * fd 2 is no longer the stream it was when pg_warn_pin_stderr() ran (a
 * daemon that closed it and got a socket there). */
void pg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pg_warn_pin_stderr(void);

#endif
