# Descriptor lifecycle in CPython, under the library (tests/test_lifecycle.c):
# os.dup (fcntl64 F_DUPFD_CLOEXEC inside CPython), os.dup2 onto an open socket,
# socket.fromfd, makefile + close, and a forked child that leaks one socket.
# Prints the child's pid; the parent leaks exactly two sockets.
import os
import socket

a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
d = os.dup(a.fileno())           # a second handle of a's socket
a.close()                        # a's socket stays open through d: leaked

b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
os.dup2(b.fileno(), c.fileno())  # c's socket closed by dup2; b's has two handles
b.close()
c.close()                        # b's socket closed at its last handle

e = socket.socket()
f = socket.fromfd(e.fileno(), socket.AF_INET, socket.SOCK_STREAM)  # a dup
e.close()
f.close()

g = socket.socket()
r = g.makefile("rb")
g.close()
r.close()

keep = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach()  # leaked (a bare fd:
# a socket object would be closed by interpreter shutdown, before the report)
pid = os.fork()
if pid == 0:
    socket.socket().detach()     # the child's own leak
    raise SystemExit(0)
os.waitpid(pid, 0)
print(pid)
