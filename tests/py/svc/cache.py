"""A cache client's datagram socket, detached from its object: its
descriptor stays open after the object is gone (leak two)."""
import socket


def open_cache():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # LEAK-CACHE
    return u.detach()
