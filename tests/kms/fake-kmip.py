#!/usr/bin/python3
"""A misbehaving KMIP server on loopback, for tests/kms/kmip.sh: the faults
PyKMIP's real server never shows.  One listener per --listen MODE:PORT.

  hang-tcp     accepts TCP and never reads or writes (no TLS handshake)
  hang-tls     TLS handshake, reads the request, never answers
  close        TLS handshake, reads the request, closes without a reply
  Every other mode answers Discover Versions properly (KMIP 1.4, 1.2) and
  then the next request with:
  truncated    a reply whose length says 200 bytes more than are sent
  garbage      256 random bytes
  bad-padding  a well-formed GetAttributes reply with one padding byte set
  deep         40 nested structures
  huge         a header announcing a 16 MiB reply
  wrong-batch  a well-formed reply echoing another Unique Batch Item ID
  wrong-uid    a well-formed Active reply for another key
  http         an HTTP error page
  pending      Result Status Operation Pending
  no-tag       an Encrypt (AES-GCM) reply without the authentication tag
  ok           a well-formed GetAttributes reply: State Active
  drip         the well-formed reply, one byte every 0.3 s
  dates        State Active, Deactivation Date a minute ago, Destroy Date
               tomorrow
  skew-behind  the server's clock (reply Time Stamp) 6 h behind the host's,
               State Active, Deactivation Date 3 h before the host's clock:
               in the server's future
  skew-ahead   the server's clock 6 h ahead, State Active, Deactivation Date
               3 h after the host's clock: in the server's past
  mixed        never answers for key "hang", the well-formed reply for others

--selfcheck decodes the well-formed replies with PyKMIP's own message
classes (the vendor SDK) and exits 0 if it reads them.
TLS: --cert/--key for the server, --ca to require client certificates.
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import threading
import time


def item(tag, typ, value):
    n = len(value)
    pad = (8 - n % 8) % 8
    return struct.pack(">I", (tag << 8) | typ) + struct.pack(">I", n) + value + b"\0" * pad


def st(tag, *items):
    return item(tag, 0x01, b"".join(items))


def i32(tag, v):
    return item(tag, 0x02, struct.pack(">i", v))


def enum(tag, v):
    return item(tag, 0x05, struct.pack(">I", v))


def text(tag, s):
    return item(tag, 0x07, s.encode())


def bstr(tag, b):
    return item(tag, 0x08, b)


def dt(tag, v):
    return item(tag, 0x09, struct.pack(">q", v))


def walk(buf):
    """Yield (tag, type, value) of every item, depth first (requests only)."""
    off = 0
    while off + 8 <= len(buf):
        tt, n = struct.unpack(">II", buf[off:off + 8])
        val = buf[off + 8:off + 8 + n]
        yield tt >> 8, tt & 0xFF, val
        if tt & 0xFF == 0x01:
            yield from walk(val)
        off += 8 + n + (8 - n % 8) % 8


def request_fields(req):
    op = batch = uid = None
    for tag, typ, val in walk(req):
        if tag == 0x42005C and op is None:
            op = struct.unpack(">I", val)[0]
        elif tag == 0x420093:
            batch = val
        elif tag == 0x420094 and uid is None:
            uid = val.decode(errors="replace")
    return op, batch, uid


def reply(op, batch, payload=None, status=0, version=4, clock=0):
    bi = [enum(0x42005C, op)]
    if batch is not None:
        bi.append(bstr(0x420093, batch))
    bi.append(enum(0x42007F, status))
    if payload is not None:
        bi.append(st(0x42007C, *payload))
    hdr = st(0x42007A, st(0x420069, i32(0x42006A, 1), i32(0x42006B, version)),
             dt(0x420092, int(time.time()) + clock), i32(0x42000D, 1))
    return st(0x42007B, hdr, st(0x42000F, *bi))


def discover_reply(batch):
    return reply(0x1E, batch, [st(0x420069, i32(0x42006A, 1), i32(0x42006B, m)) for m in (4, 2)])


def state_reply(op, batch, uid, state=2):
    return reply(op, batch, [text(0x420094, uid),
                             st(0x420008, text(0x42000A, "State"), enum(0x42000B, state))])


def read_request(conn):
    hdr = b""
    while len(hdr) < 8:
        c = conn.recv(8 - len(hdr))
        if not c:
            return None
        hdr += c
    n = struct.unpack(">I", hdr[4:8])[0]
    body = b""
    while len(body) < n:
        c = conn.recv(min(65536, n - len(body)))
        if not c:
            return None
        body += c
    return hdr + body


def bad_reply(mode, op, batch, uid):
    if mode == "truncated":
        good = state_reply(op, batch, uid)
        return good[:4] + struct.pack(">I", len(good) - 8 + 200) + good[8:]
    if mode == "garbage":
        return os.urandom(256)
    if mode == "bad-padding":
        good = bytearray(state_reply(op, batch, uid))
        # The Unique Identifier "1" is padded with 7 zero bytes: set one.
        i = good.find(b"\x42\x00\x94\x07")
        good[i + 8 + len(uid.encode())] = 0x5A
        return bytes(good)
    if mode == "deep":
        inner = i32(0x420001, 1)
        for _ in range(40):
            inner = st(0x420001, inner)
        return st(0x42007B, inner)
    if mode == "huge":
        return struct.pack(">II", (0x42007B << 8) | 1, 16 << 20) + b"\0" * 64
    if mode == "wrong-batch":
        return state_reply(op, b"\xff" * 8, uid)
    if mode == "wrong-uid":
        return state_reply(op, batch, uid + "-other")
    if mode == "http":
        return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    if mode == "pending":
        return reply(op, batch, None, status=2)
    if mode == "no-tag":
        return reply(op, batch, [text(0x420094, uid), bstr(0x4200C2, b"c" * 32),
                                 bstr(0x42003D, b"n" * 12)])
    if mode == "dates":
        now = int(time.time())
        return reply(op, batch, [
            text(0x420094, uid),
            st(0x420008, text(0x42000A, "State"), enum(0x42000B, 2)),
            st(0x420008, text(0x42000A, "Deactivation Date"), dt(0x42000B, now - 60)),
            st(0x420008, text(0x42000A, "Destroy Date"), dt(0x42000B, now + 86400))])
    if mode in ("skew-behind", "skew-ahead"):
        now, sign = int(time.time()), (-1 if mode == "skew-behind" else 1)
        return reply(op, batch, [
            text(0x420094, uid),
            st(0x420008, text(0x42000A, "State"), enum(0x42000B, 2)),
            st(0x420008, text(0x42000A, "Deactivation Date"), dt(0x42000B, now + sign * 3 * 3600))],
            clock=sign * 6 * 3600)
    if mode in ("ok", "mixed"):
        return state_reply(op, batch, uid)
    raise ValueError(mode)


def serve(mode, conn, log):
    try:
        if mode == "hang-tcp":
            time.sleep(3600)
            return
        conn.do_handshake()
        req = read_request(conn)
        if req is None:
            return
        op, batch, uid = request_fields(req)
        log.write("REQ %s op=%s\n" % (mode, op))
        log.flush()
        if mode == "hang-tls":
            time.sleep(3600)
            return
        if mode == "close":
            return
        if op == 0x1E:
            conn.sendall(discover_reply(batch))
            req = read_request(conn)
            if req is None:
                return
            op, batch, uid = request_fields(req)
            log.write("REQ %s op=%s\n" % (mode, op))
            log.flush()
        if mode == "mixed" and uid == "hang":
            time.sleep(3600)
            return
        if mode == "drip":
            for b in state_reply(op, batch, uid or "1"):
                conn.sendall(bytes([b]))
                time.sleep(0.3)
            return
        conn.sendall(bad_reply(mode, op, batch, uid or "1"))
        time.sleep(0.2)
    except (OSError, ssl.SSLError) as e:
        log.write("ERR %s %s\n" % (mode, e))
        log.flush()
    finally:
        try:
            conn.close()
        except OSError:
            pass


def listener(mode, port, ctx, log):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        if mode != "hang-tcp":
            c = ctx.wrap_socket(c, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=serve, args=(mode, c, log), daemon=True).start()


def selfcheck():
    from kmip.core import enums, utils
    from kmip.core.messages import messages
    batch = b"\x01" * 8
    for raw, want in ((discover_reply(batch), enums.Operation.DISCOVER_VERSIONS),
                      (state_reply(0x0B, batch, "7"), enums.Operation.GET_ATTRIBUTES)):
        m = messages.ResponseMessage()
        m.read(utils.BytearrayStream(raw), kmip_version=enums.KMIPVersion.KMIP_1_4)
        b = m.batch_items[0]
        assert b.operation.value == want, b.operation
        assert b.unique_batch_item_id.value == batch
        assert b.result_status.value == enums.ResultStatus.SUCCESS
    print("selfcheck ok: PyKMIP reads the fake's well-formed replies")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--selfcheck", action="store_true")
    a = ap.parse_args()
    if a.selfcheck:
        selfcheck()
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.ca:
        ctx.load_verify_locations(a.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    for spec in a.listen:
        mode, port = spec.rsplit(":", 1)
        threading.Thread(target=listener, args=(mode, int(port), ctx, sys.stderr),
                         daemon=True).start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
