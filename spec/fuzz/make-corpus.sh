#!/bin/bash
# make-corpus.sh: (re)writes the seed corpora in spec/fuzz/corpus/<target>/. Each seed starts
# with the control bytes its harness expects (see the comment at the top of each fuzz_*.c).
# The seeds are committed; run this only to change them. It does not touch crashers/.
set -eu
cd "$(dirname "$0")"
C=corpus

seed() { # seed TARGET NAME PRINTF-FORMAT...
    local t=$1 n=$2
    shift 2
    mkdir -p "$C/$t"
    # shellcheck disable=SC2059 # the seeds are printf formats on purpose
    printf "$@" >"$C/$t/$n"
}

# ---- fuzz_http: byte 0 limits/mode, byte 1 cut count, cuts, then the stream ----
D='\x02\x00'      # default limits (16384 bytes, 100 headers), delivered whole
CUT='\x02\x03\x05\x0b\x20' # default limits, arrivals after 5, 16 and 48 bytes
ONE='\x06\x00'    # default limits, one byte at a time
SMALL='\x00\x00'  # 512 bytes, 8 headers
H='Host: h\r\n'
seed fuzz_http get "$D"'GET /a/b?x=1 HTTP/1.1\r\n'"$H"'\r\n'
seed fuzz_http post-content-length "$CUT"'POST /form HTTP/1.1\r\n'"$H"'Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello'
seed fuzz_http pipelined "$CUT"'GET /1 HTTP/1.1\r\n'"$H"'\r\nPOST /2 HTTP/1.1\r\n'"$H"'Content-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n'"$H"'Connection: close\r\n\r\n'
seed fuzz_http chunked-ext-trailers "$ONE"'POST /up HTTP/1.1\r\n'"$H"'Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6;q="x y"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'
seed fuzz_http cl-and-te "$D"'POST / HTTP/1.1\r\n'"$H"'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
seed fuzz_http te-gzip-chunked "$D"'POST / HTTP/1.1\r\n'"$H"'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'
seed fuzz_http obs-fold "$D"'GET / HTTP/1.1\r\n'"$H"'X-Fold: a\r\n  b\r\n\r\n'
seed fuzz_http bare-lf "$D"'GET /lf HTTP/1.1\n'"Host: h\n"'X: y\n\n'
seed fuzz_http nul-in-value "$D"'GET / HTTP/1.1\r\n'"$H"'X-Nul: a\x00b\r\n\r\n'
seed fuzz_http absolute-form "$D"'GET http://example.com:8080/abs/../x?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n'
seed fuzz_http path-escapes "$ONE"'GET /a%%2Fb/%%2e%%2E/c%%20d/./e?k=%%zz HTTP/1.1\r\n'"$H"'\r\n'
seed fuzz_http http10-ipv6-expect "$D"'PUT /x HTTP/1.0\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz'
seed fuzz_http head-and-version "$D"'HEAD /h HTTP/1.1\r\n'"$H"'\r\nGET / HTTP/2.0\r\n'"$H"'\r\n'
seed fuzz_http huge-header-line "$SMALL"'GET / HTTP/1.1\r\n'"$H"'X-Big: '"$(printf 'a%.0s' $(seq 600))"'\r\n\r\n'
seed fuzz_http many-headers "$SMALL"'GET / HTTP/1.1\r\n'"$H$(for i in $(seq 10); do printf 'X-%d: v\\r\\n' "$i"; done)"'\r\n'
seed fuzz_http upgrade-connect "$D"'GET /ws HTTP/1.1\r\n'"$H"'Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nCONNECT h:443 HTTP/1.1\r\n'"$H"'\r\n'

