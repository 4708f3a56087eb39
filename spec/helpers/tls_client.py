#!/usr/bin/env python3
"""TLS client for the black-box specs (spec/integration/tls_spec.lua): connects to a gateway
with Python's ssl module and reports what it saw as `key value` lines, values percent-encoded
(spec/integration/tls_spec.lua decodes them). Not a general tool: only what the specs ask.

  tls_client.py --port P [--sni NAME] [--ca FILE] [--cert F --key F] [--max-tls12]
                [--get PATH]... [--wait-file F] [--connections N] [--garbage N]

Each of --connections connections (default 1) resumes the first one's session and sends
every --get request on it (keep-alive, the last one with Connection: close). --wait-file
makes the client wait, after the first request, until that file exists (the spec changes
the gateway meanwhile). --garbage sends N random bytes framed as TLS application records
after the handshake and reports whether the gateway closed the connection.
Reports: conn.I.{error,port,version,cipher,cn,reused}, resp.I.J.{status,len,sha256,body}.
"""
import argparse
import hashlib
import os
import socket
import ssl
import sys
import time
import urllib.parse


def out(key, value):
    sys.stdout.write("%s %s\n" % (key, urllib.parse.quote(str(value), safe="")))
    sys.stdout.flush()


def read_chunked(s, status, buf):
    body = b""
    while True:
        while b"\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise EOFError("closed inside a chunked body")
            buf += d
        size_line, buf = buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(buf) < size + 2:
            d = s.recv(65536)
            if not d:
                raise EOFError("closed inside a chunk")
            buf += d
        body += buf[:size]
        buf = buf[size + 2:]
        if size == 0:
            return status, len(body), hashlib.sha256(body).hexdigest(), body[:65536], buf


def read_response(s, buf):
    """Reads one HTTP/1.1 response (Content-Length, chunked (no trailers) or to EOF). Returns
    (status, body_len, sha256, body_prefix, rest)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before the response head")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        return read_chunked(s, status, buf)
    h = hashlib.sha256()
    got = 0
    prefix = b""
    while length is None or got < length:
        if not buf:
            buf = s.recv(1 << 20)
            if not buf:
                if length is None:
                    break
                raise EOFError("closed after %d of %d body bytes" % (got, length))
        piece = buf if length is None else buf[: length - got]
        buf = buf[len(piece):]
        h.update(piece)
        if len(prefix) < 65536:
            prefix += piece[: 65536 - len(prefix)]
        got += len(piece)
    return status, got, h.hexdigest(), prefix, buf


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sni")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--max-tls12", action="store_true")
    p.add_argument("--get", action="append", default=[])
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--wait-file")
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--garbage", type=int, default=0)
    a = p.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if a.ca:
        ctx.load_verify_locations(a.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    if a.max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    session = None
    for i in range(1, a.connections + 1):
        k = "conn.%d." % i
        raw = socket.create_connection((a.host, a.port), timeout=10)
        try:
            s = ctx.wrap_socket(raw, server_hostname=a.sni, session=session)
        except (ssl.SSLError, OSError) as e:
            out(k + "error", "%s: %s" % (type(e).__name__, e))
            raw.close()
            continue
        # TLS 1.3 tickets arrive after the handshake: the first response read collects them
        out(k + "port", s.getsockname()[1])  # the gateway's log names the peer by it
        out(k + "version", s.version())
        out(k + "cipher", s.cipher()[0])
        out(k + "reused", s.session_reused)
        cert = s.getpeercert() or {}
        for rdn in cert.get("subject", ()):
            for name, value in rdn:
                if name == "commonName":
                    out(k + "cn", value)
        if a.garbage:
            # a record header for application data, then bytes no key decrypts
            body = os.urandom(a.garbage)
            rec = b"\x17\x03\x03" + len(body).to_bytes(2, "big") + body
            s.setblocking(True)
            raw_sock = socket.socket(fileno=os.dup(s.fileno()))
            raw_sock.sendall(rec)
            raw_sock.settimeout(5)
            closed = "timeout"
            try:
                while True:
                    d = raw_sock.recv(4096)
                    if not d:
                        closed = "eof"
                        break
            except ConnectionResetError:
                closed = "reset"
            except socket.timeout:
                pass
            out(k + "garbage", closed)
            raw_sock.close()
            s.close()
            continue
        buf = b""
        try:
            for j, path in enumerate(a.get, 1):
                last = j == len(a.get)
                req = "GET %s HTTP/1.1\r\nHost: %s\r\n" % (path, a.sni or "localhost")
                for h in a.header:
                    req += h + "\r\n"
                if last:
                    req += "Connection: close\r\n"
                s.sendall((req + "\r\n").encode("latin-1"))
                status, n, digest, prefix, buf = read_response(s, buf)
                r = "resp.%d.%d." % (i, j)
                out(r + "status", status)
                out(r + "len", n)
                out(r + "sha256", digest)
                out(r + "body", prefix.decode("latin-1"))
                if j == 1 and a.wait_file:
                    out(k + "waiting", "1")
                    deadline = time.monotonic() + 30
                    while not os.path.exists(a.wait_file) and time.monotonic() < deadline:
                        time.sleep(0.02)
        except (ssl.SSLError, OSError, EOFError) as e:
            out(k + "error", "%s: %s" % (type(e).__name__, e))
        if session is None:
            session = s.session
        s.close()


if __name__ == "__main__":
    main()
