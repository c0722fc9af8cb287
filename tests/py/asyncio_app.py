"""tests/py/asyncio_app.py: asyncio opens a connection (the socket made in
the event loop's create_connection, called from our coroutine) and keeps
it open. Prints "ready", waits for a line on stdin, exits."""
import asyncio
import socket
import sys


async def open_backend(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # ASYNC-CONN
    return writer


async def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    writer = await open_backend(listener.getsockname()[1])
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    writer.transport.abort()


asyncio.run(main())
