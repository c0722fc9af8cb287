/* Stack capture by DWARF CFI, x86_64.
 *
 * Why our own: glibc's backtrace() (libgcc) costs ~1.5 us per 16 frames;
 * libunwind 1.6 is fast but opens a pipe at first use, keeps it for the life
 * of the process and close()s those numbers again when the program has closed
 * them (closefrom) and maybe reused them; a frame-pointer walk is silently
 * wrong through Debian's libraries, built without frame pointers
 * (bench/unwind-notes.md).
 *
 * How: the CFI row for a return address is reduced to "CFA = rsp|rbp + off,
 * return address at CFA + x, caller's rbp at CFA + y or unchanged" and cached
 * in a static open-addressing table, written once per slot and read without
 * locks. A miss finds the FDE through _dl_find_object() (lock-free, no
 * allocation; dl_iterate_phdr() as the fallback) and the .eh_frame_hdr
 * search table, then runs the CIE and FDE programs up to the address. Only
 * those three facts are kept; a row that needs anything else (a DWARF
 * expression, a CFA in another register) ends the walk there, as do signal
 * frames. */
#include "shim/unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shim/common.h"

/* ld.so's: the stack pointer at process entry; the main thread's frames all
 * lie below it. */
extern void *__libc_stack_end;

/* Bound on the stack a walk may read above its start, whatever else says. */
#define PG_UNWIND_MAX_STACK ((uintptr_t)64 << 20)

/* 8192 slots of 16 bytes: 128 KiB of .bss, touched only where used. */
#define PG_UNWIND_SLOTS 8192u
#define PG_UNWIND_SLOT_BITS 13
#define PG_UNWIND_PROBES 16
/* A slot being written: no return address is 1. */
#define PG_UNWIND_BUSY ((uintptr_t)1)

/* DWARF register numbers of x86_64 (psABI figure 3.36). */
#define PG_DW_RBP 6
#define PG_DW_RSP 7
#define PG_DW_RA 16

/* Pointer encodings (LSB, "DWARF Extensions", DW_EH_PE_*). */
#define PG_PE_ABSPTR 0x00
#define PG_PE_ULEB128 0x01
#define PG_PE_UDATA2 0x02
#define PG_PE_UDATA4 0x03
#define PG_PE_UDATA8 0x04
#define PG_PE_SLEB128 0x09
#define PG_PE_SDATA2 0x0a
#define PG_PE_SDATA4 0x0b
#define PG_PE_SDATA8 0x0c
#define PG_PE_PCREL 0x10
#define PG_PE_DATAREL 0x30
#define PG_PE_INDIRECT 0x80
#define PG_PE_OMIT 0xff

/* Call frame instructions (DWARF 5, 6.4.2), plus GNU's. */
enum {
	PG_CFA_NOP = 0x00,
	PG_CFA_SET_LOC = 0x01,
	PG_CFA_ADVANCE_LOC1 = 0x02,
	PG_CFA_ADVANCE_LOC2 = 0x03,
	PG_CFA_ADVANCE_LOC4 = 0x04,
	PG_CFA_OFFSET_EXTENDED = 0x05,
	PG_CFA_RESTORE_EXTENDED = 0x06,
	PG_CFA_UNDEFINED = 0x07,
	PG_CFA_SAME_VALUE = 0x08,
	PG_CFA_REGISTER = 0x09,
	PG_CFA_REMEMBER_STATE = 0x0a,
	PG_CFA_RESTORE_STATE = 0x0b,
	PG_CFA_DEF_CFA = 0x0c,
	PG_CFA_DEF_CFA_REGISTER = 0x0d,
	PG_CFA_DEF_CFA_OFFSET = 0x0e,
	PG_CFA_DEF_CFA_EXPRESSION = 0x0f,
	PG_CFA_EXPRESSION = 0x10,
	PG_CFA_OFFSET_EXTENDED_SF = 0x11,
	PG_CFA_DEF_CFA_SF = 0x12,
	PG_CFA_DEF_CFA_OFFSET_SF = 0x13,
	PG_CFA_VAL_OFFSET = 0x14,
	PG_CFA_VAL_OFFSET_SF = 0x15,
	PG_CFA_VAL_EXPRESSION = 0x16,
	PG_CFA_GNU_ARGS_SIZE = 0x2e,
	PG_CFA_GNU_NEGATIVE_OFFSET_EXTENDED = 0x2f,
};

/* What a walk needs of one return address. */
enum {
	PG_UNWIND_STOP = 1u << 0, /* end the walk after this frame */
	PG_UNWIND_CFA_RBP = 1u << 1, /* CFA = rbp + cfa_off, else rsp + cfa_off */
	PG_UNWIND_RBP_SAVED = 1u << 2, /* caller's rbp is at CFA + rbp_off */
	PG_UNWIND_RBP_LOST = 1u << 3, /* caller's rbp cannot be known */
	PG_UNWIND_SIGNAL = 1u << 4, /* with STOP: a signal frame */
};

struct pg_unwind_rule {
	int32_t cfa_off;
	int16_t rbp_off;
	int8_t ra_off; /* return address at CFA + ra_off */
	uint8_t flags;
};

struct pg_unwind_slot {
	uintptr_t key; /* 0 free, PG_UNWIND_BUSY, or the return address */
	struct pg_unwind_rule rule;
};

/* A slot goes 0 -> BUSY (CAS) -> key (release store, after the rule) and
 * never changes again, so a reader that sees its key sees its rule. No lock:
 * a fork() in the middle of a write leaves one dead slot, not a held mutex.
 * Never evicted: after dlclose() and another object mapped at the same
 * addresses, a stale rule can give wrong frames (the walk's bounds still keep
 * every read inside the thread's stack). */
