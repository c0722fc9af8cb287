# Leaks three sockets on purpose: detach() keeps each descriptor open past
# interpreter shutdown. A fourth socket is closed properly.
import socket

for _ in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.detach()
ok = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
ok.close()
print("leaked three")
