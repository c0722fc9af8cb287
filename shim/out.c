#include "shim/out.h"

#include "shim/common.h"
#include "shim/progfd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void pg_out_init(struct pg_out *o, int fd)
{
	o->fd = fd;
	o->error = 0;
	o->len = 0;
	o->buf = o->own;
	o->cap = sizeof(o->own);
}

void pg_out_init_buf(struct pg_out *o, char *buf, size_t size)
{
	o->fd = -1;
	o->error = 0;
	o->len = 0;
	o->buf = buf;
	o->cap = size;
}

void pg_out_end_buf(struct pg_out *o)
{
	if (o->cap)
		o->buf[o->len < o->cap ? o->len : o->cap - 1] = 0;
}

int pg_out_flush(struct pg_out *o)
{
	if (o->len && !o->error && o->fd >= 0)
		o->error = pg_write_all(o->fd, o->buf, o->len);
	o->len = 0;
	return o->error;
}

void pg_out_write(struct pg_out *o, const char *s, size_t n)
{
	while (n > 0) {
		/* A caller's buffer keeps room for the final NUL. */
		size_t room = o->cap - o->len - (o->fd < 0 && o->buf != o->own ? 1 : 0);
		if (o->len + 1 > o->cap || room == 0) {
			if (o->fd < 0)
				return; /* cut */
			pg_out_flush(o);
			continue;
		}
		size_t k = n < room ? n : room;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

void pg_out_puts(struct pg_out *o, const char *s)
{
	pg_out_write(o, s, strlen(s));
}

void pg_out_ulong(struct pg_out *o, unsigned long v)
{
	char tmp[24], *p = tmp + sizeof(tmp);

	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10));
	pg_out_write(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

void pg_out_long(struct pg_out *o, long v)
{
	if (v < 0) {
		pg_out_write(o, "-", 1);
		pg_out_ulong(o, 0UL - (unsigned long)v);
	} else {
		pg_out_ulong(o, (unsigned long)v);
	}
}

void pg_out_printf(struct pg_out *o, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	pg_out_write(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Length of the valid UTF-8 sequence at p, 0 if it is not one. */
static int utf8_len(const unsigned char *p)
{
	int n;

	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2;
	else if (*p >= 0xe0 && *p <= 0xef)
		n = 3;
	else if (*p >= 0xf0 && *p <= 0xf4)
		n = 4;
	else
		return 0;
	for (int i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void pg_out_json_str(struct pg_out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (!s) {
		pg_out_puts(o, "null");
		return;
	}
	pg_out_write(o, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
		switch (*p) {
		case '"': pg_out_write(o, "\\\"", 2); break;
		case '\\': pg_out_write(o, "\\\\", 2); break;
		case '\n': pg_out_write(o, "\\n", 2); break;
		case '\t': pg_out_write(o, "\\t", 2); break;
		case '\r': pg_out_write(o, "\\r", 2); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 15];
				pg_out_write(o, esc, 6);
			} else if (*p < 0x80) {
				pg_out_write(o, (const char *)p, 1);
			} else {
				/* JSON readers reject invalid UTF-8: copy a valid
				 * sequence, replace a broken byte with U+FFFD. */
				int n = utf8_len(p);
				if (n) {
					pg_out_write(o, (const char *)p, (size_t)n);
					p += n - 1;
				} else {
					pg_out_puts(o, "\\ufffd");
				}
			}
		}
	}
	pg_out_write(o, "\"", 1);
}

static int pinned;
static dev_t err_dev;
static ino_t err_ino;

void pg_warn_pin_stderr(void)
{
	struct stat st;

	pinned = fstat(2, &st) == 0 ? 1 : -1;
	if (pinned > 0) {
		err_dev = st.st_dev;
		err_ino = st.st_ino;
	}
}

static int stderr_is_ours(int fd)
{
	struct stat st;

	if (!pinned)
		return 1; /* before init: it is what the program started with */
	return pinned > 0 && fstat(fd, &st) == 0 && st.st_dev == err_dev && st.st_ino == err_ino;
}

void pg_warn(const char *fmt, ...)
{
	int saved = errno;
	char line[1024];
	va_list ap;
	int n, fd;

	memcpy(line, "portguard: ", 11);
	va_start(ap, fmt);
	n = vsnprintf(line + 11, sizeof(line) - 12, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 12)
		n = (int)(sizeof(line) - 12);
	line[11 + n] = '\n';
	/* The library's thread reaches the program's stderr through a copy
	 * (shim/progfd.h): its own fd 2 is something else. */
	fd = pg_library_thread ? pg_progfd_get(2) : 2;
	if (fd >= 0 && stderr_is_ours(fd))
		pg_write_all(fd, line, 11 + (size_t)n + 1);
	if (pg_library_thread)
		pg_progfd_put(fd);
	errno = saved;
}
