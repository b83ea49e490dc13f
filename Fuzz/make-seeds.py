#!/usr/bin/env python3
"""Writes the seed corpora under Fuzz/corpus/<target>/ (run once; the files are committed).

Seeds are the unit tests' fixtures in each target's input layout: choice bytes first (split points, options), then
the bytes under test. See each target's main.swift for its layout."""
import hashlib, json, os, struct

here = os.path.dirname(os.path.abspath(__file__))

def write(target, seeds):
    folder = os.path.join(here, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for seed in seeds:
        data = seed if isinstance(seed, bytes) else seed.encode()
        with open(os.path.join(folder, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
            f.write(data)

def splits(*points):
    return b"".join(struct.pack(">H", p) for p in points)

def chunked(chunks, last=b"0", trailers=()):
    out = b""
    for size, ext, data in chunks:
        out += size + ext + b"\r\n" + data + b"\r\n"
    out += last + b"\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n"
    return out

def simple(*datas):
    return chunked([(format(len(d), "x").encode(), b"", d) for d in datas])

bodies = [
    chunked([(b"4", b"", b"Wiki"), (b"6", b"", b"pedia "), (b"E", b"", b"in \r\n\r\nchunks.")]),
    chunked([(b"1a", b";a=b", b"abcdefghijklmnopqrstuvwxyz"), (b"0A", b' ; name="quo;ted"\t;x', b"0123456789"),
             (b"1", b";", b"\r"), (b"2", b"", b"\n\r")], last=b"0;last=yes",
            trailers=[b"X-Checksum: abc", b"Expires:\tnever ", b"X-Empty:"]),
    chunked([(b"1", b"", b"x"), (b"01", b"", b"\r"), (b"001", b"", b"\n"), (b"1", b";z", b"\0")]),
    simple(b"a\r\n", b"data: x\n\nyz"),
    b"0\r\n\r\n", b"5\r\nhello\r\n", b"zz\r\n", b"-1\r\n", b"ffffffffffffffffffffffff\r\n", b"5 5\r\nhello\r\n0\r\n\r\n",
    b"3\r\nabcX\r\n0\r\n\r\n", b"3\r\nab\0\r\n0\r\n\r\n",
]
events = [
    b"data: first\n\ndata: second\n\nid: 3\r\ndata: third\r\n\r\n: note\n\nevent: e\rdata: four\r\r",
    b"data: a\n\ndata: b\n\ndata: c\ndata: d\r\n\r\ndata: e\r\r\n",
    b": keep-alive\n\n", b"\xef\xbb\xbfdata: bom\n\n", b"data: x\r", b"\r\n\r\n\n\n", b"retry: 1500\nid: 7\ndata: {}\n\n",
]
sse_bodies = [
    chunked([(b"e", b"", b"data: first\n\nd"), (b"0C", b";ext=1", b"ata: second\n"), (b"15", b"", b"\nid: 3\r\ndata: third\r\n"),
             (b"2", b"", b"\r\n"), (b"1d", b"", b": note\n\nevent: e\rdata: four\r\r")], trailers=[b"X-T: 1"]),
    chunked([(b"22", b"", b"data: a\n\ndata: b\n\ndata: c\ndata: d\r"), (b"3", b"", b"\n\r\n"), (b"A", b";x;y", b"data: e\r\r\n")],
            last=b"0;done"),
] + [simple(e) for e in events]

write("FuzzChunkedScanner", [splits(a, b) + body for body in bodies for a, b in [(0, 0), (3, 9), (len(body) // 2, len(body))]])
write("FuzzEventTracker", [splits(a, b, c) + e for e in events for a, b, c in [(0, 0, 0), (1, 7, 13)]])
write("FuzzRelayWire", [bytes([close]) + splits(a, b, c) + body for body in sse_bodies
                        for close, a, b, c in [(255, 0, 0, 0), (0, 5, 20, 40), (1, 14, 15, 60)]])

heads = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + sse_bodies[0],
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\nContent-Type: text/plain\n\nuntil close",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + bodies[1],
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx",
    b"HTTP/1.1 502 Bad Gateway\r\nX-Folded: a\r\n b\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
]
write("FuzzResponseDecoder", [bytes([opt]) + splits(a, b, c) + h for h in heads for opt, a, b, c in [(0, 0, 0, 0), (2, 10, 30, 70), (1, 5, 5, 90)]])

write("FuzzRequestTarget", [
    "/events/a", "/events/", "/events", "/events/../admin", "/events/%2e%2e/admin", "/events/a/../b", "/events//a",
    "/events/a%2Fb", "/events/..%2Fadmin", "/events/..;/admin", "/admin?x=1", "/feed/private/../x", "/feedfoo/bar",
    "/feed/%2E/x?access_token=t", "/events/a?b#c", "http://x/events", "*", "/events/%zz", "/events/%00", "/events/\\x",
    "/events/.%2E/", "/events/a/./b/.", "/%65vents/a", "/events/%C3%A9", "/events/%C0%AE%C0%AE/admin",
])
write("FuzzQueryTokens", [
    "\naccess_token=abc", "token\ntoken=a&b=c", "\na=1&access%5Ftoken=x&b=2", "\naccess_token=&access_token=y",
    "ticket\nticket=t1&ticket=t2&x", "\na&&b=&=c&access_token", "\naccess+token=1&access_token=a+b%20c",
    "sig nature\nsig+nature=x&sig%20nature=y", "\n%zz=1&access_token=%zz", "%E9\n%e9=1&%C3%A9=2",
])
write("FuzzCookieTokens", [
    "\nsession=abc", "auth\na=1; auth=\"quoted\"; b=2", "\n session = x ;other=1\nthird=3", "\nsession=\nsession=y",
    "auth\n;;auth;a=b;", "\nsessionx=1; session=2\nSession=3",
])
def b64(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=")
jwt_inputs = [
    b'{"alg":"HS256","typ":"JWT"}\n{"sub":"user-1","iss":"fuzz","exp":1700000600,"iat":1699999990}',
    b'{"alg":"HS256","kid":"k1"}\n{"exp":1.7e9,"nbf":1699999000.5,"iss":"fuzz","aud":["a","b"],"org":{"id":7}}',
    b'{"alg":"none"}\n{"exp":1800000000,"iss":"fuzz"}', b'{"alg":"HS256","crit":["b64"]}\n{}',
    b'{"alg":"HS256"}\n{"iss":"fuzz","exp":1800000000,"s":"\\u00e9\\ud83d\\ude00\\n\\"","n":[null,true,false,-0.0,1e3]}',
    b'{"alg":"HS256","alg":"RS256"}\n{"exp":1}', b'[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]\n{}',
    b"eyJhbGciOiJIUzI1NiJ9." + b64(b'{"exp":1800000000,"iss":"fuzz"}') + b".c2ln",
]
write("FuzzJWT", jwt_inputs)
write("FuzzJWKS", [
    '{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}',
    '{"keys":[{"kty":"EC","crv":"P-256","kid":"ec","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}',
    '{"keys":[{"kty":"RSA","kid":"rsa","alg":"RS256","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}]}',
    '{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"OKP","crv":"X25519","x":"AAAA"}]}', '{"keys":[]}', '{}', '[]',
    '{"keys":[' * 20 + ']}' * 20, '{"keys":[{"kty":"EC","crv":"P-384","x":"","y":""}]}',
])
write("FuzzHostHeader", [
    b"\0example.com", b"\0example.com:8080", b"\0[::1]:443", b"\0[v1.fe80::a+en1]", b"\x01", b"\0", b"\0a\nb",
    b"\x02example.com\nexample.com", b"\x02a\nb", b"\0evil example/\\x", b"\0%41%zz", b"\0host:123456", b"\0[::1]x",
    b"\0user@host", b"\0h\xc3\xa9.example",
])

config = open(os.path.join(here, "..", "gateway.yml"), "rb").read()
write("FuzzConfiguration", [
    config,
    b'routes:\n  - name: events\n    path_prefix: /events/\n    upstream: "http://127.0.0.1:9000"\n',
    b'listen: "${FUZZ:-0.0.0.0}:${PORT}"\nroutes:\n  - name: a\n    path_prefix: /a\n    upstream: http://h\n    strip_prefix: true\n    heartbeat: 15s\n',
    b'routes:\n  - name: a\n    path_prefix: /a\n    path_prefix: /b\n    upstream: http://h\n',
    b'routes: []\nlimits:\n  max_request_body: 1MiB\n', b'routes:\n  - {name: a, path_prefix: /a, upstream: "http://h", auth: p}\nauth_policies:\n  p:\n    token_sources: [query:access_token, cookie:s, header:Authorization]\n    jwt:\n      algorithms: [HS256]\n      secret: "${SECRET}"\n',
    b"- [a, b]\n- {c: d}\n", b"&a [*a]", b"key: 'unterminated\n", b"",
])
