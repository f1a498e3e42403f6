#!/usr/bin/python3
# A hostile etcd gateway for tests/etcd/check.sh: HTTPS with the test CA's
# member certificate, client certificates required (as --client-cert-auth),
# answering each request with the misbehaviour its key names (the key,
# base64-decoded, of range/put/txn/watch requests; the lease ID of a
# keepalive).  Usage: fake-gateway.py PORT CERT KEY CA
import base64
import json
import socketserver
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

H = '"header":{"cluster_id":"1","member_id":"2","revision":"5","raft_term":"2"}'
KV = '{"key":"%s","create_revision":"2","mod_revision":"%s","version":"1","value":"dg=="}'


def b64(s):
    return base64.b64encode(s.encode()).decode()


RANGE = {
    'good': '{%s,"kvs":[%s,%s],"count":"2","more":false}' % (H, KV % (b64('a'), 2), KV % (b64('b'), 5)),
    'dup-names': '{%s,"kvs":[%s],"count":"1","count":"0"}' % (H, KV % (b64('dup-names'), 2)),
    'int-number': '{"header":{"revision":5},"count":"0"}',
    'negative': '{"header":{"revision":"-5"},"count":"0"}',
    'order': '{%s,"kvs":[%s,%s],"count":"2"}' % (H, KV % (b64('b'), 2), KV % (b64('a'), 2)),
    'twice': '{%s,"kvs":[%s,%s],"count":"2"}' % (H, KV % (b64('a'), 2), KV % (b64('a'), 2)),
    'future-kv': '{%s,"kvs":[%s],"count":"1"}' % (H, KV % (b64('future-kv'), 9)),
    'count-lt': '{%s,"kvs":[%s],"count":"0"}' % (H, KV % (b64('count-lt'), 2)),
    'bad-b64': '{%s,"kvs":[{"key":"!!!!","mod_revision":"2","version":"1"}],"count":"1"}' % H,
    'trailing': '{%s,"count":"0"} {}' % H,
    'not-json': '<html>hello</html>',
    'kvs-object': '{%s,"kvs":{"key":"YQ=="},"count":"1"}' % H,
    'no-header': '{"count":"0"}',
    'big-value': '{%s,"kvs":[{"key":"YQ==","mod_revision":"2","version":"1","value":"%s"}],"count":"1"}'
                 % (H, base64.b64encode(b'v' * (1024 * 1024 + 1)).decode()),
    'many-kvs': '{%s,"kvs":[%s],"count":"10001"}'
                % (H, ','.join(KV % (b64('k%05d' % i), 2) for i in range(10001))),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a):
        pass

    def send(self, status, body, ctype='application/json'):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, lines, pause=0.0, hold=0.0):
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        for ln in lines:
            data = ln.encode()
            self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
            self.wfile.flush()
            time.sleep(pause)
        time.sleep(hold)
        self.wfile.write(b'0\r\n\r\n')

    def paged(self, name):
        # A prefix read in pages (lc_etcd_range_prefix_all) gone wrong: the
        # first request's key is the prefix, each next one the last key
        # read with a NUL byte after it.
        one = '{%s,"kvs":[%s],"count":"9","more":true}'
        if name == 'pgm-empty/':	# "more", and no kv to go on from
            return '{%s,"count":"9","more":true}' % H
        if name == 'pgm-back/':
            return one % (H, KV % (b64('pgm-back/b'), 2))
        if name == 'pgm-back/b\0':	# the next page goes backwards
            return one % (H, KV % (b64('pgm-back/a'), 2))
        if name == 'pgm-rev/':
            return one % (H, KV % (b64('pgm-rev/a'), 2))
        if name == 'pgm-rev/a\0':	# the next page at another revision
            return one % (H.replace('"revision":"5"', '"revision":"6"'), KV % (b64('pgm-rev/b'), 2))
        if name.startswith('pgm-endless/'):	# a new key in every page, for ever
            return one % (H, KV % (b64(name.replace('\0', 'x')), 2))
        return '{%s,"count":"0"}' % H

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        req = json.loads(self.rfile.read(n) or b'{}')
        path = self.path
        if path == '/v3/watch':
            name = base64.b64decode(req['create_request']['key']).decode()
        elif path == '/v3/lease/keepalive':
            name = 'keepalive-%s' % req.get('ID')
        elif path == '/v3/kv/txn':
            name = base64.b64decode(req['compare'][0]['key']).decode()
        else:
            name = base64.b64decode(req.get('key', '')).decode()
        created = '{"result":{%s,"created":true}}\n' % H
        if name in ('hang', 'hang2'):
            time.sleep(30)
            return self.send(200, '{%s}' % H)
        if name == 'drip':	# a byte a second: within any idle bound, beyond the total timeout
            return self.stream([' '] * 30 + ['{%s}' % H], pause=1.0)
        if name == 'huge':
            return self.send(200, '{%s,"pad":"%s"}' % (H, 'x' * (9 * 1024 * 1024)))
        if name == 'unavailable-html':
            return self.send(503, '<html>busy</html>', 'text/html')
        if name == 'denied':
            return self.send(403, '{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}')
        if path == '/v3/kv/range' and name in RANGE:
            return self.send(200, RANGE[name])
        if path == '/v3/kv/range' and name.startswith('pgm-'):
            return self.send(200, self.paged(name))
        if path == '/v3/kv/txn' and name == 'txn-responses':
            return self.send(200, '{%s,"succeeded":true,"responses":[{},{}]}' % H)
        if path == '/v3/kv/txn' and name == 'txn-succeeded-string':
            return self.send(200, '{%s,"succeeded":"true","responses":[{}]}' % H)
        if path == '/v3/lease/keepalive':
            if name == 'keepalive-7':
                return self.send(200, '{"result":{%s,"ID":"7","TTL":"5"}}\n{"result":{%s,"ID":"7","TTL":"5"}}\n' % (H, H))
            if name == 'keepalive-8':
                return self.send(200, '{"result":{%s,"ID":"9","TTL":"5"}}\n' % H)
            return self.send(200, '{"error":{"grpc_code":14,"message":"no leader"}}\n')
        if path == '/v3/watch':
            if name == 'watch-reorder':
                return self.stream([created, '{"result":{%s,"events":[{"kv":%s}]}}\n' % (H, KV % (b64('a'), 4)),
                                    '{"result":{%s,"events":[{"kv":%s}]}}\n' % (H, KV % (b64('a'), 3))])
            if name == 'watch-silent':
                return self.stream([created], hold=20)
            if name == 'watch-huge-line':
                return self.stream([created, '{"result":{%s,"pad":"%s"' % (H, 'x' * (9 * 1024 * 1024))])
            if name == 'watch-ends':
                return self.stream([created])
            if name == 'watch-error':
                return self.stream([created, '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}\n'])
        return self.send(404, '{"error":"unknown scenario","code":12,"message":"unknown scenario"}')


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv = Server(('127.0.0.1', port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
