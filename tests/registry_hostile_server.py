#!/usr/bin/env python3
"""A misbehaving OCI registry for egg's registry tests.

Listens on 127.0.0.1 on a free port, prints the port on stdout, and serves
until killed. The repository name in each request picks the misbehaviour;
see the table in BEHAVIOURS. Only the Python standard library is used.
"""
import base64
import hashlib
import http.server
import json
import socketserver
import sys
import time

GOOD = b"hello from an honest blob\n"
GOOD_DIGEST = "sha256:" + hashlib.sha256(GOOD).hexdigest()
MANIFEST = json.dumps({"schemaVersion": 2, "layers": []}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
TOKEN = "test-token-123"
BASIC = "Basic " + base64.b64encode(b"user:pass").decode()

BEHAVIOURS = {
    "good": "serves GOOD for its digest",
    "wrongdigest": "serves other bytes of the same length",
    "oversize": "declares and sends a longer body",
    "endless": "chunked body that never ends",
    "drip": "one byte every second",
    "stall": "headers, then silence",
    "redirecthost": "307 to the same server under another host name",
    "redirecthttp": "307 to another host over plain HTTP",
    "redirectloop": "307 to itself forever",
    "uploadevil": "upload Location on another host",
    "bearer": "needs a bearer token from /token (Basic user:pass)",
    "basic": "needs Basic user:pass",
    "bigmanifest": "a 5 MiB manifest",
    "wrongmanifest": "manifest bytes that do not match the digest asked",
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, code, body, ctype="application/octet-stream",
                  extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, message):
        body = json.dumps({"errors": [{"code": "DENIED",
                                       "message": message}]}).encode()
        self.send_body(code, body, "application/json")

    def host(self):
        return self.headers.get("Host", "")

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        parts = self.path.split("/")
        if len(parts) > 2 and parts[2] == "uploadevil":
            port = self.server.server_address[1]
            self.send_body(202, b"", extra={
                "Location": "http://localhost:%d/v2/uploadevil/blobs/"
                            "uploads/x" % port})
            return
        self.error(404, "no uploads here")

    def do_GET(self):
        path = self.path.split("?")[0]
        port = self.server.server_address[1]
        if path == "/v2/":
            self.send_body(200, b"{}", "application/json")
            return
        if path == "/token":
            if self.headers.get("Authorization") != BASIC:
                self.error(401, "bad login")
                return
            self.send_body(200, json.dumps({"token": TOKEN}).encode(),
                           "application/json")
            return
        parts = path.split("/")
        if len(parts) < 5 or parts[1] != "v2":
            self.error(404, "unknown path")
            return
        repo, kind, ref = parts[2], parts[3], parts[4]
        auth = self.headers.get("Authorization")
        if repo == "bearer" and auth != "Bearer " + TOKEN:
            self.send_body(401, b"", extra={
                "WWW-Authenticate":
                    'Bearer realm="http://127.0.0.1:%d/token",'
                    'service="egg-test",scope="repository:bearer:pull"'
                    % port})
            return
        if repo == "basic" and auth != BASIC:
            self.send_body(401, b"", extra={
                "WWW-Authenticate": 'Basic realm="egg-test"'})
            return
        if kind == "manifests":
            self.manifest(repo, ref)
        else:
            self.blob(repo, ref, port)

    def manifest(self, repo, ref):
        ctype = "application/vnd.oci.image.manifest.v1+json"
        if repo == "bigmanifest":
            self.send_body(200, b" " * (5 << 20), ctype)
        elif repo == "wrongmanifest":
            self.send_body(200, MANIFEST + b" ", ctype)
        else:
            self.send_body(200, MANIFEST, ctype)

    def blob(self, repo, ref, port):
        redirect = {
            "redirecthost": "http://localhost:%d/v2/good/blobs/%s",
            "redirecthttp": "http://localhost:%d/v2/good/blobs/%s",
            "redirectloop": "http://127.0.0.1:%d/v2/redirectloop/blobs/%s",
        }
        if repo in redirect:
            self.send_body(307, b"", extra={
                "Location": redirect[repo] % (port, ref)})
            return
        if ref != GOOD_DIGEST:
            self.error(404, "blob unknown")
            return
        if repo in ("good", "bearer", "basic"):
            self.send_body(200, GOOD)
        elif repo == "wrongdigest":
            self.send_body(200, b"X" * len(GOOD))
        elif repo == "oversize":
            self.send_body(200, GOOD + b"Z" * 4096)
        elif repo == "endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                deadline = time.time() + 30
                while time.time() < deadline:
                    self.wfile.write(b"1000\r\n" + b"E" * 4096 + b"\r\n")
            except OSError:
                pass
        elif repo in ("drip", "stall"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.flush()
            try:
                for i in range(len(GOOD)):
                    time.sleep(1)
                    if repo == "drip":
                        self.wfile.write(GOOD[i:i + 1])
                        self.wfile.flush()
            except OSError:
                pass
        else:
            self.error(404, "unknown repository")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