static struct pg_unwind_slot pg_unwind_cache[PG_UNWIND_SLOTS] __attribute__((aligned(64)));

/* ---- CFI decoding ------------------------------------------------------- */

/* One register's rule, for the two registers we follow. */
enum { PG_REG_SAME, PG_REG_OFFSET, PG_REG_UNDEF, PG_REG_OTHER };

struct pg_cfi_reg {
	int how;
	int64_t off;
};

struct pg_cfi_row {
	uint64_t cfa_reg;
	int64_t cfa_off;
	int cfa_expr;
	struct pg_cfi_reg rbp, ra;
};

struct pg_cfi_cie {
	uint64_t code_align;
	int64_t data_align;
	uint8_t fde_enc;
	int has_z, signal;
	const uint8_t *insn, *end;
};

/* remember_state nesting kept; GCC's output uses one or two levels. */
#define PG_CFI_STATES 8

static int pg_cfi_u8(const uint8_t **pp, const uint8_t *end, uint8_t *v)
{
	if (*pp >= end)
		return -EINVAL;
	*v = *(*pp)++;
	return 0;
}

/* LEB128: the value's bits, and how many there are (shift) and the last
 * byte, which the signed form needs to extend the sign. */
static int pg_cfi_leb(const uint8_t **pp, const uint8_t *end, uint64_t *v, unsigned *shift,
		      uint8_t *last)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;
	unsigned sh = 0;
	uint8_t b;

	do {
		if (p >= end || sh > 63)
			return -EINVAL;
		b = *p++;
		r |= (uint64_t)(b & 0x7f) << sh;
		sh += 7;
	} while (b & 0x80);
	*pp = p;
	*v = r;
	*shift = sh;
	*last = b;
	return 0;
}

static int pg_cfi_uleb(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	unsigned shift;
	uint8_t last;

	return pg_cfi_leb(pp, end, v, &shift, &last);
}

static int pg_cfi_sleb(const uint8_t **pp, const uint8_t *end, int64_t *v)
{
	uint64_t r;
	unsigned shift;
	uint8_t last;

	if (pg_cfi_leb(pp, end, &r, &shift, &last) < 0)
		return -EINVAL;
	if (shift < 64 && (last & 0x40))
		r |= ~(uint64_t)0 << shift;
	*v = (int64_t)r;
	return 0;
}

/* An encoded pointer. datarel is the base for DW_EH_PE_datarel, 0 where
 * that encoding has no meaning (x86_64 .eh_frame has no data base). */
static int pg_cfi_ptr(uint8_t enc, const uint8_t **pp, const uint8_t *end, uintptr_t datarel,
		      uintptr_t *v)
{
	const uint8_t *p = *pp;
	uintptr_t val;

	switch (enc & 0x0f) {
	case PG_PE_ABSPTR:
	case PG_PE_UDATA8:
	case PG_PE_SDATA8: {
		uint64_t x;

		if (end - p < 8)
			return -EINVAL;
		memcpy(&x, p, 8);
		p += 8;
		val = (uintptr_t)x;
		break;
	}
	case PG_PE_UDATA4:
	case PG_PE_SDATA4: {
		uint32_t x;

		if (end - p < 4)
			return -EINVAL;
		memcpy(&x, p, 4);
		p += 4;
		val = (enc & 0x0f) == PG_PE_SDATA4 ? (uintptr_t)(int64_t)(int32_t)x : (uintptr_t)x;
		break;
	}
	case PG_PE_UDATA2:
	case PG_PE_SDATA2: {
		uint16_t x;

		if (end - p < 2)
			return -EINVAL;
		memcpy(&x, p, 2);
		p += 2;
		val = (enc & 0x0f) == PG_PE_SDATA2 ? (uintptr_t)(int64_t)(int16_t)x : (uintptr_t)x;
		break;
	}
	case PG_PE_ULEB128: {
		uint64_t x;

		if (pg_cfi_uleb(&p, end, &x))
			return -EINVAL;
		val = (uintptr_t)x;
		break;
	}
	case PG_PE_SLEB128: {
		int64_t x;

		if (pg_cfi_sleb(&p, end, &x))
			return -EINVAL;
		val = (uintptr_t)x;
		break;
	}
	default: return -EINVAL;
	}
	switch (enc & 0x70) {
	case 0: break;
	case PG_PE_PCREL: val += (uintptr_t)*pp; break;
	case PG_PE_DATAREL:
		if (!datarel)
			return -EINVAL;
		val += datarel;
		break;
	default: /* textrel, funcrel, aligned: not on x86_64 */ return -EINVAL;
	}
	if (enc & PG_PE_INDIRECT) {
		if (!val || (val & 7))
			return -EINVAL;
		val = *(const uintptr_t *)val;
	}
	*pp = p;
	*v = val;
	return 0;
}

/* Length and body of the CIE or FDE at p; 64-bit DWARF lengths are not
 * used in .eh_frame (libgcc does not read them either). */
static int pg_cfi_entry(const uint8_t *p, const uint8_t **body, const uint8_t **end)
{
	uint32_t len;

	memcpy(&len, p, 4);
	if (len == 0 || len == 0xffffffffu)
		return -EINVAL;
	*body = p + 4;
	*end = p + 4 + len;
	return 0;
}