# ---- fuzz_cgi_head: byte 0 max (0: 16384), byte 1 arrival step, then the backend's bytes ----
B='\x00\x00'   # max 16384, one byte at a time
B7='\x00\x07'  # max 16384, 8 bytes at a time
seed fuzz_cgi_head status-crlf "$B7"'Status: 201 Created\r\nContent-Type: text/html\r\n\r\n<p>'
seed fuzz_cgi_head lf-only "$B"'Content-Type: text/plain\nX-A: 1\n\nhello'
seed fuzz_cgi_head status-line "$B7"'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc'
seed fuzz_cgi_head location-local "$B"'Location: /other?x=1\r\n\r\n'
seed fuzz_cgi_head location-absolute "$B7"'Location: https://example.com/\r\nSet-Cookie: a=1\r\n\r\n'
seed fuzz_cgi_head bad-status "$B"'Status: abc\r\n\r\n'
seed fuzz_cgi_head status-out-of-range "$B"'Status: 099 Low\r\n\r\n'
seed fuzz_cgi_head duplicate-status "$B7"'Status: 200 OK\r\nStatus: 201\r\n\r\n'
seed fuzz_cgi_head hop-by-hop "$B7"'Connection: close\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\nX-Kept: 1\r\n\r\n'
seed fuzz_cgi_head content-length-twice "$B7"'Content-Length: 5\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n'
seed fuzz_cgi_head bad-lines "$B"'X-Bad Name: v\r\nNoColon\r\n\r\n'
seed fuzz_cgi_head cr-nul-in-value "$B"'X-A: a\rb\r\nX-B: a\x00b\n\n'
seed fuzz_cgi_head empty-head "$B"'\r\nbody'
seed fuzz_cgi_head reason-control "$B"'Status: 200 O\x01K\r\n\r\n'
seed fuzz_cgi_head tiny-max '\x14\x03Content-Type: text/plain\r\nX: y\r\n\r\n'

# ---- fuzz_chunked: byte 0 piece size (0: whole), then what follows the chunked head ----
seed fuzz_chunked simple '\x00''5\r\nhello\r\n0\r\n\r\n'
seed fuzz_chunked extensions '\x00''3;name=value;q="a \\" b"\r\nabc\r\n0;last\r\n\r\n'
seed fuzz_chunked ext-bws '\x00''5 ; a = b\r\nhello\r\n0\r\n\r\n'
seed fuzz_chunked trailers '\x02''1\r\na\r\n0\r\nX-T: v\r\nY:w\r\n\r\n'
seed fuzz_chunked trailers-bare-lf '\x00''1\r\na\r\n0\r\nX-T: v\n\n'
seed fuzz_chunked hex-case '\x05''000A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n'
seed fuzz_chunked one-byte-pieces '\x01''2\r\nab\r\n1\r\nc\r\n0\r\n\r\n'
seed fuzz_chunked pipelined '\x00''1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n'
seed fuzz_chunked size-overflow '\x00''fffffffffffffffff\r\n'
seed fuzz_chunked size-not-hex '\x00''x\r\nabc\r\n0\r\n\r\n'
seed fuzz_chunked size-negative '\x00''-1\r\n0\r\n\r\n'
seed fuzz_chunked empty-body '\x00''0\r\n\r\n'
seed fuzz_chunked cut-in-data '\x03''a\r\n01234'

