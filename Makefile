# portguard: one non-recursive Makefile.
#   make          library, tool, examples
#   make test     every unit and integration test (tests/run)
#   make bench    the benchmarks (bench/run)
#   make install  PREFIX=/usr/local DESTDIR=

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
B       := build

WARN    := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wwrite-strings
CFLAGS  ?= -g -O2
CFLAGS  += -std=gnu11 $(WARN) -fstack-protector-strong -D_FORTIFY_SOURCE=2 -D_GNU_SOURCE -I.
# No link-time optimisation: it saves about 40 of the ~600 instructions a
# socket()+close() pair adds (bench/callgrind.py), and valgrind cannot name
# the functions it inlines across files, so tests/helgrind.supp (and a
# user's suppressions) would no longer match.
SHIM_LTO :=
# -fexceptions: pthread_cancel unwinds through the wrappers, which settle
# what they began (cleanup attributes) instead of leaving a lock held.
SHIM_CFLAGS := $(CFLAGS) -fPIC -fvisibility=hidden -fexceptions $(SHIM_LTO)
# The shim reaches libdw (symbols, lines) only through dlopen(RTLD_LOCAL)
# when a report asks for it, never by linking it: the host program's
# dependencies stay its own. (libunwind is installed for the benches'
# comparison, bench/unwind.c; the shim does not use it.)
SHIM_LIBS := -ldl -lpthread