static int pg_cfi_parse_cie(const uint8_t *cie, struct pg_cfi_cie *c)
{
	const uint8_t *p, *end, *aug_end;
	const char *aug;
	uint32_t id;
	uint8_t version, b;
	uint64_t ra_reg, alen;
	size_t n;

	if (pg_cfi_entry(cie, &p, &end) || end - p < 5)
		return -EINVAL;
	memcpy(&id, p, 4);
	p += 4;
	version = *p++;
	if (id != 0 || (version != 1 && version != 3 && version != 4))
		return -EINVAL;
	aug = (const char *)p;
	n = strnlen(aug, (size_t)(end - p));
	if (n == (size_t)(end - p))
		return -EINVAL;
	p += n + 1;
	if (version == 4) {
		/* address_size 8, segment_selector_size 0 */
		if (end - p < 2 || p[0] != 8 || p[1] != 0)
			return -EINVAL;
		p += 2;
	}
	if (pg_cfi_uleb(&p, end, &c->code_align) || pg_cfi_sleb(&p, end, &c->data_align))
		return -EINVAL;
	if (version == 1) {
		if (pg_cfi_u8(&p, end, &b))
			return -EINVAL;
		ra_reg = b;
	} else if (pg_cfi_uleb(&p, end, &ra_reg)) {
		return -EINVAL;
	}
	if (ra_reg != PG_DW_RA)
		return -EINVAL;
	c->fde_enc = PG_PE_ABSPTR;
	c->has_z = 0;
	c->signal = 0;
	if (aug[0] == 'z') {
		c->has_z = 1;
		if (pg_cfi_uleb(&p, end, &alen) || alen > (uint64_t)(end - p))
			return -EINVAL;
		aug_end = p + alen;
		for (const char *s = aug + 1; *s; s++) {
			switch (*s) {
			case 'R':
				if (pg_cfi_u8(&p, aug_end, &c->fde_enc))
					return -EINVAL;
				break;
			case 'L':
				if (pg_cfi_u8(&p, aug_end, &b))
					return -EINVAL;
				break;
			case 'P': {
				uintptr_t skip;

				/* Only its size matters: no base, no deref. */
				if (pg_cfi_u8(&p, aug_end, &b) ||
				    pg_cfi_ptr(b & 0x0f, &p, aug_end, 0, &skip))
					return -EINVAL;
				break;
			}
			case 'S': c->signal = 1; break;
			default:
				/* Unknown data: the FDE encoding may follow. */
				return -EINVAL;
			}
		}
		p = aug_end;
	} else if (aug[0]) {
		return -EINVAL;
	}
	c->insn = p;
	c->end = end;
	return 0;
}

static struct pg_cfi_reg *pg_cfi_reg_of(struct pg_cfi_row *row, uint64_t reg)
{
	if (reg == PG_DW_RBP)
		return &row->rbp;
	if (reg == PG_DW_RA)
		return &row->ra;
	return NULL;
}

/* DW_CFA_restore: back to the rule after the CIE's program. */
static void pg_cfi_restore(struct pg_cfi_row *row, uint64_t reg, const struct pg_cfi_row *init)
{
	struct pg_cfi_reg *r = pg_cfi_reg_of(row, reg);

	if (r && init)
		*r = reg == PG_DW_RBP ? init->rbp : init->ra;
	else if (r)
		*r = (struct pg_cfi_reg){ PG_REG_SAME, 0 };
}

static void pg_cfi_set(struct pg_cfi_row *row, uint64_t reg, int how, int64_t off)
{
	struct pg_cfi_reg *r = pg_cfi_reg_of(row, reg);

	if (r) {
		r->how = how;
		r->off = off;
	}
}

static int64_t pg_cfi_scale(int64_t v, int64_t factor)
{
	/* Unsigned: an absurd factor wraps instead of being undefined. */
	return (int64_t)((uint64_t)v * (uint64_t)factor);
}

/* Runs the instructions in [p, end) from location loc, stopping before the
 * first row that starts above target. init is the row after the CIE's
 * program (what DW_CFA_restore returns to), NULL while running it. */
