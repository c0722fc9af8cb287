"""bench/fetch.py: the client of the `real` workload.

Fetches http://127.0.0.1:PORT/ COUNT times with urllib, one connection per
fetch, checks that every page has BYTES bytes (when given), and exits 0. bench/run times the whole
process (interpreter start-up included) with and without the library and
under valgrind.

    python3 bench/fetch.py PORT COUNT [BYTES]
"""
import sys
import urllib.request


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    want = int(sys.argv[3]) if len(sys.argv) > 3 else None
    url = "http://127.0.0.1:%d/" % port
    for i in range(count):
        with urllib.request.urlopen(url, timeout=30) as r:
            got = len(r.read())
        if want is not None and got != want:
            print("fetch: page %d has %d bytes, expected %d" % (i, got, want), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
