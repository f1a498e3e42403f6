#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A test Azure Key Vault / Managed HSM, Microsoft identity platform token
endpoint and managed identity endpoint (IMDS), for tests/kms/azure.sh.
No real server can be run here (lowkey-vault is not served by the Maven
repository this machine reaches), so this one is checked in the same
suite against the official SDK (azure-keyvault-keys, azure-identity:
tests/kms/azure-sdk-check.py).

Vault (HTTPS, --vault PORT:CERT:KEY, repeatable), Key Vault REST 7.x:
  POST   /keys/NAME/create             kty RSA / RSA-HSM (2048) or oct / oct-HSM (256)
  GET    /keys/NAME[/VERSION]          key bundle (public JWK, attributes)
  PATCH  /keys/NAME[/VERSION]          attributes.enabled / exp / nbf, key_ops
  DELETE /keys/NAME                    soft delete -> /deletedkeys/NAME
  GET    /deletedkeys/NAME             deleted key bundle
  DELETE /deletedkeys/NAME             purge
  POST   /deletedkeys/NAME/recover     recover
  POST   /keys/NAME/VERSION/wrapkey    RSA-OAEP-256 (RSA), A256KW (oct)
  POST   /keys/NAME/VERSION/unwrapkey
  Errors as Key Vault sends them: {"error":{"code","message","innererror"}}:
  401 + WWW-Authenticate challenge without a valid token, 403 Forbidden /
  KeyDisabled, 403 ForbiddenByRbac for the client id ...d0 (no role),
  404 KeyNotFound, 400 BadParameter.
Token endpoint on the same port: POST /TENANT/oauth2/v2.0/token
(client_credentials with client_secret, or client_assertion: an RS256 JWT
whose signature is verified with the registered certificate picked by
x5t, aud/iss/sub/exp checked) and GET /TENANT/v2.0/.well-known/openid-configuration.
IMDS (HTTP, --imds PORT): GET /metadata/identity/oauth2/token with
"Metadata: true"; --hang PORT accepts and never answers.