static int pg_cfi_run(const struct pg_cfi_cie *c, const uint8_t *p, const uint8_t *end,
		      uintptr_t loc, uintptr_t target, struct pg_cfi_row *row,
		      const struct pg_cfi_row *init)
{
	struct pg_cfi_row saved[PG_CFI_STATES];
	int depth = 0;

	while (p < end) {
		uint8_t op = *p++, b;
		uint64_t reg, u;
		int64_t s;
		uintptr_t adv;

		switch (op >> 6) {
		case 1: adv = op & 0x3f; goto advance;
		case 2:
			if (pg_cfi_uleb(&p, end, &u))
				return -EINVAL;
			pg_cfi_set(row, op & 0x3f, PG_REG_OFFSET,
				   pg_cfi_scale((int64_t)u, c->data_align));
			continue;
		case 3: reg = op & 0x3f; goto restore;
		}
		switch (op) {
		case PG_CFA_NOP: continue;
		case PG_CFA_GNU_ARGS_SIZE:
			/* Matters for landing pads only. */
			if (pg_cfi_uleb(&p, end, &u))
				return -EINVAL;
			continue;
		case PG_CFA_SET_LOC:
			if (pg_cfi_ptr(c->fde_enc, &p, end, 0, &loc))
				return -EINVAL;
			if (loc > target)
				return 0;
			continue;
		case PG_CFA_ADVANCE_LOC1:
			if (pg_cfi_u8(&p, end, &b))
				return -EINVAL;
			adv = b;
			goto advance;
		case PG_CFA_ADVANCE_LOC2: {
			uint16_t x;

			if (end - p < 2)
				return -EINVAL;
			memcpy(&x, p, 2);
			p += 2;
			adv = x;
			goto advance;
		}
		case PG_CFA_ADVANCE_LOC4: {
			uint32_t x;

			if (end - p < 4)
				return -EINVAL;
			memcpy(&x, p, 4);
			p += 4;
			adv = x;
			goto advance;
		}
		case PG_CFA_OFFSET_EXTENDED:
		case PG_CFA_GNU_NEGATIVE_OFFSET_EXTENDED:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_uleb(&p, end, &u))
				return -EINVAL;
			s = pg_cfi_scale((int64_t)u, c->data_align);
			pg_cfi_set(row, reg, PG_REG_OFFSET, op == PG_CFA_OFFSET_EXTENDED ? s : -s);
			continue;
		case PG_CFA_OFFSET_EXTENDED_SF:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_sleb(&p, end, &s))
				return -EINVAL;
			pg_cfi_set(row, reg, PG_REG_OFFSET, pg_cfi_scale(s, c->data_align));
			continue;
		case PG_CFA_RESTORE_EXTENDED:
			if (pg_cfi_uleb(&p, end, &reg))
				return -EINVAL;
			goto restore;
		case PG_CFA_UNDEFINED:
		case PG_CFA_SAME_VALUE:
			if (pg_cfi_uleb(&p, end, &reg))
				return -EINVAL;
			pg_cfi_set(row, reg, op == PG_CFA_UNDEFINED ? PG_REG_UNDEF : PG_REG_SAME,
				   0);
			continue;
		case PG_CFA_REGISTER:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_uleb(&p, end, &u))
				return -EINVAL;
			pg_cfi_set(row, reg, PG_REG_OTHER, 0);
			continue;
		case PG_CFA_VAL_OFFSET:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_uleb(&p, end, &u))
				return -EINVAL;
			pg_cfi_set(row, reg, PG_REG_OTHER, 0);
			continue;
		case PG_CFA_VAL_OFFSET_SF:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_sleb(&p, end, &s))
				return -EINVAL;
			pg_cfi_set(row, reg, PG_REG_OTHER, 0);
			continue;
		case PG_CFA_EXPRESSION:
		case PG_CFA_VAL_EXPRESSION:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_uleb(&p, end, &u) ||
			    u > (uint64_t)(end - p))
				return -EINVAL;
			p += u;
			pg_cfi_set(row, reg, PG_REG_OTHER, 0);
			continue;
		case PG_CFA_REMEMBER_STATE:
			/* GCC expects the CFA rule saved too, as libgcc does. */
			if (depth == PG_CFI_STATES)
				return -EINVAL;
			saved[depth++] = *row;
			continue;
		case PG_CFA_RESTORE_STATE:
			if (depth == 0)
				return -EINVAL;
			*row = saved[--depth];
			continue;
		case PG_CFA_DEF_CFA:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_uleb(&p, end, &u))
				return -EINVAL;
			row->cfa_reg = reg;
			row->cfa_off = (int64_t)u;
			row->cfa_expr = 0;
			continue;
		case PG_CFA_DEF_CFA_SF:
			if (pg_cfi_uleb(&p, end, &reg) || pg_cfi_sleb(&p, end, &s))
				return -EINVAL;
			row->cfa_reg = reg;
			row->cfa_off = pg_cfi_scale(s, c->data_align);
			row->cfa_expr = 0;
			continue;
		case PG_CFA_DEF_CFA_REGISTER:
			if (pg_cfi_uleb(&p, end, &reg))
				return -EINVAL;
			row->cfa_reg = reg;
			row->cfa_expr = 0;
			continue;
		case PG_CFA_DEF_CFA_OFFSET:
			if (pg_cfi_uleb(&p, end, &u))
				return -EINVAL;
			row->cfa_off = (int64_t)u;
			continue;
		case PG_CFA_DEF_CFA_OFFSET_SF:
			if (pg_cfi_sleb(&p, end, &s))
				return -EINVAL;
			row->cfa_off = pg_cfi_scale(s, c->data_align);
			continue;
		case PG_CFA_DEF_CFA_EXPRESSION:
			if (pg_cfi_uleb(&p, end, &u) || u > (uint64_t)(end - p))
				return -EINVAL;
			p += u;
			row->cfa_expr = 1;
			continue;
		default: return -EINVAL;
		}
	advance:
		loc += adv * c->code_align;
		if (loc > target)
			return 0;
		continue;
	restore:
		pg_cfi_restore(row, reg, init);
	}
	return 0;
}

/* ---- finding the FDE ---------------------------------------------------- */

#ifndef DLFO_EH_SEGMENT_TYPE
struct pg_unwind_phdr_find {
	uintptr_t pc;
	const uint8_t *hdr;
};

static int pg_unwind_phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct pg_unwind_phdr_find *f = arg;
	const ElfW(Phdr) *eh = NULL;
	int in = 0;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && f->pc - (info->dlpi_addr + ph->p_vaddr) < ph->p_memsz)
			in = 1;
		else if (ph->p_type == PT_GNU_EH_FRAME)
			eh = ph;
	}
	if (!in)
		return 0;
	if (eh)
		f->hdr = (const uint8_t *)(info->dlpi_addr + eh->p_vaddr);
	return 1;
}

#endif

/* The .eh_frame_hdr of the object holding pc, or NULL. */
static const uint8_t *pg_unwind_hdr(uintptr_t pc)
{
#ifdef DLFO_EH_SEGMENT_TYPE
	/* glibc >= 2.35: lock-free, what libgcc itself uses. */
	struct dl_find_object o;

	/* Lock-free and async-signal-safe: a pc in no object (JIT code) ends
	 * the walk rather than take the loader's lock inside a signal
	 * handler. */
	return _dl_find_object((void *)pc, &o) == 0 ? o.dlfo_eh_frame : NULL;
#else
	struct pg_unwind_phdr_find f = { pc, NULL };

	/* Takes the loader's lock; only on a cache miss. */
	dl_iterate_phdr(pg_unwind_phdr_cb, &f);
	return f.hdr;
#endif
}

