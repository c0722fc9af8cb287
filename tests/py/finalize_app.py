"""tests/py/finalize_app.py: sockets the program never closes, closed by
the interpreter's finalizer (SPEC section 2, "finalized"): one dropped (its
reference count), one in a reference cycle (the garbage collector), one
asyncio transport never closed (its __del__ closes the socket), one left
for the interpreter's shutdown; and sockets the program closes itself:
close(), a with block, detach() then os.close(), socket.close(fd). Prints
"ready" once the collector has run, then waits for a line on stdin (or its
end) and exits normally.
  python3 tests/py/finalize_app.py"""
import asyncio
import gc
import os
import socket
import sys


def dropped():
    s = socket.socket()  # FIN-DROP
    s.bind(("127.0.0.1", 0))


def cycle():
    s = socket.socket()  # FIN-CYCLE
    ring = [s]
    ring.append(ring)


def closed():
    s = socket.socket()  # OWN-CLOSE
    s.close()


def with_block():
    with socket.socket() as s:  # OWN-WITH
        s.bind(("127.0.0.1", 0))


def detached():
    s = socket.socket()  # OWN-DETACH
    os.close(s.detach())


def closed_by_number():
    s = socket.socket()  # OWN-FD
    socket.close(s.detach())


def left_for_shutdown():
    return socket.socket()  # FIN-SHUTDOWN


async def transport_dropped(port):
    loop = asyncio.get_running_loop()
    s = socket.socket()  # FIN-ASYNC
    s.setblocking(False)
    await loop.sock_connect(s, ("127.0.0.1", port))
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=s)
    # Never closed: once the loop holds it no more, asyncio's __del__
    # ("unclosed transport") closes the socket.
    transport.pause_reading()
    del transport
    gc.collect()


async def serve_once():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    await transport_dropped(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


dropped()
cycle()
gc.collect()
closed()
with_block()
detached()
closed_by_number()
asyncio.run(serve_once())
gc.collect()
kept = left_for_shutdown()
print("ready", flush=True)
sys.stdin.readline()
