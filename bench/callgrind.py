"""bench/callgrind.py: user-space instructions the library adds per
socket()+close() pair, counted by callgrind (repeatable on a noisy machine,
unlike wall time), each call 32 frames below main (build/bench/pair -D 32).

Each variant runs twice, with N1 and N2 pairs; the difference divided by
N2 - N1 is the cost of one pair in the steady state (start-up, the first
captures and the report at exit cancel out). The same difference per
function (self cost, callgrind_annotate) is grouped into parts: the stack
walk, the call-site lookup, the registry, locks, allocation, clocks, and the
rest of the library (wrappers and glue).

    bench/callgrind.py            (make bench runs it; also by hand)
    PG_BENCH_QUICK=1              fewer pairs

Prints figures only; exit 0 unless valgrind could not run.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIR = os.path.join(ROOT, "build", "bench", "pair")
LIB = os.environ.get("PG_BENCH_LIB") or os.path.join(ROOT, "build", "libportguard.so")
QUICK = os.environ.get("PG_BENCH_QUICK") == "1"
N1, N2 = (200, 600) if QUICK else (500, 2500)
TARGETS = {0: 250, 16: 800}

# Function (self cost) -> part. First match wins; anything else in
# libportguard.so is "wrappers and glue", anything else elsewhere "other".
PARTS = [
    ("stack walk", r"^pg_unwind_|^pg_stack_capture|^pg_stack_"),
    ("site lookup", r"^pg_site_|site_find|cache_get|cache_put|hash_frames|^pg_sites_"),
    ("registry", r"^pg_registry_|^pg_fdtab_|^pg_sock_|attach|unlink_handle|settle_dropped|"
     r"new_entry|insert_entry|site_count_created|^count$|^pg_rec_"),
    ("locks", r"pthread_mutex_|__lll_lock|__lll_unlock|pthread_rwlock|pthread_spin|"
     r"pthread_setcancelstate"),
    ("allocation", r"malloc|^free$|_int_free|_int_malloc|tcache|calloc|realloc|^pg_alloc|^pg_free"),
    ("clocks", r"clock_gettime|__vdso|pg_now"),
]
ORDER = [p for p, _ in PARTS] + ["wrappers and glue", "other"]


def part_of(fn, obj):
    for name, rx in PARTS:
        if re.search(rx, fn):
            return name
    if obj and "libportguard" in obj:
        return "wrappers and glue"
    return "other"


def callgrind(depth, n, tmp):
    out = os.path.join(tmp, "cg.%s.%d" % (depth, n))
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "PORTGUARD_OPTIONS"):
        env.pop(k, None)
    if depth is not None:
        env["LD_PRELOAD"] = LIB
        env["PORTGUARD_OPTIONS"] = "stack_depth=%d report_at_exit=0 report_signal=0" % depth
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
            PAIR, "-n", str(n), "-w", "50", "-D", "32"]
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError("callgrind failed: %s\n%s" % (" ".join(argv), r.stderr[-2000:]))
    total = 0
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
    ann = subprocess.run(["callgrind_annotate", "--threshold=100", out],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    fns = {}
    rx = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?):(\S+)(?:\s+\[(.*)\])?\s*$")
    for line in ann.stdout.splitlines():
        m = rx.match(line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        fn, obj = m.group(3), m.group(4) or ""
        fns[(fn, obj)] = fns.get((fn, obj), 0) + ir
    return total, fns


def per_pair(depth, tmp):
    t1, f1 = callgrind(depth, N1, tmp)
    t2, f2 = callgrind(depth, N2, tmp)
    d = float(N2 - N1)
    parts = {}
    detail = []
    for key in set(f1) | set(f2):
        diff = f2.get(key, 0) - f1.get(key, 0)
        p = part_of(key[0], key[1])
        parts[p] = parts.get(p, 0) + diff / d
        detail.append((diff / d, key[0]))
    if os.environ.get("PG_CG_DETAIL"):
        detail.sort(reverse=True)
        print("stack_depth=%s, per pair:" % depth)
        for v, fn in detail[:25]:
            if abs(v) >= 1:
                print("  %8.1f %s" % (v, fn))
    return (t2 - t1) / d, parts


def main():
    if not os.path.exists(PAIR) or not os.path.exists(LIB):
        print("callgrind: build/bench/pair or the library is not built: skipped")
        return 0
    if subprocess.run(["sh", "-c", "command -v valgrind callgrind_annotate >/dev/null"]).returncode:
        print("callgrind: valgrind is not installed (make deps installs it): skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="pgcg.") as tmp:
        try:
            bare, bparts = per_pair(None, tmp)
            res = {d: per_pair(d, tmp) for d in (0, 16)}
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print("callgrind: %s" % e)
            return 1
    print("Instructions per socket()+close() pair (callgrind, user space; %d - %d pairs, "
          "each call 32 frames below main)" % (N2, N1))
    print("%-26s %12s %16s %16s" % ("", "bare", "stack_depth=0", "stack_depth=16"))
    print("%-26s %12.0f %16.0f %16.0f" % ("total per pair", bare, res[0][0], res[16][0]))
    print("%-26s %12s %16.0f %16.0f" % ("added by the library", "", res[0][0] - bare,
                                         res[16][0] - bare))
    for p in ORDER:
        a = [res[d][1].get(p, 0) - bparts.get(p, 0) for d in (0, 16)]
        if abs(a[0]) < 0.5 and abs(a[1]) < 0.5:
            continue
        print("%-26s %12s %16.0f %16.0f" % ("  " + p, "", a[0], a[1]))
    for d in (0, 16):
        added = res[d][0] - bare
        print("target at stack_depth=%d: <= %d added: %s (%.0f)" %
              (d, TARGETS[d], "met" if added <= TARGETS[d] else "missed", added))
    return 0


if __name__ == "__main__":
    sys.exit(main())