Fault keys (by the name's first word, answered before any lookup):
  throttle-*  429 Retry-After: 1        burst-*   503 three times, then ok
  e5xx-*      500                        malformed-*  200, not JSON
  truncated-* 200, body cut short        oversized-*  200, 2 MiB
  hang-*      never answers              unauth-*  401 always
  nocode-*    403 without error code     policy-*  403 ForbiddenByPolicy
  html404-*   404 text/html              badparam-* 400 BadParameter
  hugekid-*   wrapkey answers a kid of another vault
The token endpoint answers 429 with Retry-After: 1 to client id 4444...
POST /_test/claims?mode=M (no token): tokens issued from now on carry
oid (uuid5 of the client id) and tid claims (ok), or nooid, longoid,
badoid, intoid, notjson, notb64, huge (a 20 KB payload), opaque (not a
JWT): the agent names its principal from them.
POST /_test/expire-next (no token): the next vault request's token is
treated as expired (401 with a challenge), as a token revoked or expired
mid-operation.
POST /_test/clock?offset=SECONDS[&date=none|garbage] (no token): the
vault's clock runs SECONDS ahead of the host's (negative: behind);
date=none leaves the Date header out, date=garbage sends one that is not
a date (a broken proxy).  That clock gives the Date
header and judges exp / nbf as Key Vault documents it ("Date-time
controlled operations"): wrapkey outside nbf..exp is 403 Forbidden,
unwrapkey still works.  Tokens keep the host's clock (another service).
Log lines (stderr): TOKEN <kind> <client>, REQ <method> <path>, JWT OK/BAD.
"""
import argparse
import base64
import email.utils
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import uuid
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import (InvalidUnwrap, aes_key_unwrap,
                                                    aes_key_wrap)

TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
SECRETS = {'11111111-1111-4111-8111-111111111111': 'fake-client-secret~0123456789',
           '00000000-0000-0000-0000-0000000000d0': 'denied-client-secret~0123456789'}
CERT_CLIENT = '22222222-2222-4222-8222-222222222222'
DENY_CLIENT = '00000000-0000-0000-0000-0000000000d0'
THROTTLED_CLIENT = '44444444-4444-4444-8444-444444444444'   # token endpoint answers 429
MI_CLIENT = 'managed-identity-system'
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)

lock = threading.Lock()
keys = {}       # name -> list of versions (dict), the last is current
deleted = {}    # name -> {'versions': [...], 'deletedDate': t, 'scheduledPurgeDate': t}
tokens = {}     # token -> {'client': id, 'exp': t, 'resource': r}
counts = {}
certs = {}      # x5t -> public key of a registered client certificate
token_life = [3599]
expire_next = [False]
clock_offset = [0]  # the vault's clock minus the host's, seconds
date_mode = ['ok']  # the Date header: ok, none, garbage


def log(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()


claims_mode = ['ok']


def oid_of(cid):
    """The object id of client @cid's service principal (as Entra gives one)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, 'lakecrypt-test-sp:' + cid))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


def new_version(kty, ops, attrs):
    v = {'version': secrets.token_hex(16), 'kty': kty, 'ops': ops or
         ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'],
         'enabled': attrs.get('enabled', True), 'exp': attrs.get('exp'), 'nbf': attrs.get('nbf'),
         'created': int(time.time())}
    if kty.startswith('RSA'):
        v['priv'] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        v['aes'] = os.urandom(32)
    return v


class Vault(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def date_time_string(self, timestamp=None):   # the Date header: the vault's clock
        return email.utils.formatdate(time.time() + clock_offset[0], usegmt=True)

    def send_response(self, code, message=None):   # BaseHTTPRequestHandler's, Date as set
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header('Server', self.version_string())
        if date_mode[0] != 'none':
            self.send_header('Date', 'Thursday-ish' if date_mode[0] == 'garbage' else self.date_time_string())

    def send(self, status, obj=None, raw=None, headers=(), ctype='application/json; charset=utf-8'):
        body = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b'')
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('x-ms-request-id', 'fake-az-%s' % secrets.token_hex(4))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, msg, inner=None, headers=()):
        e = {'code': code, 'message': msg}
        if inner:
            e['innererror'] = {'code': inner}
        self.send(status, {'error': e}, headers=headers)

    def challenge(self, msg='Unauthorized'):
        host = self.headers.get('Host', '127.0.0.1')
        self.error(401, 'Unauthorized', msg, headers=[(
            'WWW-Authenticate', 'Bearer authorization="https://%s/%s", resource="https://vault.azure.net"'
            % (host, TENANT))])

    def body(self):
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n else b''

    def do_GET(self):
        self.route('GET')

    def do_POST(self):
        self.route('POST')

    def do_PATCH(self):
        self.route('PATCH')

    def do_DELETE(self):
        self.route('DELETE')

    # ---- identity platform ------------------------------------------------
    def token_endpoint(self, path, data):
        host = self.headers.get('Host')
        if path.endswith('/.well-known/openid-configuration'):
            base = 'https://%s/%s' % (host, TENANT)
            return self.send(200, {'token_endpoint': base + '/oauth2/v2.0/token',
                                   'authorization_endpoint': base + '/oauth2/v2.0/authorize',
                                   'issuer': 'https://%s/%s/v2.0' % (host, TENANT),
                                   'device_authorization_endpoint': base + '/oauth2/v2.0/devicecode'})
        form = urllib.parse.parse_qs(data.decode(), keep_blank_values=True)
        f = {k: v[0] for k, v in form.items()}
        cid = f.get('client_id', '')
        scope = f.get('scope', '')
        if f.get('grant_type') != 'client_credentials' or not scope.endswith('/.default'):
            return self.send(400, {'error': 'unsupported_grant_type', 'error_codes': [70003]})
        if cid == THROTTLED_CLIENT:
            log('TOKEN THROTTLED %s' % cid)
            return self.send(429, {'error': 'temporarily_unavailable', 'error_codes': [50196]},
                             headers=[('Retry-After', '1')])
        if 'client_secret' in f:
            if SECRETS.get(cid) != f['client_secret']:
                log('TOKEN BAD-SECRET %s' % cid)
                return self.send(401, {'error': 'invalid_client', 'error_codes': [7000215],
                                       'error_description': 'AADSTS7000215: Invalid client secret provided.'})
            kind = 'secret'
        elif f.get('client_assertion_type') == 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer':
            a = f.get('client_assertion', '')
            try:
                # RS256 + x5t (SHA-1 thumbprint), as lakecrypt and older MSAL
                # sign; PS256 + x5t#S256, as current MSAL signs.
                hdr = jwt.get_unverified_header(a)
                thumb = (hdr.get('x5t#S256') or hdr['x5t']).rstrip('=')  # MSAL pads it
                pub = certs[thumb]
                claims = jwt.decode(a, pub, algorithms=['RS256', 'PS256'],
                                    audience='https://%s/%s/oauth2/v2.0/token' % (host, TENANT),
                                    options={'require': ['exp', 'iss', 'sub', 'aud', 'jti']})
                if claims['iss'] != cid or claims['sub'] != cid:
                    raise ValueError('iss/sub')
                log('JWT OK %s alg=%s %s=%s' % (cid, hdr['alg'], 'x5t#S256' if 'x5t#S256' in hdr else 'x5t', thumb))
            except Exception as e:  # noqa: BLE001 - any flaw is a refusal
                log('JWT BAD %s %s %s' % (cid, type(e).__name__, e))
                return self.send(401, {'error': 'invalid_client', 'error_codes': [700027],
                                       'error_description': 'AADSTS700027: Client assertion failed signature validation.'})
            kind = 'certificate'
        else:
            return self.send(400, {'error': 'invalid_request', 'error_codes': [900144]})
        return self.issue(kind, cid, scope[:-len('/.default')])

    def issue(self, kind, cid, resource, imds=False):
        now = int(time.time())
        # A JWT with the identity platform's claims (the agent reads oid
        # and tid to name its principal); CLAIMS_MODE[0] makes them hostile.
        claims = {'aud': resource, 'iss': 'https://sts.windows.net/%s/' % TENANT, 'appid': cid,
                  'oid': oid_of(cid), 'tid': TENANT, 'iat': now, 'exp': now + token_life[0],
                  'uti': b64u(os.urandom(12))}
        mode = claims_mode[0]
        if mode == 'nooid':
            del claims['oid']
        elif mode == 'longoid':
            claims['oid'] = 'a' * 200
        elif mode == 'badoid':
            claims['oid'] = 'x;tid=evil'
        elif mode == 'intoid':
            claims['oid'] = 7
        payload = b64u(json.dumps(claims).encode())
        if mode == 'notjson':
            payload = b64u(b'{"oid": "x", oops')
        elif mode == 'notb64':
            payload = 'not*base64url'
        elif mode == 'huge':
            payload = b64u(json.dumps(dict(claims, pad='A' * 20000)).encode())
        tok = 'eyJ0eXAiOiJKV1QifQ.' + payload + '.' + b64u(os.urandom(16))
        if mode == 'opaque':
            tok = b64u(os.urandom(40))
        with lock:
            tokens[tok] = {'client': cid, 'exp': now + token_life[0], 'resource': resource}
        log('TOKEN %s %s %s' % (kind, cid, resource))
        if imds:
            return self.send(200, {'access_token': tok, 'expires_in': str(token_life[0]),
                                   'expires_on': str(now + token_life[0]), 'resource': resource,
                                   'token_type': 'Bearer', 'client_id': cid})
        return self.send(200, {'token_type': 'Bearer', 'expires_in': token_life[0],
                               'ext_expires_in': token_life[0], 'access_token': tok})

    # ---- vault ------------------------------------------------------------
    def bundle(self, name, v, deleted_info=None):
        host = self.headers.get('Host')
        kid = 'https://%s/keys/%s/%s' % (host, name, v['version'])
        key = {'kid': kid, 'kty': v['kty'], 'key_ops': v['ops']}
        if 'priv' in v:
            pn = v['priv'].public_key().public_numbers()
            key['n'] = b64u(pn.n.to_bytes(256, 'big'))
            key['e'] = b64u(pn.e.to_bytes(3, 'big'))
        attrs = {'enabled': v['enabled'], 'created': v['created'], 'updated': v['created'],
                 'recoveryLevel': 'Recoverable+Purgeable', 'recoverableDays': 90}
        for k in ('exp', 'nbf'):
            if v.get(k) is not None:
                attrs[k] = v[k]
        b = {'key': key, 'attributes': attrs}
        if deleted_info:
            b['recoveryId'] = 'https://%s/deletedkeys/%s' % (host, name)
            b['deletedDate'] = deleted_info['deletedDate']
            b['scheduledPurgeDate'] = deleted_info['scheduledPurgeDate']
        return b

    def find(self, name, version):
        vs = keys.get(name)
        if not vs:
            return None
        if not version:
            return vs[-1]
        for v in vs:
            if v['version'] == version:
                return v
        return None

    def not_found(self, name):
        self.error(404, 'KeyNotFound', 'A key with (name/id) %s was not found in this key vault. '
                   'If you recently deleted this key you may be able to recover it using the correct '
                   'recovery command.' % name)

    def fault(self, mode, name, path):
        with lock:
            counts[name] = counts.get(name, 0) + 1
            nth = counts[name]
        if mode == 'throttle':
            return self.error(429, 'Throttled', 'Rate limit exceeded.', headers=[('Retry-After', '1')]) or True
        if mode == 'burst' and nth <= 3:
            return self.send(503, raw=b'<html>Service Unavailable</html>', ctype='text/html') or True
        if mode == 'e5xx':
            return self.error(500, 'InternalServerError', 'internal') or True
        if mode == 'malformed':
            return self.send(200, raw=b'{"key": {"kid": "x", oops') or True
        if mode == 'truncated':
            self.send_response(200)
            self.send_header('Content-Length', '400')
            self.end_headers()
            self.wfile.write(b'{"key":{"kid":"https://')
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if mode == 'oversized':
            return self.send(200, raw=b'{"pad":"' + b'A' * (2 << 20) + b'"}') or True
        if mode == 'hang':
            time.sleep(60)
            self.close_connection = True
            return True
        if mode == 'nocode':
            return self.send(403, raw=b'<html>Forbidden by network rule</html>', ctype='text/html') or True
        if mode == 'policy':
            return self.error(403, 'Forbidden', 'The user, group or application does not have keys get '
                              'permission on key vault.', 'ForbiddenByPolicy') or True
        if mode == 'html404':
            return self.send(404, raw=b'<html>Not Found</html>', ctype='text/html') or True
        if mode == 'badparam':
            return self.error(400, 'BadParameter', 'Property alg has invalid value') or True
        if mode == 'unauth':
            return self.challenge('token rejected') or True
        return False

    def route(self, method):
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        data = self.body()
        log('REQ %s %s' % (method, path))
        if path.startswith('/%s/' % TENANT):
            return self.token_endpoint(path, data)
        if path == '/_test/clock':            # the vault's clock runs OFFSET s off the host's
            q = urllib.parse.parse_qs(u.query)
            with lock:
                clock_offset[0] = int(q['offset'][0])
                date_mode[0] = q.get('date', ['ok'])[0]
            return self.send(204)
        if path == '/_test/claims':          # the claims of the tokens issued from now on
            with lock:
                claims_mode[0] = urllib.parse.parse_qs(u.query).get('mode', ['ok'])[0]
            return self.send(204)
        if path == '/_test/expire-next':     # the next vault request's token has expired
            with lock:
                expire_next[0] = True
            return self.send(204)
        q = urllib.parse.parse_qs(u.query)
        if not q.get('api-version', [''])[0]:
            return self.error(400, 'BadParameter', 'api-version is missing')
        auth = self.headers.get('Authorization', '')
        tok = auth[7:] if auth.startswith('Bearer ') else ''
        now = time.time()
        with lock:
            t = tokens.get(tok)
        if not t or t['exp'] < now:
            return self.challenge('token missing or expired')
        parts = [p for p in path.split('/') if p]
        name = parts[1] if len(parts) > 1 else ''
        mode = name.split('-')[0]
        with lock:
            expire = expire_next[0]
            expire_next[0] = False
            if expire:
                t['exp'] = 0
        if expire:
            log('EXPIRED %s' % t['client'])
            return self.challenge('token expired')
        if not path.endswith('/create') and self.fault(mode, name, path):
            return None
        if t['client'] == DENY_CLIENT:
            return self.error(403, 'Forbidden', 'Caller is not authorized to perform action on resource. '
                              'Action: Microsoft.KeyVault/vaults/keys/read', 'ForbiddenByRbac')
        body = json.loads(data) if data else {}
        with lock:
            return self.vault(method, parts, body)

    def vault(self, method, parts, body):
        if len(parts) < 2 or parts[0] not in ('keys', 'deletedkeys'):
            return self.error(400, 'BadParameter', 'unknown operation')
        name = parts[1]
        if parts[0] == 'deletedkeys':
            d = deleted.get(name)
            if not d:
                return self.not_found(name)
            if method == 'GET':
                return self.send(200, self.bundle(name, d['versions'][-1], d))
            if method == 'DELETE':
                del deleted[name]
                return self.send(204)
            if method == 'POST' and parts[2:] == ['recover']:
                keys[name] = d['versions']
                del deleted[name]
                return self.send(200, self.bundle(name, keys[name][-1]))
            return self.error(400, 'BadParameter', 'unknown operation')
        if method == 'POST' and parts[2:] == ['create']:
            if name in deleted:
                return self.error(409, 'Conflict', 'Key %s is currently in a deleted but recoverable state' % name)
            kty = body.get('kty', '')
            if kty not in ('RSA', 'RSA-HSM', 'oct', 'oct-HSM'):
                return self.error(400, 'BadParameter', 'kty %s not supported here' % kty)
            v = new_version(kty, body.get('key_ops'), body.get('attributes', {}))
            keys.setdefault(name, []).append(v)
            return self.send(200, self.bundle(name, v))
        if method == 'DELETE' and len(parts) == 2:
            if name not in keys:
                return self.not_found(name)
            now = int(time.time())
            deleted[name] = {'versions': keys.pop(name), 'deletedDate': now,
                             'scheduledPurgeDate': now + 90 * 86400}
            return self.send(200, self.bundle(name, deleted[name]['versions'][-1], deleted[name]))
        version = parts[2] if len(parts) > 2 else ''
        v = self.find(name, version)
        if not v:
            return self.not_found(name if not version else '%s/%s' % (name, version))
        if method == 'GET' and len(parts) <= 3:
            return self.send(200, self.bundle(name, v))
        if method == 'PATCH' and len(parts) <= 3:
            a = body.get('attributes', {})
            for k in ('enabled', 'exp', 'nbf'):
                if k in a:
                    v[k] = a[k]
            if 'key_ops' in body:
                v['ops'] = body['key_ops']
            return self.send(200, self.bundle(name, v))
        if method == 'POST' and len(parts) == 4 and parts[3] in ('wrapkey', 'unwrapkey'):
            return self.crypt(name, v, parts[3], body)
        return self.error(400, 'BadParameter', 'unknown operation')

    def crypt(self, name, v, op, body):
        if not v['enabled']:
            return self.error(403, 'Forbidden', 'Operation %s is not allowed on a disabled key.' % op,
                              'KeyDisabled')
        want = 'wrapKey' if op == 'wrapkey' else 'unwrapKey'
        vnow = time.time() + clock_offset[0]
        if op == 'wrapkey' and v.get('exp') is not None and vnow >= v['exp']:
            return self.error(403, 'Forbidden', 'Operation wrapKey is not allowed on an expired key.')
        if op == 'wrapkey' and v.get('nbf') is not None and vnow < v['nbf']:
            return self.error(403, 'Forbidden', 'Operation wrapKey is not allowed on a key that is not yet valid.')
        if want not in v['ops']:
            return self.error(403, 'Forbidden', 'Operation %s is not permitted on this key.' % want,
                              'KeyOperationForbidden')
        alg = body.get('alg')
        try:
            value = unb64u(body.get('value', ''))
        except Exception:  # noqa: BLE001
            return self.error(400, 'BadParameter', 'value is not base64url')
        ok = {'RSA': 'RSA-OAEP-256', 'RSA-HSM': 'RSA-OAEP-256', 'oct': 'A256KW', 'oct-HSM': 'A256KW'}
        if alg != ok[v['kty']]:
            return self.error(400, 'BadParameter', 'Algorithm %s is not supported for this key' % alg)
        try:
            if op == 'wrapkey':
                out = v['priv'].public_key().encrypt(value, OAEP) if 'priv' in v else aes_key_wrap(v['aes'], value)
            else:
                out = v['priv'].decrypt(value, OAEP) if 'priv' in v else aes_key_unwrap(v['aes'], value)
        except (ValueError, InvalidUnwrap):
            return self.error(400, 'BadParameter', 'Unwrap failed')
        kid = 'https://%s/keys/%s/%s' % (self.headers.get('Host'), name, v['version'])
        if name.startswith('hugekid'):
            kid = 'https://evil.vault.azure.net/keys/%s/%s' % (name, v['version'])
        return self.send(200, {'kid': kid, 'value': b64u(out)})


class Imds(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    send = Vault.send
    issue = Vault.issue

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        log('IMDS %s' % u.path)
        if self.headers.get('Metadata') != 'true':
            return self.send(400, {'error': 'invalid_request',
                                   'error_description': 'Required metadata header not specified'})
        if u.path != '/metadata/identity/oauth2/token' or not q.get('api-version') or not q.get('resource'):
            return self.send(400, {'error': 'invalid_request', 'error_description': 'bad request'})
        return self.issue('imds', q.get('client_id', MI_CLIENT), q['resource'], imds=True)


def hang_server(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(16)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)      # accepted, never read, never answered


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vault', action='append', default=[], help='PORT:CERT:KEY (repeatable)')
    ap.add_argument('--imds', type=int)
    ap.add_argument('--hang', type=int)
    ap.add_argument('--client-cert', action='append', default=[],
                    help='PEM certificate registered for the certificate client')
    ap.add_argument('--token-life', type=int, default=3599)
    a = ap.parse_args()
    token_life[0] = a.token_life
    for path in a.client_cert:
        with open(path, 'rb') as f:
            c = x509.load_pem_x509_certificate(f.read())
        certs[b64u(c.fingerprint(hashes.SHA1()))] = c.public_key()
        certs[b64u(c.fingerprint(hashes.SHA256()))] = c.public_key()
    threads = []
    for spec in a.vault:
        port, cert, key = spec.split(':')
        srv = ThreadingHTTPServer(('127.0.0.1', int(port)), Vault)
        srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        # Handshake in the handler's thread: a stalled client stalls only itself.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        threads.append(threading.Thread(target=srv.serve_forever, daemon=True))
    if a.imds:
        srv = ThreadingHTTPServer(('127.0.0.1', a.imds), Imds)
        srv.daemon_threads = True
        threads.append(threading.Thread(target=srv.serve_forever, daemon=True))
    if a.hang:
        threads.append(threading.Thread(target=hang_server, args=(a.hang,), daemon=True))
    for t in threads:
        t.start()
    log('fake-azure-kv: ready')
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