/* The FDE covering pc in the object whose .eh_frame_hdr is hdr. */
static const uint8_t *pg_unwind_fde(const uint8_t *hdr, uintptr_t pc)
{
	const uint8_t *p = hdr + 4, *end = hdr + 4 + 16;
	uintptr_t eh_frame, count;

	/* The header's own length is not recorded: 4 bytes and two encoded
	 * values of at most 8 bytes each. */
	if (hdr[0] != 1 || hdr[1] == PG_PE_OMIT ||
	    pg_cfi_ptr(hdr[1], &p, end, (uintptr_t)hdr, &eh_frame))
		return NULL;
	if (hdr[2] != PG_PE_OMIT && hdr[3] == (PG_PE_DATAREL | PG_PE_SDATA4) &&
	    !pg_cfi_ptr(hdr[2], &p, end, (uintptr_t)hdr, &count)) {
		/* Sorted (initial location, FDE) pairs, hdr-relative int32s. */
		const int32_t *t = (const int32_t *)(const void *)p;
		uintptr_t lo = 0, hi = count;

		if (count == 0 || ((uintptr_t)t & 3))
			return NULL;
		while (hi - lo > 1) {
			uintptr_t mid = lo + (hi - lo) / 2;

			if ((uintptr_t)hdr + (uintptr_t)(intptr_t)t[2 * mid] <= pc)
				lo = mid;
			else
				hi = mid;
		}
		if ((uintptr_t)hdr + (uintptr_t)(intptr_t)t[2 * lo] > pc)
			return NULL;
		return hdr + t[2 * lo + 1];
	}
	/* No search table: walk .eh_frame to its zero terminator. */
	for (const uint8_t *e = (const uint8_t *)eh_frame;;) {
		const uint8_t *body, *eend, *q;
		uint32_t cie_off;
		struct pg_cfi_cie c;
		uintptr_t begin, range;

		if (pg_cfi_entry(e, &body, &eend))
			return NULL;
		memcpy(&cie_off, body, 4);
		q = body + 4;
		if (cie_off && !pg_cfi_parse_cie(body - cie_off, &c) &&
		    !pg_cfi_ptr(c.fde_enc, &q, eend, 0, &begin) &&
		    !pg_cfi_ptr(c.fde_enc & 0x0f, &q, eend, 0, &range) && pc - begin < range)
			return e;
		e = eend;
	}
}

int pg_unwind_function(uintptr_t pc, uintptr_t *begin, uintptr_t *size)
{
	const uint8_t *hdr = pg_unwind_hdr(pc), *fde, *body, *end, *p;
	uint32_t cie_off;
	struct pg_cfi_cie c;
	uintptr_t b, r;

	fde = hdr ? pg_unwind_fde(hdr, pc) : NULL;
	if (!fde || pg_cfi_entry(fde, &body, &end) || end - body < 4)
		return -1;
	memcpy(&cie_off, body, 4);
	p = body + 4;
	if (!cie_off || pg_cfi_parse_cie(body - cie_off, &c) ||
	    pg_cfi_ptr(c.fde_enc, &p, end, 0, &b) || pg_cfi_ptr(c.fde_enc & 0x0f, &p, end, 0, &r) ||
	    pc - b >= r)
		return -1;
	*begin = b;
	*size = r;
	return 0;
}

/* The rule for return address pc, computed from the CFI. */
static struct pg_unwind_rule pg_unwind_rule_compute(uintptr_t pc)
{
	struct pg_unwind_rule stop = { 0, 0, 0, PG_UNWIND_STOP }, r = { 0 };
	/* A return address may be one past its function (a call to a noreturn
	 * function ends it): the call is at pc - 1. */
	uintptr_t target = pc - 1, begin, range;
	const uint8_t *hdr, *fde, *body, *end, *p;
	uint32_t cie_off;
	struct pg_cfi_cie c;
	struct pg_cfi_row init = { .cfa_reg = ~(uint64_t)0 }, row;

	hdr = pg_unwind_hdr(target);
	if (!hdr)
		return stop;
	fde = pg_unwind_fde(hdr, target);
	if (!fde || pg_cfi_entry(fde, &body, &end) || end - body < 4)
		return stop;
	memcpy(&cie_off, body, 4);
	p = body + 4;
	if (!cie_off || pg_cfi_parse_cie(body - cie_off, &c) ||
	    pg_cfi_ptr(c.fde_enc, &p, end, 0, &begin) ||
	    pg_cfi_ptr(c.fde_enc & 0x0f, &p, end, 0, &range) || target - begin >= range)
		return stop;
	/* Signal frames (__restore_rt): the caller's registers are in a
	 * ucontext, reached by expressions; the walk ends here. */
	if (c.signal) {
		stop.flags |= PG_UNWIND_SIGNAL;
		return stop;
	}
	if (c.has_z) {
		uint64_t alen;

		if (pg_cfi_uleb(&p, end, &alen) || alen > (uint64_t)(end - p))
			return stop;
		p += alen;
	}
	init.rbp.how = PG_REG_SAME;
	init.ra.how = PG_REG_SAME;
	if (pg_cfi_run(&c, c.insn, c.end, begin, UINTPTR_MAX, &init, NULL))
		return stop;
	row = init;
	if (pg_cfi_run(&c, p, end, begin, target, &row, &init))
		return stop;

	if (row.cfa_expr || (row.cfa_reg != PG_DW_RSP && row.cfa_reg != PG_DW_RBP) ||
	    row.cfa_off < INT32_MIN || row.cfa_off > INT32_MAX)
		return stop;
	r.cfa_off = (int32_t)row.cfa_off;
	if (row.cfa_reg == PG_DW_RBP)
		r.flags |= PG_UNWIND_CFA_RBP;
	/* Undefined: the outermost frame (_start, clone3 mark it so). */
	if (row.ra.how != PG_REG_OFFSET || row.ra.off < INT8_MIN || row.ra.off > INT8_MAX ||
	    (row.ra.off & 7))
		return stop;
	r.ra_off = (int8_t)row.ra.off;
	if (row.rbp.how == PG_REG_OFFSET && row.rbp.off >= INT16_MIN && row.rbp.off <= INT16_MAX &&
	    !(row.rbp.off & 7)) {
		r.flags |= PG_UNWIND_RBP_SAVED;
		r.rbp_off = (int16_t)row.rbp.off;
	} else if (row.rbp.how != PG_REG_SAME) {
		r.flags |= PG_UNWIND_RBP_LOST;
	}
	return r;
}

