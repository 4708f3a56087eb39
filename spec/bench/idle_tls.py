#!/usr/bin/env python3
"""Opens N TLS connections to 127.0.0.1:PORT, completes each handshake, then idles.

usage: idle_tls.py PORT N
Prints "open N" once every handshake is done (or "open K failed REASON" when one fails),
then holds the connections until its stdin closes. Handshakes run one at a time, so the
server only ever sees one in progress: what is measured afterwards is the memory a
finished, idle TLS connection costs, not a handshake backlog.
"""
import resource
import socket
import ssl
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held = []
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.append(ctx.wrap_socket(s, server_hostname="localhost"))
        except (OSError, ssl.SSLError) as e:
            print("open %d failed %s" % (i, str(e).replace(" ", "_")), flush=True)
            break
    else:
        print("open %d" % n, flush=True)
    sys.stdin.read()
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