# ---- fuzz_range: flags, size (8 LE), mtime (4 LE), present mask, then fields split by \n ----
# flags: bit 2 backend 200, bit 3 backend ETag, bit 4 backend Last-Modified, bit 5 small file
# sizes: \xe8\x03 = 1000; mtime \x00\x00\x00\x60 = 2021-01-14T08:25:36Z
S1000='\xe8\x03\x00\x00\x00\x00\x00\x00'
MT='\x00\x00\x00\x60'
LMDATE='Thu, 14 Jan 2021 08:25:36 GMT'
seed fuzz_range first-100 '\x04'"$S1000$MT"'\x01bytes=0-99'
seed fuzz_range suffix '\x04'"$S1000$MT"'\x01bytes=-100'
seed fuzz_range open-end '\x05'"$S1000$MT"'\x01bytes=500-'
seed fuzz_range one-byte '\x04'"$S1000$MT"'\x01bytes=0-0'
seed fuzz_range reversed '\x04'"$S1000$MT"'\x01bytes=5-1'
seed fuzz_range unsatisfiable '\x04'"$S1000$MT"'\x01bytes=2000-3000'
seed fuzz_range multi '\x04'"$S1000$MT"'\x01bytes=0-1, 5-6'
seed fuzz_range if-range-date '\x04'"$S1000$MT"'\x03bytes=10-19\n'"$LMDATE"
seed fuzz_range if-range-etag '\x0c'"$S1000$MT"'\x03bytes=10-19\n"abc"\n\n\n"abc"'
seed fuzz_range if-none-match '\x0c'"$S1000$MT"'\x05bytes=0-1\n\nW/"x", "abc"\n\n"abc"'
seed fuzz_range if-modified-since '\x04'"$S1000$MT"'\x08\n\n\n'"$LMDATE"
seed fuzz_range empty-file '\x25\x00\x00\x00\x00\x00\x00\x00\x00'"$MT"'\x01bytes=-5'
seed fuzz_range huge-file '\x04\xff\xff\xff\xff\xff\xff\xff\x3f'"$MT"'\x01bytes=4611686018427387902-'
seed fuzz_range post-ignored '\x06'"$S1000$MT"'\x01bytes=0-9'
seed fuzz_range backend-404 '\x00\xe9\x03\x00\x00\x00\x00\x00\x00'"$MT"'\x01bytes=0-9'

