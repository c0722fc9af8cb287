"""Sockets closed properly: close(), and a with block."""
import socket


def fetch(port):
    s = socket.create_connection(("127.0.0.1", port))  # CLOSED-CALL
    s.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:  # CLOSED-WITH
        u.bind(("127.0.0.1", 0))