/* ---- the cache and the walk --------------------------------------------- */

static inline uint32_t pg_unwind_hash(uintptr_t pc)
{
	return (uint32_t)((pc * 0x9e3779b97f4a7c15ull) >> (64 - PG_UNWIND_SLOT_BITS));
}

static __attribute__((noinline, cold)) struct pg_unwind_rule pg_unwind_miss(uintptr_t pc)
{
	struct pg_unwind_rule r = pg_unwind_rule_compute(pc);
	uint32_t i = pg_unwind_hash(pc);

	for (int n = 0; n < PG_UNWIND_PROBES; n++, i = (i + 1) & (PG_UNWIND_SLOTS - 1)) {
		struct pg_unwind_slot *s = &pg_unwind_cache[i];
		uintptr_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);

		if (k == 0 && __atomic_compare_exchange_n(&s->key, &k, PG_UNWIND_BUSY, 0,
							  __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
			s->rule = r;
			__atomic_store_n(&s->key, pc, __ATOMIC_RELEASE);
			break;
		}
		/* Another thread got there first with the same answer. */
		if (k == pc)
			break;
	}
	/* Probe window full: not cached, still right. */
	return r;
}

static inline struct pg_unwind_rule pg_unwind_rule_get(uintptr_t pc)
{
	uint32_t i = pg_unwind_hash(pc);

	for (int n = 0; n < PG_UNWIND_PROBES; n++, i = (i + 1) & (PG_UNWIND_SLOTS - 1)) {
		const struct pg_unwind_slot *s = &pg_unwind_cache[i];
		uintptr_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);

		if (__builtin_expect(k == pc, 1))
			return s->rule;
		if (k == 0)
			break;
	}
	return pg_unwind_miss(pc);
}

/* Highest address a walk starting at sp may read below. A glibc thread's
 * descriptor (pthread_self()) sits right above its stack, user-supplied
 * stacks included; the main thread's descriptor is elsewhere and its stack
 * ends at __libc_stack_end. Anything else (a coroutine's stack) gets only
 * the fixed bound. */
static inline uintptr_t pg_unwind_top(uintptr_t sp)
{
	uintptr_t self = (uintptr_t)pthread_self();
	uintptr_t main_end = (uintptr_t)__libc_stack_end;
	uintptr_t lim = sp + PG_UNWIND_MAX_STACK, top = lim;

	if (sp < self)
		top = self;
	else if (sp < main_end)
		top = main_end;
	return top < lim ? top : lim;
}

/* Mapped memory only (SPEC section 7): a bound from pthread_self() or
 * __libc_stack_end says where the thread's stack ends, not that the memory
 * between here and there is mapped. A coroutine's stack may lie below the
 * thread's descriptor with unmapped pages above it. So every page a walk
 * reads is known readable: the range [safe_lo, safe_hi) of this thread's
 * own stack, checked once page by page up to its top and cached (a thread's
 * stack stays mapped while it runs); elsewhere (a coroutine, an alternate
 * signal stack) each walk checks the pages it reaches, at most
 * PG_UNWIND_PROBES_MAX of them. The check is pg_mem_readable8(): one
 * system call, no side effect. */
#define PG_UNWIND_PAGE ((uintptr_t)4096)
#define PG_UNWIND_OWN_MAX ((uintptr_t)16 << 20)
#define PG_UNWIND_PROBES_MAX 256
static __thread uintptr_t pg_unwind_safe_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t pg_unwind_safe_hi __attribute__((tls_model("initial-exec")));

/* Checks the pages [from, to) (page-aligned); returns the first that is not
 * readable, or to. */
static uintptr_t pg_unwind_check(uintptr_t from, uintptr_t to, int *budget)
{
	for (uintptr_t p = from; p < to; p += PG_UNWIND_PAGE) {
		if (budget && (*budget)-- <= 0)
			return p;
		if (!pg_mem_readable8((const void *)p))
			return p;
	}
	return to;
}

/* The end of what a walk from sp may read without checking. */
static uintptr_t pg_unwind_readable(uintptr_t sp, uintptr_t top)
{
	uintptr_t page = sp & ~(PG_UNWIND_PAGE - 1), top_page, got;

	if (sp >= pg_unwind_safe_lo && sp < pg_unwind_safe_hi)
		return pg_unwind_safe_hi;
	/* The page holding sp is mapped: we are running on it. */
	if (top - sp > PG_UNWIND_OWN_MAX ||
	    (top != (uintptr_t)pthread_self() && top != (uintptr_t)__libc_stack_end))
		return page + PG_UNWIND_PAGE;
	/* Perhaps this thread's own stack: check it up to its top, once. */
	top_page = (top - 1) & ~(PG_UNWIND_PAGE - 1);
	if (pg_unwind_safe_hi == top && pg_unwind_safe_lo > page)
		got = pg_unwind_check(page + PG_UNWIND_PAGE, pg_unwind_safe_lo, NULL);
	else
		got = pg_unwind_check(page + PG_UNWIND_PAGE, top_page + PG_UNWIND_PAGE, NULL);
	if (got < (pg_unwind_safe_hi == top ? pg_unwind_safe_lo : top_page + PG_UNWIND_PAGE))
		return got; /* not our stack all the way up: a coroutine's */
	pg_unwind_safe_lo = page;
	pg_unwind_safe_hi = top;
	return top;
}

