/* Stack capture: our own DWARF-CFI unwinder (shim/unwind.c) with a cache of
 * rules per return address: right without frame pointers, about 65 ns per
 * 16-frame capture, and it holds no descriptor and allocates nothing (glibc's
 * backtrace() costs about 1.5 us; libunwind 1.6 keeps a pipe of its own open,
 * which shifts the program's descriptor numbers). backtrace() remains the
 * fallback where ours finds nothing at all. Figures: bench/unwind-notes.md. */
#include "shim/stack.h"

#include "shim/common.h"
#include "shim/python.h"
#include "shim/sites.h"
#include "shim/unwind.h"

#include <execinfo.h>
#include <link.h>
#include <string.h>

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
	pg_unwind_skip(self_lo, self_hi);
	pg_unwind_init();
	__atomic_store_n(&inited, 1, __ATOMIC_RELEASE);
	/* The first capture of backtrace() loads libgcc_s, which allocates: do
	 * it now (for the fallback), not inside the program's first socket(). */
	backtrace((void **)warm, 4);
	pg_stack_capture(warm, 4);
}

const char *pg_stack_unwinder(void)
{
	return "pg_unwind";
}

int pg_stack_capture(uintptr_t *out, int max)
{
	uintptr_t buf[PG_MAX_DEPTH + 8];
	int n, k = 0;

	if (max <= 0)
		return 0;
	if (max > PG_MAX_DEPTH)
		max = PG_MAX_DEPTH;
	/* The unwinder leaves our own frames out itself (pg_unwind_skip): the
	 * wrapper and tracking on top, and pg_main (the trampoline that records
	 * main's return value) at the bottom. */
	n = pg_unwind_backtrace(out, max);
	if (n > 0)
		return n;
	/* Nothing found by ours (no CFI at all): glibc's, filtered here, with
	 * room for our own frames. */
	n = backtrace((void **)buf, max + 8);
	for (int i = 0; i < n && k < max; i++) {
		if (buf[i] >= self_lo && buf[i] < self_hi)
			continue;
		out[k++] = buf[i];
	}
	return k;
}

__thread void *pg_stack_frame __attribute__((tls_model("initial-exec")));

static __attribute__((noinline)) uint32_t with_python(uint32_t csite, int max)
{
	struct pg_pyraw py[PG_MAX_DEPTH];
	uintptr_t frames[PG_MAX_DEPTH];
	const struct pg_site *c = pg_sites_get(csite);
	int npy = pg_python_capture(py, max);
	unsigned depth;

	if (npy <= 0 || !c)
		return csite;
	/* The socket module's C frames are below: where its type is. */
	if (!pg_python_fin[0].size && c->depth)
		pg_python_learn(c->frames[0]);
	/* The site is what the report shows: the C frames up to the first
	 * evaluation loop, then the Python frames. The interpreter's C
	 * frames (which handler of the loop called, specialized or not: 3.13
	 * calls a class's __init__ by one path the first time, another
	 * after) would split one Python call site into several. */
	depth = c->depth > PG_MAX_DEPTH ? PG_MAX_DEPTH : c->depth;
	memcpy(frames, c->frames, depth * sizeof(*frames));
	if (!pg_python_native) {
		for (unsigned i = 0; i < depth; i++) {
			if (pg_python_is_eval(frames[i])) {
				frames[i] = pg_python_eval_pc();
				depth = i + 1;
				break;
			}
		}
	}
	return pg_sites_intern_py(frames, depth, py, (unsigned)npy);
}

PG_HOT uint32_t pg_stack_site(int max)
{
	uintptr_t frames[PG_MAX_DEPTH];
	struct pg_unwind_trace t;
	uint32_t site;
	int n;

	if (max <= 0)
		return 0;
	if (max > PG_MAX_DEPTH)
		max = PG_MAX_DEPTH;
	if (pg_stack_frame)
		n = pg_unwind_capture_from(frames, max, pg_stack_frame, &t);
	else
		n = pg_unwind_capture(frames, max, &t);
	if (t.tag) {
		site = t.tag;
	} else {
		if (n <= 0)
			return 0;
		site = pg_sites_intern(frames, (unsigned)n);
		pg_unwind_set_tag(&t, site);
	}
	/* In CPython, the C stack is the interpreter's, the same for every
	 * Python call site: the site is the C one's frames with this thread's
	 * Python frames. */
	if (__builtin_expect(pg_python_on, 0))
		site = with_python(site, max);
	return site;
}

int pg_stack_in_signal_handler(void)
{
	uintptr_t frames[256];
	struct pg_unwind_trace t;

	pg_unwind_capture(frames, 256, &t);
	return t.signal;
}
