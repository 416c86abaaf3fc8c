#!/usr/bin/env python3
"""Seed corpus for the `frame` fuzz target (fuzz/seeds/frame, committed; libFuzzer writes what it finds to fuzz/corpus/frame, ignored). Run from the repository root:
`python3 fuzz/make_corpus.py`. Seeds: every operation; two-, three- and four-byte UTF-8
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
