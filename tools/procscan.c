#include "tools/procscan.h"

#include "tools/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t pg_procscan_socket_inode(const char *link, size_t len)
{
	uint64_t ino = 0;
	size_t i;

	if (len < 10 || memcmp(link, "socket:[", 8) != 0 || link[len - 1] != ']')
		return 0;
	for (i = 8; i < len - 1; i++) {
		if (link[i] < '0' || link[i] > '9')
			return 0;
		ino = ino * 10 + (uint64_t)(link[i] - '0');
	}
	return ino;
}

long pg_procscan_parse_limits(const char *text)
{
	const char *p = strstr(text, "Max open files");
	char *end;
	long v;

	if (!p)
		return -1;
	p += strlen("Max open files");
	while (*p == ' ')
		p++;
	if (strncmp(p, "unlimited", 9) == 0)
		return -1;
	v = strtol(p, &end, 10);
	return end == p ? -1 : v;
}

/* The length of the UTF-8 sequence at s that is neither malformed nor a
 * C1 control (U+0080-U+009F); 0 when it is one of those. */
static size_t utf8_printable(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;

	if (s[0] < 0xc2 || s[0] > 0xf4 || (s[0] == 0xc2 && s[1] < 0xa0))
		return 0;
	/* Overlong forms, surrogates, beyond U+10FFFF. */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A process names itself (prctl, /proc/self/comm): control characters
 * and escape sequences in it would drive the terminal of whoever reads
 * our tables, and a malformed UTF-8 name is no JSON string. Each such
 * byte becomes '?', as ps shows them. */
static void printable(char *buf)
{
	unsigned char *s = (unsigned char *)buf;

	while (*s) {
		size_t n;
		if (*s >= 0x20 && *s < 0x7f) {
			s++;
			continue;
		}
		n = *s >= 0x80 ? utf8_printable(s) : 0;
		if (n) {
			s += n;
			continue;
		}
		*s++ = '?';
	}
}

void pg_procscan_comm(int pid, char *buf, size_t size)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (pg_cli_read_small(path, buf, size) <= 0) {
		snprintf(buf, size, "?");
		return;
	}
	buf[strcspn(buf, "\n")] = '\0';
	printable(buf);
}

static void add_owner(struct pg_procscan *s, uint64_t inode, int pid)
{
	if (s->nowners == s->capowners) {
		s->capowners = s->capowners ? s->capowners * 2 : 4096;
		s->owners = pg_cli_realloc(s->owners, s->capowners * sizeof(*s->owners));
	}
	s->owners[s->nowners].inode = inode;
	s->owners[s->nowners].pid = pid;
	s->nowners++;
}

static struct pg_proc *add_proc(struct pg_procscan *s, int pid)
{
	struct pg_proc *p;

	if (s->nprocs == s->capprocs) {
		s->capprocs = s->capprocs ? s->capprocs * 2 : 256;
		s->procs = pg_cli_realloc(s->procs, s->capprocs * sizeof(*s->procs));
	}
	p = &s->procs[s->nprocs++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->fd_limit = -1;
	return p;
}

/* 0, or -errno of opening /proc/PID/fd. */
static int scan_pid(struct pg_procscan *s, int procfd, int pid)
{
	char path[64], link[64], limits[4096];
	size_t first = s->nowners;
	struct pg_proc *p;
	struct dirent *de;
	DIR *d;
	int dfd;

	snprintf(path, sizeof(path), "%d/fd", pid);
	dfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -ENOMEM;
	}
	p = add_proc(s, pid);
	errno = 0;
	while ((de = readdir(d))) {
		ssize_t n;
		uint64_t ino;

		if (de->d_name[0] == '.')
			continue;
		p->fds++;
		n = readlinkat(dfd, de->d_name, link, sizeof(link));
		if (n <= 0 || n >= (ssize_t)sizeof(link))
			continue;
		ino = pg_procscan_socket_inode(link, (size_t)n);
		if (!ino)
			continue;
		p->sockets++;
		add_owner(s, ino, pid);
	}
	closedir(d);
	/* A process that exited while we read it: forget what we saw. */
	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	if (pg_cli_read_small(path, limits, sizeof(limits)) <= 0) {
		s->nprocs--;
		s->nowners = first;
		return -ESRCH;
	}
	p->fd_limit = pg_procscan_parse_limits(limits);
	return 0;
}

static int cmp_owner(const void *a, const void *b)
{
	const struct pg_owner *x = a, *y = b;

	if (x->inode != y->inode)
		return x->inode < y->inode ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static int cmp_proc(const void *a, const void *b)
{
	const struct pg_proc *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int pg_procscan_run(struct pg_procscan *s, int only_pid, int skip_pid)
{
	struct dirent *de;
	int procfd, r = 0;
	DIR *d;

	memset(s, 0, sizeof(*s));
	procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return -errno;
	if (only_pid > 0) {
		r = scan_pid(s, procfd, only_pid);
		close(procfd);
		if (r < 0)
			return r == -ENOENT ? -ESRCH : r;
		goto done;
	}
	d = fdopendir(dup(procfd));
	if (!d) {
		close(procfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == skip_pid)
			continue;
		r = scan_pid(s, procfd, (int)pid);
		/* ENOENT/ESRCH: it exited meanwhile, which is not our concern. */
		if (r == -EACCES || r == -EPERM)
			s->unreadable++;
	}
	closedir(d);
	close(procfd);
done:
	/* dup()ed descriptors of one socket and shared ones after fork: a pair
	 * (inode, pid) counts once. */
	if (s->nowners) {
		qsort(s->owners, s->nowners, sizeof(*s->owners), cmp_owner);
		size_t w = 1;
		for (size_t i = 1; i < s->nowners; i++)
			if (cmp_owner(&s->owners[i], &s->owners[w - 1]))
				s->owners[w++] = s->owners[i];
		s->nowners = w;
	}
	if (s->nprocs)
		qsort(s->procs, s->nprocs, sizeof(*s->procs), cmp_proc);
	return 0;
}

void pg_procscan_free(struct pg_procscan *s)
{
	free(s->owners);
	free(s->procs);
	memset(s, 0, sizeof(*s));
}

size_t pg_procscan_owners_of(const struct pg_procscan *s, uint64_t inode, size_t *first)
{
	size_t lo = 0, hi = s->nowners, n = 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->owners[mid].inode < inode)
			lo = mid + 1;
		else
			hi = mid;
	}
	*first = lo;
	while (lo + n < s->nowners && s->owners[lo + n].inode == inode)
		n++;
	return n;
}

const struct pg_proc *pg_procscan_find(const struct pg_procscan *s, int pid)
{
	struct pg_proc key = { .pid = pid };

	return bsearch(&key, s->procs, s->nprocs, sizeof(*s->procs), cmp_proc);
}
