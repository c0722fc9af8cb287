#include "shim/common.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

__thread int pg_inside __attribute__((tls_model("initial-exec")));
/* used, externally_visible: the vfork stub (asm in interpose.c) names it,
 * where link-time optimisation cannot see. */
__thread int pg_vfork_child __attribute__((tls_model("initial-exec"), used, externally_visible));
__thread int pg_library_thread __attribute__((tls_model("initial-exec")));
__thread int pg_hash_oom __attribute__((tls_model("initial-exec")));

__thread int pg_alloc_no_fault __attribute__((tls_model("initial-exec")));
static unsigned fault_every;
static int accounting = 1;
static unsigned long fault_count;
static size_t alloc_bytes;

void pg_alloc_set_accounting(int on)
{
	accounting = on;
}

static void account(void *p, int sign)
{
	if (accounting && p) {
		size_t n = malloc_usable_size(p);
		if (sign > 0)
			__atomic_add_fetch(&alloc_bytes, n, __ATOMIC_RELAXED);
		else
			__atomic_sub_fetch(&alloc_bytes, n, __ATOMIC_RELAXED);
	}
}

void pg_alloc_set_fault(unsigned every)
{
	fault_every = every;
}

static int fault_now(void)
{
	if (PG_LIKELY(fault_every == 0) || pg_alloc_no_fault)
		return 0;
	return __atomic_add_fetch(&fault_count, 1, __ATOMIC_RELAXED) % fault_every == 0;
}

/* malloc_usable_size() rather than a header of our own: the benchmarks print
 * what the registry really holds, and a header would add to it. */
void *pg_alloc(size_t size)
{
	void *p;

	if (fault_now())
		return NULL;
	p = malloc(size);
	account(p, 1);
	return p;
}

void *pg_calloc(size_t n, size_t size)
{
	void *p;

	if (fault_now())
		return NULL;
	p = calloc(n, size);
	account(p, 1);
	return p;
}

void *pg_realloc(void *p, size_t size)
{
	size_t old = p && accounting ? malloc_usable_size(p) : 0;
	void *n;

	if (fault_now())
		return NULL;
	n = realloc(p, size);
	if (n && accounting)
		__atomic_add_fetch(&alloc_bytes, malloc_usable_size(n) - old, __ATOMIC_RELAXED);
	return n;
}

void pg_free(void *p)
{
	account(p, -1);
	free(p);
}

size_t pg_alloc_bytes(void)
{
	return __atomic_load_n(&alloc_bytes, __ATOMIC_RELAXED);
}

int pg_nocancel_begin(void)
{
	int old = PTHREAD_CANCEL_ENABLE;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	return old;
}

void pg_nocancel_end(int old)
{
	pthread_setcancelstate(old, NULL);
}

int64_t pg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pg_now_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

char *pg_read_file(const char *path, size_t max, size_t *len, const char **why)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int saved = errno;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		*why = strerror(errno);
	else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		*why = "not a regular file";
	else if ((size_t)st.st_size > max)
		*why = "too large";
	else if (!(buf = pg_alloc((size_t)st.st_size + 1)))
		*why = "out of memory";
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (buf) {
		buf[got] = 0;
		*len = got;
	}
	/* The shim's own descriptor: the wrapper passes it straight through
	 * (the caller is inside the shim). */
	if (fd >= 0)
		close(fd);
	errno = saved;
	return buf;
}

int pg_write_all(int fd, const char *buf, size_t len)
{
	int saved = errno;
	int rc = 0;

	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		buf += n;
		len -= (size_t)n;
	}
	errno = saved;
	return rc;
}
