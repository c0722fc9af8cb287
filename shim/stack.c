/* Stack capture with glibc's backtrace(): right without frame pointers, and
 * it holds no descriptor. (libunwind 1.6 was measured 15x faster but keeps a
 * pipe of its own open for the life of the process, which shifts the
 * program's descriptor numbers: not acceptable here.) */
#include "shim/stack.h"

#include "shim/common.h"
#include "shim/registry.h"

#include <execinfo.h>
#include <link.h>

static int inited;
static uintptr_t self_lo, self_hi; /* our own text, skipped in stacks */

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t me = (uintptr_t)arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && me >= lo && me < lo + ph->p_memsz) {
			self_lo = lo;
			self_hi = lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

void pg_stack_init(void)
{
	uintptr_t warm[4];

	if (__atomic_load_n(&inited, __ATOMIC_ACQUIRE))
		return;
	dl_iterate_phdr(find_self, (void *)(uintptr_t)&pg_stack_capture);
	__atomic_store_n(&inited, 1, __ATOMIC_RELEASE);
	/* The first capture loads libgcc_s, which allocates: do it now, not
	 * inside the program's first socket() call. */
	pg_stack_capture(warm, 4);
}

const char *pg_stack_unwinder(void)
{
	return "backtrace";
}

int pg_stack_capture(uintptr_t *out, int max)
{
	void *buf[PG_MAX_DEPTH + 8];
	int n;

	if (max <= 0)
		return 0;
	if (max > PG_MAX_DEPTH)
		max = PG_MAX_DEPTH;
	/* Room for our own frames (wrapper, tracking, this function). */
	n = backtrace(buf, max + 8);
	/* Our own frames go: the wrapper and tracking on top, and pg_main (the
	 * trampoline that records main's return value) at the bottom. */
	int k = 0;
	for (int i = 0; i < n && k < max; i++) {
		uintptr_t a = (uintptr_t)buf[i];
		if (a >= self_lo && a < self_hi)
			continue;
		out[k++] = a;
	}
	n = k;
	return n;
}
