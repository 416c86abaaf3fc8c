#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/seeds/<target>, committed; libFuzzer writes what it
finds to fuzz/corpus/<target>, ignored). Run from the repository root: `python3 fuzz/make_corpus.py`.

`frame`: Seeds: every operation; two-, three- and four-byte UTF-8
straddling every cap boundary (rID 256 B, operation 64 B, billId 128 B, the sniffed rID 1 KiB,
unescaped strings and the sniff window 4 KiB); lone surrogate escapes; 1e999; nesting around
the depth cap; duplicate keys; very long escaped strings."""
import hashlib, json, os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "frame")
os.makedirs(OUT, exist_ok=True)
seeds = []
ops = ["checkWork", "versionInfo", "tablesInfo", "hallplansInfo", "getBill", "usersInfo",
       "categoriesInfo", "menuInfo", "stopList", "checkProductsRestrictions", "payBill",
       "splitOrder", "createOrderOnTable", "showMessage", "setSettings"]
for op in ops:
    seeds.append(json.dumps({"rID": "r-" + op, "operation": op}))
seeds += [
    '{"rID":"g1","operation":"getBill","tableNumber":"12"}',
    '{"rID":"g2","operation":"getBill","billId":"b-1001"}',
    '{"rID":"p1","operation":"payBill","billId":"b-1001","sum":389.50,"tips":10}',
    '{"rID":"p2","operation":"payBill","sum":1}',
    '{"rID":"p3","operation":"payBill","billId":"b","sum":1e999}',
    '{"rID":"p4","operation":"payBill","billId":"b","sum":-0.0,"fiscalData":[{"key":"k","value":"v"}]}',
    '{"rID":"s1","operation":"splitOrder","billId":"b-1001","positions":[{"id":"1","quantity":1}],"controlSum":10}',
    '{"rID":"c1","operation":"createOrderOnTable","tableNumber":"12","items":[{"id":"d-1","quantity":2,"modifier":[{"id":"m-1"}]}]}',
    '{"rID":"k1","operation":"checkProductsRestrictions","items":[{"id":"d-1","quantity":1}]}',
    '{"rID":"dup","rID":"dup2","operation":"checkWork"}',
    '{"rID":"dup3","operation":"checkWork","operation":"getBill"}',
    '{"rID":"\\ud800","operation":"checkWork"}',
    '{"rID":"x\\udc00","operation":"checkWork"}',
    '{"rID":"\\ud83d\\ude00","operation":"checkWork"}',
    '{"rID":"\\ud83dx","operation":"checkWork"}',
    '{"rID":"e","operation":"checkWork","n":1e999,"m":-1e999,"k":1e-999}',
    '{"rId":"alias","operation":"hallPlansInfo"}',
    '\ufeff{"rID":"bom","operation":"checkWork"}',
]
for depth in (14, 15, 16, 17, 40):
    seeds.append('{"rID":"deep%d","operation":"checkWork","v":%s%s}' % (depth, "[" * depth, "]" * depth))
    seeds.append('{"rID":"deepo%d","operation":"getBill","v":%s1%s}' % (depth, '{"a":' * depth, "}" * depth))
for n in (1000, 4095, 4096, 4097):
    seeds.append('{"rID":"long%d","operation":"checkWork","x":"%s"}' % (n, "\\u0041" * n))
    seeds.append('{"rID":"longq%d","operation":"checkWork","x":"%s"}' % (n, '\\"' * n))
for letter in ("\u0411", "\u20ac", "\U0001F600"):
    w = len(letter.encode())
    for cap in (64, 128, 256, 1024, 4096):
        for shift in range(1, w + 1):
            pad = "a" * (cap - shift)
            s = pad + letter * 2
            seeds.append(json.dumps({"rID": s, "operation": "checkWork"}, ensure_ascii=False))
            seeds.append(json.dumps({"rID": "u", "operation": s}, ensure_ascii=False))
            seeds.append(json.dumps({"rID": "b", "operation": "getBill", "billId": s}, ensure_ascii=False))
            seeds.append(json.dumps({"rID": "t", "operation": "getBill", "tableNumber": s}, ensure_ascii=False))
            # The rID placed so that the sniff window (4 KiB) ends inside a letter.
            seeds.append('{"x":"%s","rID":"%s"' % ("a" * max(cap - 20 - shift, 0), letter * 300))
    seeds.append('{"rID":"a%s","operation":"checkWork"}' % (letter * 200))
for i, s in enumerate(seeds):
    data = s.encode()
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(len(seeds), "seeds in", OUT)

# `response`: byte 0 = bytes per read - 1, byte 1 bit 0 = the answer comes after the request
# (else it is there before: an early answer), then the server's answer. Responses as real
# servers send them, and the framing cases of RFC 9112 §6.3.
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "response")
os.makedirs(OUT, exist_ok=True)
answers = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n{\"ok\":true}",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 400 Bad\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz",
    b"HTTP/1.1 404 X\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"HTTP/1.1 404 X\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 404 X\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 404 X\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig",
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /moved/getBill\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://b.example/cb\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 301 Moved\r\nLocation: \xff\xfe\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 408 Request Timeout\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    b"HTTP/1.1 200\r\nX: \x01\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
    b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",
    b"",
    b"garbage\r\n\r\n",
]
many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H-%d: v\r\n" % i for i in range(150)) + b"Content-Length: 2\r\n\r\nok"
answers.append(many)
answers.append(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X%d: v\r\n" % i for i in range(300)) + b"\r\n")
answers.append(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 17000 + b"\r\n\r\n")
# A 2xx status line whose reason phrase runs past the head's cap: the status must still be
# read (and with it the delivery).
answers.append(b"HTTP/1.1 200 OKllX: " + b"a" * 17000)
answers.append(b"HTTP/1.1 503 Busy\r\nContent-Length: 200\r\n\r\n" + b"e" * 200)
answers.append(b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n" + b"40\r\n" + b"c" * 64 + b"\r\n" + b"1\r\nd\r\n0\r\n\r\n")
n = 0
for a in answers:
    for chunk, mode in ((255, 1), (0, 1), (6, 0)):
        data = bytes([chunk, mode]) + a
        with open(os.path.join(OUT, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
        n += 1
print(n, "seeds in", OUT)