# interpose.c is the only file that defines libc names; everything else also
# goes into a static archive so tests and benches reach it past
# -fvisibility=hidden without interposing on themselves.
# common/ is pure code that both the shim and the tool build.
COMMON_SRC := $(sort $(wildcard common/*.c))
SHIM_SRC   := $(sort $(filter-out shim/interpose.c,$(wildcard shim/*.c)) $(wildcard policy/*.c) $(COMMON_SRC))
SHIM_OBJ   := $(SHIM_SRC:%.c=$(B)/obj/%.o)
INTER_OBJ  := $(B)/obj/shim/interpose.o
TOOL_SRC   := $(sort $(wildcard tools/*.c) $(COMMON_SRC))
TOOL_OBJ   := $(TOOL_SRC:%.c=$(B)/obj/%.o)
EX_SRC     := $(sort $(wildcard examples/*.c))
EX_BIN     := $(EX_SRC:examples/%.c=$(B)/examples/%)
TEST_SRC   := $(sort $(wildcard tests/test_*.c))
TEST_BIN   := $(TEST_SRC:tests/%.c=$(B)/tests/%)
HELPER_SRC := $(sort $(wildcard tests/prog_*.c))
HELPER_BIN := $(HELPER_SRC:tests/%.c=$(B)/tests/%)
TESTLIB_SRC := $(sort $(wildcard tests/lib_*.c))
TESTLIB_BIN := $(TESTLIB_SRC:tests/lib_%.c=$(B)/tests/lib%.so)
BENCH_SRC  := $(sort $(wildcard bench/*.c))
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

# What a fresh Debian machine lacks: build and test dependencies.
DEB_PACKAGES := build-essential libcmocka-dev uthash-dev libjansson-dev libdw-dev \
                curl python3 python3-pytest iproute2 jq util-linux \
                clang libclang-rt-14-dev \
                libunwind-dev valgrind strace \
                nodejs memcached nginx-light postgresql postgresql-client \
                prometheus tmux chromium

.PHONY: all test bench clean install uninstall deps demo
all: $(B)/libportguard.so $(if $(TOOL_SRC),$(B)/portguard) $(EX_BIN)

# The page template is built into the tool (tools/html.c: .incbin).
$(B)/obj/tools/html.o: tools/report.html

$(B)/obj/%.o: %.c $(wildcard shim/*.h policy/*.h tools/*.h common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) -c $< -o $@

$(B)/libportguard.a: $(SHIM_OBJ)
	@rm -f $@
	ar rcs $@ $^

# -z now: every symbol bound at load, so a forked child does not bind (and
# copy a page of the GOT) on its first call of each function.
$(B)/libportguard.so: $(INTER_OBJ) $(B)/libportguard.a
	$(CC) $(CFLAGS) $(SHIM_LTO) -fPIC -fvisibility=hidden -fexceptions -shared -Wl,-z,defs -Wl,-z,now -Wl,--exclude-libs,ALL -o $@ \
	    $(INTER_OBJ) -Wl,--whole-archive $(B)/libportguard.a -Wl,--no-whole-archive $(SHIM_LIBS)

$(B)/portguard: $(TOOL_OBJ)
	$(CC) -o $@ $^ -ljansson

# Examples are what a user reads: built with -g and frame pointers left as the
# distribution's defaults, so reports show what a real build shows.
$(B)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lpthread

$(B)/tests/prog_%: tests/prog_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lpthread -ldl

# Tests build argv arrays from string literals: no -Wwrite-strings there.
# prog_sym_self includes the symbolizer's sources (a helper program is one file).
$(B)/tests/prog_sym_self: shim/symbolize.c shim/common.c shim/locks.c
$(B)/tests/prog_unwind_check: shim/unwind.c shim/unwind.h

$(B)/tests/lib%.so: tests/lib_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<

$(B)/tests/test_%: tests/test_%.c $(B)/libportguard.a tests/pgtest.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-write-strings -o $@ $< $(B)/libportguard.a -lcmocka -ljansson -lpthread -ldl

$(B)/bench/%: bench/%.c bench/bench.h $(B)/libportguard.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libportguard.a -lpthread -ldl -lm

# The policy parser's fuzz target (libFuzzer). make fuzz runs it for
# FUZZ_TIME seconds; make test replays the committed corpus once.
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 600
FUZZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. $(WARN) \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
POLICY_SRC := $(sort $(wildcard policy/*.c))

$(B)/fuzz/fuzz_policy: tests/fuzz_policy.c $(POLICY_SRC) $(wildcard policy/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz_policy.c $(POLICY_SRC)

.PHONY: fuzz fuzz-regress
fuzz: $(B)/fuzz/fuzz_policy
	@mkdir -p $(B)/fuzz/corpus
	$< -max_total_time=$(FUZZ_TIME) -print_final_stats=1 $(B)/fuzz/corpus tests/corpus/policy
fuzz-regress: $(B)/fuzz/fuzz_policy
	$< -runs=0 tests/corpus/policy

# The registry's threads test again under ThreadSanitizer (a preloaded TSan
# build cannot work: TSan's own start-up calls sigaction, which we wrap).
TSAN_OBJ := $(SHIM_SRC:%.c=$(B)/tsan/%.o)
$(B)/tsan/%.o: %.c $(wildcard shim/*.h policy/*.h common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 -fPIC -fsanitize=thread -c $< -o $@
$(B)/tsan/test_fdtab: tests/test_fdtab.c $(TSAN_OBJ)
	$(CC) $(CFLAGS) -O1 -Wno-write-strings -fsanitize=thread -o $@ $^ -lcmocka -ljansson -lpthread -ldl

test: all $(TEST_BIN) $(HELPER_BIN) $(TESTLIB_BIN) $(B)/tsan/test_fdtab $(B)/fuzz/fuzz_policy
	tests/run $(TEST_BIN) $(B)/tsan/test_fdtab

bench: all $(BENCH_BIN) $(HELPER_BIN)
	bench/run

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES)
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
	# playwright-core drives Debian's chromium in the tests of report --html;
	# it downloads no browser.
	cd tests/browser && npm ci --no-audit --no-fund

# The main job: a client that leaks two connections, run under the library.
demo: all
	LD_PRELOAD=$(CURDIR)/$(B)/libportguard.so $(B)/examples/leaky_client

# After an install to a prefix the dynamic linker searches (with ldconfig when
# DESTDIR is empty), LD_PRELOAD=libportguard.so works by bare name and
# portguard run finds ../lib/libportguard.so next to itself.
LIBDIR ?= $(PREFIX)/lib
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
MANPAGES := $(wildcard docs/*.1 docs/*.7)

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	install -m 0755 $(B)/libportguard.so $(DESTDIR)$(LIBDIR)/libportguard.so
	install -m 0755 $(B)/portguard $(DESTDIR)$(BINDIR)/portguard
	for m in $(MANPAGES); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/; done
	if [ -z "$(DESTDIR)" ]; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libportguard.so $(DESTDIR)$(BINDIR)/portguard
	for m in $(notdir $(MANPAGES)); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; done
	if [ -z "$(DESTDIR)" ]; then ldconfig; fi

clean:
	rm -rf $(B)
