"""A test suite that leaks, for tests/sh_python_frames.sh: run with
python3 -m pytest under portguard, its exit report names the test that
left its socket to the garbage collector, not the one that closed its own."""
import socket


def connect_and_forget():
    s = socket.socket()  # SUITE-LEAK
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_forgets_its_socket():
    assert connect_and_forget() > 0


def test_closes_its_socket():
    with socket.socket() as s:  # SUITE-OK
        s.bind(("127.0.0.1", 0))
        assert s.getsockname()[1] > 0