# ---- fuzz_conn: CLIENT "\n@@backend@@\n" REPLY; "\n@@next@@\n" separates the replies of
# successive backend connections; "\n@@pause@@\n" cuts client or reply into steps ----
# routes: / (plain), /lua/ (access: ?deny -> 403; env X_HOOK from X-A), /bal/ (two members,
# sticky ROUTEID), /sf/ (X-Sendfile under @DIR@, which holds f.txt), /status
BE='\n@@backend@@\n'
P='\n@@pause@@\n'
N='\n@@next@@\n'
OK='Status: 200 OK\r\nContent-Type: text/plain\r\n'
seed fuzz_conn get-close-delimited 'GET /a?x=1 HTTP/1.1\r\n'"$H"'\r\n'"$BE$OK"'\r\nhello'
seed fuzz_conn get-content-length 'GET / HTTP/1.1\r\n'"$H"'\r\n'"$BE$OK"'Content-Length: 5\r\n\r\nhello'
seed fuzz_conn head 'HEAD /h HTTP/1.1\r\n'"$H"'\r\n'"$BE$OK"'Content-Length: 5\r\n\r\nhello'
seed fuzz_conn http10 'GET /old HTTP/1.0\r\n\r\n'"$BE$OK"'\r\nold client'
seed fuzz_conn post-body 'POST /form HTTP/1.1\r\n'"$H"'Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello'"$BE$OK"'Content-Length: 2\r\n\r\nok'
seed fuzz_conn post-chunked 'POST /up HTTP/1.1\r\n'"$H"'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'"$P"'0\r\nX-T: t\r\n\r\n'"$BE$OK"'\r\nthanks'
seed fuzz_conn expect-continue 'PUT /x HTTP/1.1\r\n'"$H"'Expect: 100-continue\r\nContent-Length: 3\r\n\r\n'"$P"'abc'"$BE$OK"'Content-Length: 0\r\n\r\n'
seed fuzz_conn pipelined 'GET /1 HTTP/1.1\r\n'"$H"'\r\nGET /2 HTTP/1.1\r\n'"$H"'\r\nGET /3 HTTP/1.1\r\n'"$H"'Connection: close\r\n\r\n'"$BE$OK"'Content-Length: 2\r\n\r\nok'
seed fuzz_conn keepalive-steps 'GET /1 HTTP/1.1\r\n'"$H"'\r\n'"$P"'GET /2 HTTP/1.1\r\n'"$H"'\r\n'"$BE$OK"'Content-Length: 2\r\n\r\n'"$P"'ok'
seed fuzz_conn reply-in-pieces 'GET /p HTTP/1.1\r\n'"$H"'\r\n'"$BE"'Stat'"$P"'us: 201 Created\r\nX-A:'"$P"' 1\r\n\r'"$P"'\nbody'"$P"' more'
seed fuzz_conn lua-deny 'GET /lua/x?deny HTTP/1.1\r\n'"$H"'\r\n'"$BE$OK"'\r\nnever'
seed fuzz_conn lua-env 'GET /lua/e HTTP/1.1\r\n'"$H"'X-A: from-the-client\r\n\r\n'"$BE$OK"'\r\nenv'
seed fuzz_conn balancer-sticky 'GET /bal/s?ROUTEID=x.two HTTP/1.1\r\n'"$H"'\r\nGET /bal/c HTTP/1.1\r\n'"$H"'Cookie: ROUTEID=a.two\r\n\r\n'"$BE$OK"'Content-Length: 1\r\n\r\nb'
seed fuzz_conn balancer-bad-reply 'GET /bal/x HTTP/1.1\r\n'"$H"'\r\n'"$BE"'garbage without a head end'
seed fuzz_conn status-json 'GET /status HTTP/1.1\r\n'"$H"'\r\n'
seed fuzz_conn status-prometheus 'GET /status?format=prometheus HTTP/1.1\r\n'"$H"'\r\n'
seed fuzz_conn status-html 'GET /status?format=html HTTP/1.1\r\n'"$H"'Accept: text/html\r\n\r\n'
seed fuzz_conn sendfile 'GET /sf/f HTTP/1.1\r\n'"$H"'\r\n'"$BE"'X-Sendfile: @DIR@/f.txt\r\nContent-Type: text/plain\r\n\r\n'
seed fuzz_conn sendfile-range 'GET /sf/r HTTP/1.1\r\n'"$H"'Range: bytes=0-3\r\n\r\n'"$BE"'X-Sendfile: @DIR@/f.txt\r\n\r\n'
seed fuzz_conn sendfile-outside 'GET /sf/o HTTP/1.1\r\n'"$H"'\r\n'"$BE"'X-Sendfile: /etc/passwd\r\n\r\n'
seed fuzz_conn internal-redirect 'GET /from HTTP/1.1\r\n'"$H"'\r\n'"$BE"'Location: /to?x=1\r\nSet-Cookie: s=1\r\n\r\n'"$N$OK"'\r\narrived'
seed fuzz_conn redirect-loop 'GET /loop HTTP/1.1\r\n'"$H"'\r\n'"$BE"'Location: /loop\r\n\r\n'
seed fuzz_conn balancer-no-answer 'GET /bal/f HTTP/1.1\r\n'"$H"'\r\n'"$BE$N$OK"'Content-Length: 6\r\n\r\nsecond'
seed fuzz_conn external-redirect 'GET /away HTTP/1.1\r\n'"$H"'\r\n'"$BE"'Location: http://example.com/\r\n\r\n'
seed fuzz_conn status-line-reply 'GET /sl HTTP/1.1\r\n'"$H"'\r\n'"$BE"'HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope'
seed fuzz_conn short-body 'GET /short HTTP/1.1\r\n'"$H"'\r\n'"$BE$OK"'Content-Length: 100\r\n\r\nonly this'
seed fuzz_conn no-reply 'GET /silent HTTP/1.1\r\n'"$H"'\r\n'
seed fuzz_conn large-reply 'GET /big HTTP/1.1\r\n'"$H"'\r\n'"$BE$OK"'Content-Length: 40000\r\n\r\n'"$(printf 'z%.0s' $(seq 40000))"
seed fuzz_conn bad-request 'GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n'
seed fuzz_conn header-too-large 'GET / HTTP/1.1\r\n'"$H"'X-Big: '"$(printf 'a%.0s' $(seq 5000))"'\r\n\r\n'
seed fuzz_conn body-too-large 'POST / HTTP/1.1\r\n'"$H"'Content-Length: 100000\r\n\r\nabc'
seed fuzz_conn smuggling 'POST / HTTP/1.1\r\n'"$H"'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'"$BE$OK"'\r\nx'

