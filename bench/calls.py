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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALLS = os.path.join(ROOT, "build", "bench", "calls")
LIB = os.environ.get("PG_BENCH_LIB") or os.path.join(ROOT, "build", "libportguard.so")
N1, N2 = (200, 600) if os.environ.get("PG_BENCH_QUICK") == "1" else (500, 2500)
MODES = [
    ("getppid", "syscall(SYS_getppid): a number passed on"),
    ("close", "socket() + syscall(SYS_close)"),
    ("recvmsg", "recvmsg, no control data"),
    ("scm", "sendmsg + recvmsg of a socket (SCM_RIGHTS) + close"),
]


def count(mode, n, lib, tmp):
    out = os.path.join(tmp, "cg.%s.%d.%d" % (mode, n, lib))
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "PORTGUARD_OPTIONS"):
        env.pop(k, None)
    if lib:
        env["LD_PRELOAD"] = LIB
        env["PORTGUARD_OPTIONS"] = "stack_depth=16 report_at_exit=0 report_signal=0"
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, CALLS, mode, str(n)]
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError("callgrind failed: %s\n%s" % (" ".join(argv), r.stderr[-2000:]))
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + out)


def main():
    if not os.path.exists(CALLS) or not os.path.exists(LIB):
        print("calls: build/bench/calls or the library is not built: skipped")
        return 0
    if subprocess.run(["sh", "-c", "command -v valgrind >/dev/null"]).returncode:
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
