"""tests/py/app.py: a Python service with two leaks in two functions of
two files (svc/db.py, svc/cache.py), sockets closed properly (svc/ok.py),
and a listener. Prints "ready" when its sockets are made, then waits for a
line on stdin (or its end) and exits normally.
  python3 tests/py/app.py [--thread]
--thread: the leaks are made in a second thread while the main thread
holds the GIL, spinning in pure Python."""
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svc import cache, db, ok  # noqa: E402

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
port = listener.getsockname()[1]
keep = []


def work():
    ok.fetch(port)
    for _ in range(3):
        keep.append(db.connect_backend(port))
    keep.append(cache.open_cache())


def main():
    if "--thread" in sys.argv:
        done = threading.Event()
        t = threading.Thread(target=lambda: (work(), done.set()))
        t.start()
        n = 0
        while not done.is_set() and n < 50_000_000:  # the GIL, held in Python
            n += 1
        t.join(30)
    else:
        work()
    print("ready", flush=True)
    sys.stdin.readline()


main()
