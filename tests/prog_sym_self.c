/* These tests compare source lines (__LINE__ on the line of the call): the
 * layout is part of what they check. */
/* clang-format off */
/* Symbolizes return addresses inside itself and prints what it found, so that
 * tests/test_symbolize.c can run copies of it stripped, with a .gnu_debuglink,
 * or with its debug file under a build-id directory.
 *
 *     prog_sym_self [DEBUG_ROOT]
 *
 * Prints "EXE path", "BUILDID hex", then per call site
 * "SITE name expected_line module 0xoffset function file line" ("-" for
 * unknown), then "FDS before after". Built from one source like every
 * tests/prog_*.c, so it takes the symbolizer's sources in whole. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shim/symbolize.c"
#include "shim/common.c"
#include "shim/locks.c"

#include <dirent.h>

static __attribute__((noinline, noclone)) uintptr_t capture(void)
{
	uintptr_t r = (uintptr_t)__builtin_return_address(0);

	__asm__ volatile("" ::: "memory");
	return r;
}

static __attribute__((noinline, noclone)) uintptr_t static_site(int *line)
{
	uintptr_t r = capture(); *line = __LINE__;

	/* No tail call: the return address must stay in this function. */
	__asm__ volatile("" ::: "memory");
	return r;
}

uintptr_t global_site(int *line);
__attribute__((noinline, noclone)) uintptr_t global_site(int *line)
{
	uintptr_t r = capture(); *line = __LINE__;

	__asm__ volatile("" ::: "memory");
	return r;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static void print_site(struct pg_symbolizer *s, const char *name, uintptr_t addr, int line)
{
	struct pg_sym f[8];
	int n = pg_sym_lookup(s, addr, 1, f, 8);
	const struct pg_sym *o = &f[n - 1];

	printf("SITE %s %d %s 0x%lx %s %s %d\n", name, line, o->module, (unsigned long)o->offset,
	       o->function ? o->function : "-", f[0].file ? f[0].file : "-", f[0].line);
}

int main(int argc, char **argv)
{
	int before = count_fds(), line_static = 0, line_global = 0;
	uintptr_t a_static = static_site(&line_static);
	uintptr_t a_global = global_site(&line_global);
	struct pg_symbolizer *s = pg_sym_open(1);

	if (!s)
		return 1;
	if (argc > 1 && pg_sym_set_debug_root(s, argv[1]) != 0)
		return 1;
	for (size_t i = 0; i < s->nmods; i++) {
		if (a_static < s->mods[i].lo || a_static >= s->mods[i].hi)
			continue;
		printf("EXE %s\nBUILDID ", s->mods[i].path);
		for (size_t k = 0; k < s->mods[i].build_id_len; k++)
			printf("%02x", s->mods[i].build_id[k]);
		printf("\n");
	}
	printf("DEBUGINFO %d\n", pg_sym_has_debuginfo(s));
	print_site(s, "static_site", a_static, line_static);
	print_site(s, "global_site", a_global, line_global);
	pg_sym_close(s);
	printf("FDS %d %d\n", before, count_fds());
	return 0;
}
