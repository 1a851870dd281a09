#!/usr/bin/env python3
"""Tiny TLS upstream standing in for the gateway's ingress listener (tests only).

Requires a client certificate signed by --client-ca, and answers every request with JSON:
  {"method", "path", "headers": [[name, value], ...] (in arrival order, duplicates kept),
   "peer_subject": "<RFC 2253-ish subject of the TLS peer, i.e. the ingress client cert>"}
GET /stream?n=N&delay=S sends N chunked lines S seconds apart (to check proxy_buffering off).

  echo_upstream.py --port 8444 --cert gateway.crt --key gateway.key --client-ca ca.crt [--pid-file F]
"""
import argparse
import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def rfc2253(subject):
    # getpeercert() gives ((('commonName','x'),), (('organizationName','y'),)) in DER order
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "userId": "UID"}
    rdns = ["+".join(f"{short.get(k, k)}={v}" for k, v in rdn) for rdn in subject]
    return ",".join(reversed(rdns))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-upstream"

    def log_message(self, fmt, *args):
        sys.stderr.write("echo-upstream: " + (fmt % args) + "\n")

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self):
        body = self._body()
        u = urlsplit(self.path)
        if u.path == "/stream":
            q = parse_qs(u.query)
            n = int(q.get("n", ["3"])[0])
            delay = float(q.get("delay", ["1"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                line = f"line {i} t={time.time():.3f}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
            return
        peer = self.connection.getpeercert() or {}
        out = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "peer_subject": rfc2253(peer.get("subject", ())),
            "body_len": len(body),
        }
        data = json.dumps(out, indent=1).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _reply


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8444)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca", required=True)
    ap.add_argument("--pid-file")
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED

    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    print(f"echo-upstream: https://{a.host}:{a.port}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
