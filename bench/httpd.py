"""bench/httpd.py: the local HTTP server of the `real` workload.

Serves one fixed page (4 KiB of HTML) on 127.0.0.1, on an ephemeral port
(or PORT), one request at a time; prints "port N bytes M" on stdout when it listens.
bench/run starts it without LD_PRELOAD: only the client is measured.

    python3 bench/httpd.py [PORT]
"""
import http.server
import sys

PAGE = (b"<!doctype html><html><head><title>portguard bench</title></head><body>\n"
        + b"<p>" + b"x" * 4000 + b"</p>\n</body></html>\n")


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one connection per request, closed by the server after the
    # response, as urllib's one-shot urlopen() expects.
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = http.server.HTTPServer(("127.0.0.1", port), Handler)
    srv.request_queue_size = 128
    print("port", srv.server_address[1], "bytes", len(PAGE), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
