"""bench/calls.py: user-space instructions the library adds per call of
the syscall() and recvmsg() wrappers, counted by callgrind (build/bench/calls;
stack_depth=16). Each mode runs with N1 and N2 calls, bare and under the
library; (I(N2) - I(N1)) / (N2 - N1) is one call's cost.

    bench/calls.py              (make bench runs it; also by hand)
    PG_BENCH_QUICK=1            fewer calls

Prints figures only; exit 0 unless valgrind could not run.
"""
import os
import subprocess
import sys
import tempfile

import cgcount

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALLS = os.path.join(ROOT, "build", "bench", "calls")
LIB = cgcount.LIB
N1, N2 = (200, 600) if os.environ.get("PG_BENCH_QUICK") == "1" else (500, 2500)
MODES = [
    ("getppid", "syscall(SYS_getppid): a number passed on"),
    ("close", "socket() + syscall(SYS_close)"),
    ("recvmsg", "recvmsg, no control data"),
    ("scm", "sendmsg + recvmsg of a socket (SCM_RIGHTS) + close"),
]


def count(mode, n, lib, tmp):
    return cgcount.total([CALLS, mode, str(n)], lib,
                         "stack_depth=16 report_at_exit=0 report_signal=0", tmp,
                         "%s.%d.%d" % (mode, n, lib))


def main():
    if not os.path.exists(CALLS) or not os.path.exists(LIB):
        print("calls: build/bench/calls or the library is not built: skipped")
        return 0
    if not cgcount.have_valgrind():
        print("calls: valgrind is not installed (make deps installs it): skipped")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="pgcalls.") as tmp:
        try:
            for mode, what in MODES:
                per = [(count(mode, N2, lib, tmp) - count(mode, N1, lib, tmp)) / float(N2 - N1)
                       for lib in (0, 1)]
                rows.append((what, per[0], per[1]))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print("calls: %s" % e)
            return 1
    print("Instructions per call of the syscall() and recvmsg() wrappers (callgrind, user "
          "space, stack_depth=16; %d - %d calls)" % (N2, N1))
    print("%-52s %10s %10s %10s" % ("", "bare", "library", "added"))
    for what, bare, lib in rows:
        print("%-52s %10.0f %10.0f %10.0f" % (what, bare, lib, lib - bare))
    return 0


if __name__ == "__main__":
    sys.exit(main())
