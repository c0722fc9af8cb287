"""bench/cgcount.py: one program's user-space instruction count under
callgrind, bare or with the library preloaded (shared by bench/calls.py and
bench/pyframes.py)."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.environ.get("PG_BENCH_LIB") or os.path.join(ROOT, "build", "libportguard.so")


def have_valgrind():
    return subprocess.run(["sh", "-c", "command -v valgrind >/dev/null"]).returncode == 0


def total(argv, lib, options, tmp, tag):
    """Instructions of argv; lib: preload the library with PORTGUARD_OPTIONS
    options. PYTHONHASHSEED is fixed: the same dict layouts in every run."""
    out = os.path.join(tmp, "cg." + tag)
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    for k in ("LD_PRELOAD", "PORTGUARD_OPTIONS"):
        env.pop(k, None)
    if lib:
        env["LD_PRELOAD"] = LIB
        env["PORTGUARD_OPTIONS"] = options
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + argv,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError("callgrind failed: %s\n%s" % (" ".join(argv), r.stderr[-2000:]))
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + out)
