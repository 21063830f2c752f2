"""HTTPS server for sockmail's tests: the MTA-STS policies (RFC 8461) of the
test domains, on loopback, with a certificate from the test CA.

usage: mta_sts_server.py HOST PORT CHAIN_PEM ROOT

GET /.well-known/mta-sts.txt with Host: mta-sts.<domain> answers the file
ROOT/mta-sts.<domain>.txt; anything else is 404.
"""

import http.server
import os
import re
import ssl
import sys

NAME = re.compile(r"^[a-z0-9.-]{1,253}$")


def handler(root):
    class Handler(http.server.BaseHTTPRequestHandler):
        # Every read and write of a connection, the TLS handshake included,
        # has a deadline.
        timeout = 10

        def do_GET(self):
            host = (self.headers.get("Host") or "").lower().rsplit(":", 1)[0]
            path = os.path.join(root, host + ".txt")
            if self.path != "/.well-known/mta-sts.txt" or not NAME.match(host) or not os.path.isfile(path):
                self.send_error(404, "no policy here")
                return
            with open(path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main():
    host, port, chain, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain)
    srv = http.server.ThreadingHTTPServer((host, port), handler(root))
    # The handshake happens in the connection's own thread, on its first
    # read, so that a client that never speaks TLS holds up nobody else.
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    srv.serve_forever()


if __name__ == "__main__":
    main()
