"""tests/py/check_report.py REPORT_FILE KIND [REASON]: checks a portguard JSON
report (the first line whose reason is REASON, default any) of tests/py's
programs, prints one TAP line per check, exits 1 when one failed.
KIND: app (app.py: db.py leaked 3 from connect_backend, cache.py leaked 1
from open_cache, ok.py's closed sockets not listed), exit (app.py's exit
report: cache.py's detached descriptor leaked), asyncio (asyncio_app.py),
finalize and finalize-exit (finalize_app.py while it runs, and at exit)."""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
failed = 0


def say(ok, what):
    global failed
    print("%s - %s" % ("ok" if ok else "not ok", what))
    if not ok:
        failed += 1


def line_of(path, marker):
    with open(os.path.join(HERE, path)) as f:
        for i, text in enumerate(f, 1):
            if marker in text:
                return i
    raise SystemExit("no %s in %s" % (marker, path))


def report(path, reason):
    with open(path) as f:
        for text in f:
            text = text.strip()
            if not text.startswith("{"):
                continue
            j = json.loads(text)
            if "totals" in j and (reason is None or j.get("reason") == reason):
                return j
    raise SystemExit("no report (reason %s) in %s" % (reason, path))


def py_frames(site):
    return [f for f in site["frames"] if f.get("language") == "python"]


def site_with(rep, function, file_end):
    for s in rep["sites"]:
        for f in py_frames(s):
            if f.get("function") == function and f.get("file", "").endswith(file_end):
                return s, f
    return None, None


def expect_site(rep, function, file_end, marker, leaked):
    s, f = site_with(rep, function, file_end)
    say(s is not None, "a site with Python frame %s in %s" % (function, file_end))
    if not s:
        return None
    want = line_of(file_end, marker)
    say(f.get("line") == want, "  %s at line %d (got %s)" % (function, want, f.get("line")))
    say(s.get("leaked") == leaked, "  %d leaked there (got %s)" % (leaked, s.get("leaked")))
    say("addr" not in f and "module" not in f, "  the Python frame has no addr/module")
    # Innermost first: the socket module's C frame before the Python ones.
    first_py = next(i for i, x in enumerate(s["frames"]) if x.get("language") == "python")
    say(first_py > 0 and "addr" in s["frames"][0], "  C frames below the innermost Python frame kept")
    return s


def main():
    path, kind = sys.argv[1], sys.argv[2]
    rep = report(path, sys.argv[3] if len(sys.argv) > 3 else None)
    if kind == "app":
        a = expect_site(rep, "connect_backend", "svc/db.py", "LEAK-DB", 3)
        b = expect_site(rep, "open_cache", "svc/cache.py", "LEAK-CACHE", 1)
        say(a is not None and b is not None and a is not b, "two Python call sites, two sites")
        s, _ = site_with(rep, "fetch", "svc/ok.py")
        say(s is None, "sockets closed with close() and a with block are not listed")
        say(rep["totals"]["closed"] >= 2, "  and count as closed (%d)" % rep["totals"]["closed"])
        if a:
            names = [f.get("function") for f in py_frames(a)]
            say(names[-3:] == ["work", "main", "<module>"] or
                names[-2:] == ["work", "<lambda>"] or "work" in names,
                "  the callers follow, innermost first: %s" % names)
            say(not any(f.get("function") == "_PyEval_EvalFrameDefault" for f in a["frames"]),
                "  the interpreter's evaluation frames are not shown")
    elif kind == "exit":
        say(rep.get("reason") == "exit", "an exit report")
        expect_site(rep, "open_cache", "svc/cache.py", "LEAK-CACHE", 1)
    elif kind in ("finalize", "finalize-exit"):
        at_exit = kind == "finalize-exit"
        gone = ["FIN-DROP", "FIN-CYCLE", "FIN-ASYNC"]
        funcs = {"FIN-DROP": "dropped", "FIN-CYCLE": "cycle", "FIN-ASYNC": "transport_dropped",
                 "FIN-SHUTDOWN": "left_for_shutdown"}
        for m in gone + (["FIN-SHUTDOWN"] if at_exit else []):
            s = expect_site(rep, funcs[m], "finalize_app.py", m, 1 if at_exit else 0)
            if not s:
                continue
            socks = s.get("sockets", [])
            say(s.get("finalized") == 1 and s.get("open") == 0,
                "  %s: 1 finalized, 0 open (got %s, %s)" % (m, s.get("finalized"), s.get("open")))
            say(len(socks) == 1 and socks[0].get("closed_by") == "finalizer" and
                "fd" not in socks[0] and socks[0].get("leaked") is at_exit,
                "  %s: listed with closed_by finalizer, no fd, leaked %s: %s" %
                (m, at_exit, socks))
        if not at_exit:
            s = expect_site(rep, "left_for_shutdown", "finalize_app.py", "FIN-SHUTDOWN", 1)
            say(s is not None and s.get("open") == 1 and "finalized" not in s,
                "  still open while the program runs")
        for m, f in (("OWN-CLOSE", "closed"), ("OWN-WITH", "with_block"),
                     ("OWN-DETACH", "detached"), ("OWN-FD", "closed_by_number")):
            s, _ = site_with(rep, f, "finalize_app.py")
            say(s is None, "closed by the program (%s: %s) is not listed" % (m, f))
        t = rep["totals"]
        want = 4 if at_exit else 3
        say(t.get("finalized") == want, "totals.finalized %d (got %s)" % (want, t.get("finalized")))
        if at_exit:
            say(t.get("leaked") == 4 and t.get("open") == 0 and t["created"] == t["closed"],
                "at exit: 4 leaked, 0 open, every socket closed: %s" % t)
        else:
            say(t.get("leaked") == 1, "while running, only the open one counts as leaked: %s" % t)
    elif kind == "asyncio":
        expect_site(rep, "open_backend", "asyncio_app.py", "ASYNC-CONN", 1)
    sys.exit(1 if failed else 0)


main()
