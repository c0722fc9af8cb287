"""A backend connection that is never closed (leak one)."""
import socket


def connect_backend(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # LEAK-DB
    s.connect(("127.0.0.1", port))
    return s
