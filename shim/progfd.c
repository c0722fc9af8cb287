#include "shim/progfd.h"

#include "shim/common.h"
#include "shim/real.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#define PG_CLOSE_RANGE_UNSHARE (1U << 1)

static int own_table, pidfd = -1, self;
static char fd_dir[64]; /* "/proc/PID/task/TID/fd/" */

int pg_progfd_setup(int pid)
{
	self = pid;
	own_table = 0;
	if (pg_raw_syscall(SYS_close_range, 0, ~0U, PG_CLOSE_RANGE_UNSHARE, 0, 0, 0) != 0)
		return 0; /* before Linux 5.9: the program's table, shared */
	own_table = 1;
	/* The first number of our empty table. Without it (seccomp), reports
	 * still list every socket with its stack, but not its addresses, and
	 * only go to files. */
	pidfd = (int)pg_raw_syscall(SYS_pidfd_open, pid, 0, 0, 0, 0, 0);
	if (pidfd < 0)
		pidfd = -1;
	return 1;
}

int pg_progfd_private(void)
{
	return own_table;
}

static int table_size_of(const char *status_path)
{
	char buf[2048];
	const char *p;
	int fd = open(status_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), n;

	if (fd < 0)
		return 0;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	pg_real.close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strstr(buf, "\nFDSize:");
	return p ? atoi(p + 8) : 0;
}

int pg_progfd_begin(void)
{
	char path[96];
	int size, me = (int)pg_raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/status", self);
	size = table_size_of(path);
	if (size > 0) {
		snprintf(fd_dir, sizeof(fd_dir), "/proc/%d/fd/", self);
		return size;
	}
	/* main has called pthread_exit: its table is gone; any live thread of
	 * the program's (not ours) has the one it shared. */
	snprintf(path, sizeof(path), "/proc/%d/task", self);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		int tid = atoi(e->d_name);
		if (tid <= 0 || tid == me)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", self, tid);
		size = table_size_of(path);
		if (size > 0) {
			snprintf(fd_dir, sizeof(fd_dir), "/proc/%d/task/%d/fd/", self, tid);
			break;
		}
	}
	closedir(d);
	return size > 0 ? size : 0;
}

int pg_progfd_get(int fd)
{
	long r;

	if (!own_table)
		return fd;
	if (pidfd < 0)
		return -1;
	r = pg_raw_syscall(SYS_pidfd_getfd, pidfd, fd, 0, 0, 0, 0);
	return r >= 0 ? (int)r : -1;
}

void pg_progfd_put(int here)
{
	if (own_table && here >= 0)
		pg_real.close(here);
}

uint64_t pg_progfd_inode(int fd)
{
	char path[96], link[64];
	struct stat st;
	ssize_t n;
	unsigned long long ino;

	if (!own_table)
		return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_ino : 0;
	/* The name, without taking a reference: "socket:[12345]". */
	snprintf(path, sizeof(path), "%s%d", fd_dir, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return 0;
	link[n] = 0;
	return sscanf(link, "socket:[%llu]", &ino) == 1 ? ino : 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int cmp_fd(const void *a, const void *b)
{
	return ((const struct pg_progfd_sock *)a)->fd - ((const struct pg_progfd_sock *)b)->fd;
}

long pg_progfd_sockets(struct pg_progfd_sock *out, size_t cap)
{
	char buf[8192], link[64];
	long total = 0, n;
	int sorted = 1, last = -1;
	int dfd = open(own_table || fd_dir[0] ? fd_dir : "/proc/self/fd/",
		       O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return -1;
	while ((n = pg_raw_syscall(SYS_getdents64, dfd, (long)buf, sizeof(buf), 0, 0, 0)) > 0) {
		for (long off = 0; off < n;) {
			struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + off);
			unsigned long long ino;
			ssize_t l;
			char *end;
			long fd;
			off += e->d_reclen;
			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			fd = strtol(e->d_name, &end, 10);
			if (*end || (fd == dfd && !own_table))
				continue;
			l = readlinkat(dfd, e->d_name, link, sizeof(link) - 1);
			if (l <= 0)
				continue;
			link[l] = 0;
			if (sscanf(link, "socket:[%llu]", &ino) != 1)
				continue;
			if ((size_t)total < cap) {
				out[total].fd = (int)fd;
				out[total].inode = ino;
				if ((int)fd < last)
					sorted = 0;
				last = (int)fd;
			}
			total++;
		}
	}
	pg_real.close(dfd);
	if (n < 0)
		return -1;
	if (!sorted)
		qsort(out, (size_t)total < cap ? (size_t)total : cap, sizeof(*out), cmp_fd);
	return total;
}

void pg_progfd_fork_child(void)
{
	/* The child runs no thread of ours yet, and shares its own table;
	 * its /proc is its own pid's. */
	own_table = 0;
	pidfd = -1;
	self = (int)pg_raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0);
	fd_dir[0] = 0;
}
