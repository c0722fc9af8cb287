"""bench/pyframes.py: what one more frame on the stack costs the library at
each socket()+close() pair, for a Python frame (read from CPython's memory,
shim/python.c) against a C frame (the CFI unwinder, shim/unwind.c), counted
by callgrind (user-space instructions: repeatable where wall time is not).

Python: the real interpreter (pyenv's CPython 3.11 when there is one, else
Debian's /usr/bin/python3.11) runs socket.socket().close() N times at the
bottom of D nested Python calls. C: build/bench/pair -D D. Each at two
depths and two counts, with and without the library (stack_depth=64, so
every frame is walked), so start-up, the first captures and the exit report
cancel out:

    per frame = ((I(D2,N2) - I(D2,N1)) - (I(D1,N2) - I(D1,N1))) / ((N2-N1) (D2-D1))

and the library's part is that under it minus that without it.

    bench/pyframes.py            (make bench runs it; also by hand)
    PG_BENCH_QUICK=1             fewer pairs

Prints figures only; exit 0 unless valgrind could not run.
"""
import glob
import os
import subprocess
import sys
import tempfile

import cgcount

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIR = os.path.join(ROOT, "build", "bench", "pair")
LIB = cgcount.LIB
QUICK = os.environ.get("PG_BENCH_QUICK") == "1"
N1, N2 = (100, 300) if QUICK else (200, 600)
D1, D2 = 8, 40
SCRIPT = r"""
import socket, sys
def nest(d, n):
    if d > 0:
        return nest(d - 1, n)
    for _ in range(n):
        socket.socket().close()
nest(int(sys.argv[1]), int(sys.argv[2]))
"""


def interpreter():
    for p in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11.*/bin/python3.11"))):
        return p
    return "/usr/bin/python3.11" if os.access("/usr/bin/python3.11", os.X_OK) else None


def count(argv, lib, tmp, tag):
    return cgcount.total(argv, lib, "stack_depth=64 report_at_exit=0 report_signal=0", tmp, tag)


def per_frame(make_argv, lib, tmp, tag):
    i = {}
    for d in (D1, D2):
        for n in (N1, N2):
            i[d, n] = count(make_argv(d, n), lib, tmp, "%s.%d.%d.%d" % (tag, lib, d, n))
    pair = lambda d: (i[d, N2] - i[d, N1]) / float(N2 - N1)
    return (pair(D2) - pair(D1)) / (D2 - D1), pair(D1), pair(D2)


def main():
    py = interpreter()
    if not os.path.exists(PAIR) or not os.path.exists(LIB):
        print("pyframes: build/bench/pair or the library is not built: skipped")
        return 0
    if not cgcount.have_valgrind():
        print("pyframes: valgrind is not installed (make deps installs it): skipped")
        return 0
    if not py:
        print("pyframes: no CPython 3.11 on this machine: skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="pgpy.") as tmp:
        script = os.path.join(tmp, "nest.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        pyargv = lambda d, n: [py, script, str(d), str(n)]
        cargv = lambda d, n: [PAIR, "-n", str(n), "-w", "0", "-D", str(d)]
        try:
            res = {}
            for tag, mk in (("python", pyargv), ("c", cargv)):
                res[tag] = [per_frame(mk, lib, tmp, tag) for lib in (0, 1)]
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print("pyframes: %s" % e)
            return 1
    print("Instructions per socket()+close() pair, per frame of stack depth (callgrind, "
          "stack_depth=64; depths %d and %d, %d - %d pairs; %s)" % (D1, D2, N2, N1, py))
    print("%-34s %12s %12s %14s" % ("", "bare", "library", "library adds"))
    for tag, name in (("python", "one more Python frame"), ("c", "one more C frame")):
        bare, lib = res[tag][0][0], res[tag][1][0]
        print("%-34s %12.1f %12.1f %14.1f" % (name, bare, lib, lib - bare))
    addpy = res["python"][1][0] - res["python"][0][0]
    addc = res["c"][1][0] - res["c"][0][0]
    print("%-34s %12.0f %12.0f %14.0f" % ("python pair at depth %d (total)" % D1,
                                          res["python"][0][1], res["python"][1][1],
                                          res["python"][1][1] - res["python"][0][1]))
    print("target: a Python frame costs no more than a C frame: %s (%.1f vs %.1f)" %
          ("met" if addpy <= addc else "missed", addpy, addc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
