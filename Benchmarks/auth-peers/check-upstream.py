#!/usr/bin/env python3
"""The upstream for run.sh's auth checks (loopback only): answers every GET with a short SSE stream (two events,
then the end) and appends one JSON line per request it receives to LOG: {"target": <request target as received>,
"authorization": <Authorization header or null>}. sse-load's upstream cannot show headers; this one lets run.sh see
what a proxy forwarded, and whether it forwarded anything at all for a refused token.

Usage: check-upstream.py 127.0.0.1:PORT LOG
"""
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with open(self.server.log_path, "a") as log:
            log.write(json.dumps({"target": self.path, "authorization": self.headers.get("Authorization")}) + "\n")
        body = b"id: 1\ndata: 1 1 check\n\nid: 2\ndata: 2 2 check\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    if not host.startswith("127."):
        sys.exit("check-upstream: loopback addresses only")
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.log_path = sys.argv[2]
    server.serve_forever()


if __name__ == "__main__":
    main()