/* Return addresses in [skip_lo, skip_hi) are walked through but not kept
 * (the library's own frames): the caller asks for exactly the frames it
 * wants, and no headroom is unwound in vain. */
static uintptr_t skip_lo, skip_hi;

void pg_unwind_skip(uintptr_t lo, uintptr_t hi)
{
	skip_lo = lo;
	skip_hi = hi > lo ? hi : lo;
}

/* The captures this thread made last (SPEC: "a frame whose saved return
 * address and CFA match the previous capture of this thread need not be
 * re-derived from CFI"): a capture from the same stack pointer, with the
 * same frame pointer where the walk used it, whose every word the walk read
 * (return addresses, saved frame pointers) still holds what it held, is the
 * same capture, frame for frame: the walk is a function of the start state
 * and those words. Kept only when every word lay in this thread's own
 * stack, checked readable (it stays mapped while the thread lives); a
 * signal handler that interrupts a capture neither uses nor changes it. */
#define PG_UNWIND_CACHED_WALK 24 /* frames walked, kept or skipped */
#define PG_UNWIND_CACHED_READS (2 * PG_UNWIND_CACHED_WALK + 1)
struct pg_unwind_cached {
	uintptr_t sp, fp;
	int valid, max, n, nreads, uses_fp;
	uint32_t tag;
	uintptr_t out[PG_UNWIND_CACHED_WALK];
	struct {
		uintptr_t addr, val;
	} read[PG_UNWIND_CACHED_READS];
};
/* Enough for the call sites of a request loop (socket, accept, two
 * closes...) taking turns. */
#define PG_UNWIND_MINE 8
static __thread struct pg_unwind_cached pg_unwind_mine[PG_UNWIND_MINE]
    __attribute__((tls_model("initial-exec")));
static __thread int pg_unwind_busy __attribute__((tls_model("initial-exec")));
static __thread int pg_unwind_victim __attribute__((tls_model("initial-exec")));

static int pg_unwind_from_cache(uintptr_t *out, int max, uintptr_t sp, uintptr_t fp,
				struct pg_unwind_trace *t)
{
	for (int e = 0; e < PG_UNWIND_MINE; e++) {
		const struct pg_unwind_cached *c = &pg_unwind_mine[e];
		int k;

		if (!c->valid || c->sp != sp || c->max != max || (c->uses_fp && c->fp != fp))
			continue;
		/* Four at a time: the common case is every word unchanged. */
		for (k = 0; k + 4 <= c->nreads; k += 4)
			if (((*(const uintptr_t *)c->read[k].addr ^ c->read[k].val) |
			     (*(const uintptr_t *)c->read[k + 1].addr ^ c->read[k + 1].val) |
			     (*(const uintptr_t *)c->read[k + 2].addr ^ c->read[k + 2].val) |
			     (*(const uintptr_t *)c->read[k + 3].addr ^ c->read[k + 3].val)) != 0)
				break;
		for (; k < c->nreads; k++)
			if (*(const uintptr_t *)c->read[k].addr != c->read[k].val)
				break;
		if (k < c->nreads)
			continue;
		/* With a tag, the caller needs nothing more. */
		if (!c->tag)
			memcpy(out, c->out, (size_t)c->n * sizeof(*out));
		t->tag = c->tag;
		t->slot = e;
		t->signal = 0;
		return c->n;
	}
	return -1;
}

void pg_unwind_set_tag(const struct pg_unwind_trace *t, uint32_t tag)
{
	if (t->slot >= 0 && t->slot < PG_UNWIND_MINE && pg_unwind_busy == 0)
		pg_unwind_mine[t->slot].tag = tag;
}

/* Called by the entries (below) with their own rsp at entry, where the
 * return address into their caller sits, and rbp as their caller left it;
 * t (NULL from pg_unwind_backtrace) asks for the cache and the trace. */
int pg_unwind_walk(uintptr_t *out, int max, uintptr_t sp, uintptr_t fp, struct pg_unwind_trace *t);

__attribute__((visibility("hidden"), used, externally_visible, no_sanitize_address)) int
pg_unwind_walk(uintptr_t *out, int max, uintptr_t sp, uintptr_t fp, struct pg_unwind_trace *t)
{
	uintptr_t top, lim, rsp = sp + 8, pc, cfa, a, fp_at = 0;
	int n = 0, fp_ok = 1, fp_reg = 1, budget = PG_UNWIND_PROBES_MAX, walked = 0;
	struct pg_unwind_cached *rec = NULL;
	int nested = ++pg_unwind_busy > 1;

	if (t) {
		t->tag = 0;
		t->slot = -1;
		t->signal = 0;
	}
	if (max <= 0) {
		pg_unwind_busy--;
		return 0;
	}
	/* A cached capture was stored from this thread's own stack, which
	 * stays checked readable: try it before anything else. */
	if (t && !nested) {
		int hit = pg_unwind_from_cache(out, max, sp, fp, t);
		if (hit >= 0) {
			pg_unwind_busy--;
			return hit;
		}
	}
	top = pg_unwind_top(sp);
	lim = pg_unwind_readable(sp, top);
	if (t && !nested && sp >= pg_unwind_safe_lo && sp < pg_unwind_safe_hi) {
		rec = &pg_unwind_mine[pg_unwind_victim];
		rec->valid = 0;
		rec->nreads = 0;
		rec->uses_fp = 0;
	}
#define PG_UNWIND_READ(A, D)                                         \
	do {                                                         \
		(D) = *(const uintptr_t *)(A);                       \
		if (rec) {                                           \
			if (rec->nreads == PG_UNWIND_CACHED_READS) { \
				rec = NULL;                          \
			} else {                                     \
				rec->read[rec->nreads].addr = (A);   \
				rec->read[rec->nreads++].val = (D);  \
			}                                            \
		}                                                    \
	} while (0)
	PG_UNWIND_READ(sp, pc);
	/* Reads: only [rsp, top), 8-aligned, below lim or in pages checked
	 * on the way; each CFA above the last. */
	while (pc != 0) {
		struct pg_unwind_rule r;

		/* One compare: pc outside [skip_lo, skip_hi), in unsigned. */
		if (pc - skip_lo >= skip_hi - skip_lo) {
			out[n++] = pc;
			if (n == max)
				break;
		}
		if (++walked > PG_UNWIND_CACHED_WALK)
			rec = NULL;
		r = pg_unwind_rule_get(pc);
		if (r.flags & PG_UNWIND_STOP) {
			if (t && (r.flags & PG_UNWIND_SIGNAL))
				t->signal = 1;
			break;
		}
		if (r.flags & PG_UNWIND_CFA_RBP) {
			if (!fp_ok)
				break;
			/* The walk now depends on this frame pointer: the
			 * caller's register, or the word it was read from. */
			if (rec && fp_reg) {
				rec->uses_fp = 1;
			} else if (rec && fp_at) {
				if (rec->nreads == PG_UNWIND_CACHED_READS) {
					rec = NULL;
				} else {
					rec->read[rec->nreads].addr = fp_at;
					rec->read[rec->nreads++].val = fp;
					fp_at = 0;
				}
			}
			cfa = fp + (uintptr_t)(intptr_t)r.cfa_off;
		} else {
			cfa = rsp + (uintptr_t)(intptr_t)r.cfa_off;
		}
		if (cfa <= rsp || cfa > top || (cfa & 7))
			break;
		a = cfa + (uintptr_t)(intptr_t)r.ra_off;
		if (a < rsp || a > top - 8)
			break;
		if (PG_UNLIKELY(a + 8 > lim)) {
			rec = NULL; /* beyond the thread's own checked stack */
			lim = pg_unwind_check(
			    lim, (a + 8 + PG_UNWIND_PAGE - 1) & ~(PG_UNWIND_PAGE - 1), &budget);
			if (a + 8 > lim)
				break;
		}
		PG_UNWIND_READ(a, pc);
		if (r.flags & PG_UNWIND_RBP_SAVED) {
			a = cfa + (uintptr_t)(intptr_t)r.rbp_off;
			if (a < rsp || a > top - 8)
				break;
			if (PG_UNLIKELY(a + 8 > lim)) {
				rec = NULL;
				lim = pg_unwind_check(
				    lim, (a + 8 + PG_UNWIND_PAGE - 1) & ~(PG_UNWIND_PAGE - 1),
				    &budget);
				if (a + 8 > lim)
					break;
			}
			/* Kept for the cache only if a frame uses it: a saved
			 * rbp of code without frame pointers is any value. */
			fp = *(const uintptr_t *)a;
			fp_at = a;
			fp_reg = 0;
		} else if (r.flags & PG_UNWIND_RBP_LOST) {
			fp_ok = 0;
		}
		rsp = cfa;
	}
#undef PG_UNWIND_READ
	if (rec && n <= PG_UNWIND_CACHED_WALK && !t->signal) {
		rec->sp = sp;
		rec->fp = fp;
		rec->max = max;
		rec->n = n;
		rec->tag = 0;
		memcpy(rec->out, out, (size_t)n * sizeof(*out));
		rec->valid = 1;
		t->slot = pg_unwind_victim;
		pg_unwind_victim = (pg_unwind_victim + 1) % PG_UNWIND_MINE;
	}
	pg_unwind_busy--;
	return n;
}

int pg_unwind_capture_from(uintptr_t *out, int max, void *frame, struct pg_unwind_trace *t)
{
	/* [frame] is the caller's saved rbp, [frame + 8] its return address. */
	return pg_unwind_walk(out, max, (uintptr_t)frame + 8, *(const uintptr_t *)frame, t);
}

/* The entries: tail jumps, so that they have no frame of their own and the
 * walk starts from exactly the caller's registers (rsp + 8, rbp). endbr64
 * is a no-op unless the process runs with CET indirect-branch tracking. */
__asm__(".pushsection .text\n"
	".globl pg_unwind_backtrace\n"
	".hidden pg_unwind_backtrace\n"
	".type pg_unwind_backtrace, @function\n"
	".p2align 4\n"
	"pg_unwind_backtrace:\n"
	".cfi_startproc\n"
	"\tendbr64\n"
	"\tmovq %rsp, %rdx\n"
	"\tmovq %rbp, %rcx\n"
	"\txorl %r8d, %r8d\n"
	"\tjmp pg_unwind_walk\n"
	".cfi_endproc\n"
	".size pg_unwind_backtrace, .-pg_unwind_backtrace\n"
	".globl pg_unwind_capture\n"
	".hidden pg_unwind_capture\n"
	".type pg_unwind_capture, @function\n"
	".p2align 4\n"
	"pg_unwind_capture:\n"
	".cfi_startproc\n"
	"\tendbr64\n"
	"\tmovq %rdx, %r8\n"
	"\tmovq %rsp, %rdx\n"
	"\tmovq %rbp, %rcx\n"
	"\tjmp pg_unwind_walk\n"
	".cfi_endproc\n"
	".size pg_unwind_capture, .-pg_unwind_capture\n"
	".popsection\n");

void pg_unwind_init(void)
{
	static int done;
	uintptr_t warm[2];

	if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		return;
	/* Binds our PLT slots (pthread_self, _dl_find_object,
	 * dl_iterate_phdr) now rather than inside the first capture, and
	 * checks the lookup on our own code. */
	(void)pg_unwind_hdr((uintptr_t)&pg_unwind_walk);
	pg_unwind_backtrace(warm, 2);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}
