#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""lakecrypt's own Google Cloud KMS test server (no official emulator
exists).  tests/kms/gcp.sh drives it with the official SDK
(google-cloud-kms, REST transport; google-auth for tokens) to prove the
protocol, then drives lakecrypt against it.

Cloud KMS REST v1 over HTTPS (serves TLS itself with the given
certificate), the subset lakecrypt and the test administration use:
  POST /v1/{parent=projects/*/locations/*}/keyRings?keyRingId=R
  POST /v1/{keyRing}/cryptoKeys?cryptoKeyId=K      (version 1, primary)
  GET  /v1/{cryptoKey}                              (with "primary")
  POST /v1/{cryptoKey}:encrypt | :decrypt           (AAD, CRC32C both ways)
  POST /v1/{cryptoKey}/cryptoKeyVersions            (new version)
  POST /v1/{cryptoKey}:updatePrimaryVersion         (rotation)
  GET  /v1/{version}; PATCH /v1/{version}?updateMask=state
  POST /v1/{version}:destroy | :restore
Requests need "Authorization: Bearer <token>" with a token this server
issued and has not expired, else 401 UNAUTHENTICATED.  Errors are
google.rpc.Status JSON with google.rpc.ErrorInfo / ResourceInfo details.
CRC32C is computed with google-crc32c (Google's own implementation), an
independent check of lakecrypt's table-driven one.

Tokens: POST /token (OAuth 2.0 JWT bearer grant, RFC 7523): the RS256
assertion is verified with the public key registered for its "iss"
(--sa EMAIL=PUBLIC.pem), "aud" must be https://oauth2.googleapis.com/token
(as Google documents and google-auth sends, whatever token_uri is), "exp"
in the future.  --metadata PORT serves the GCE metadata token endpoint (plain
HTTP, Metadata-Flavor: Google required); --plain PORT the same API over
plain HTTP (for the e2e test's key owner, never for lakecrypt); --hang PORT accepts connections
and never answers (token or metadata endpoint that stalls).

Fault keys: projects/p/locations/global/keyRings/faults/cryptoKeys/<mode>[-tag]
exist implicitly; <mode> picks the behaviour:
  ok          normal          e429       429 RESOURCE_EXHAUSTED always
  burst       503 UNAVAILABLE for the first 3 requests, then normal
  e500        500 INTERNAL    deadline   504 DEADLINE_EXCEEDED
  malformed   200, not JSON   truncated  200, Content-Length 400, 30 bytes
  oversized   200, 2 MiB      hang       never answers
  badcrc      wrong ciphertextCrc32c in the encrypt reply
  badptcrc    wrong plaintextCrc32c in the decrypt reply
  noverify    verifiedPlaintextCrc32c false
  expire      the token of the first request is expired (401), then normal
  apidisabled 403 PERMISSION_DENIED, ErrorInfo SERVICE_DISABLED
  userproject 403 PERMISSION_DENIED, ErrorInfo USER_PROJECT_DENIED
  invalidarg  400 INVALID_ARGUMENT   html  502 text/html
  echo        400 INVALID_ARGUMENT whose message repeats the Authorization header
  ekm         encrypt/decrypt: 400 FAILED_PRECONDITION with a
              google.rpc.PreconditionFailure (Cloud EKM: the external key
              manager did not answer); get: the version is ENABLED
Administration for tests: POST /admin/<op> with a JSON body:
  deny {"key", "deny"}: IAM deny on a key (403 PERMISSION_DENIED,
  IAM_PERMISSION_DENIED); with "only": "decrypt", only decrypt is denied
  (useToDecrypt taken away; get and encrypt still work); service {"project", "enabled"}: the API
  disabled for a project; expire-tokens {}; state {"version", "state"}:
  force any state (DESTROYED, PENDING_GENERATION...); token-mode {"mode":
  ok|e500|hang|short|bogus}; sa {"email", "pub"}: register a service
  account's public key (PEM); deny-principal {"email", "deny"}: every API
  call with a token of that service account is 403 PERMISSION_DENIED;
  email-mode {"mode": ok|html|long|two|empty|noat|e404|hang}: the metadata
  server's instance/service-accounts/default/email answer (ok:
  lakecrypt-vm@lc-test.iam.gserviceaccount.com, whose the metadata
  server's tokens are); GET /admin/stats: counters as JSON.
"""
import argparse
import base64
import datetime
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import google_crc32c
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

STATES = ['CRYPTO_KEY_VERSION_STATE_UNSPECIFIED', 'ENABLED', 'DISABLED', 'DESTROYED',
          'DESTROY_SCHEDULED', 'PENDING_GENERATION', 'PENDING_IMPORT', 'IMPORT_FAILED',
          'GENERATION_FAILED', 'PENDING_EXTERNAL_DESTRUCTION', 'EXTERNAL_DESTRUCTION_FAILED']
PURPOSES = ['CRYPTO_KEY_PURPOSE_UNSPECIFIED', 'ENCRYPT_DECRYPT', 'ASYMMETRIC_SIGN',
            'ASYMMETRIC_DECRYPT', 'RAW_ENCRYPT_DECRYPT', 'MAC']
KEY_RE = re.compile(r'^projects/([^/]+)/locations/([^/]+)/keyRings/([^/]+)/cryptoKeys/([^/:]+)$')
VER_RE = re.compile(r'^(projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/:]+)/cryptoKeyVersions/(\d+)$')
FAULT_RING = 'projects/p/locations/global/keyRings/faults'

lock = threading.RLock()
rings = {}        # key ring name -> createTime
keys = {}          # name -> {'versions': {id: {...}}, 'primary': id, 'next': n, 'deny': bool}
tokens = {}        # token -> expiry (epoch s)
disabled_projects = set()
counts = {}
stats = {'tokens_jwt': 0, 'tokens_metadata': 0, 'unauthenticated': 0, 'jwt_rejected': 0,
         'encrypt': 0, 'decrypt': 0, 'get': 0, 'crc_checked': 0}
token_mode = {'mode': 'ok'}
token_who = {}     # token -> the service account it was issued to
denied_principals = set()
METADATA_EMAIL = ['lakecrypt-vm@lc-test.iam.gserviceaccount.com']
email_mode = {'mode': 'ok'}
sa_keys = {}       # client_email -> public key
hold = []          # sockets kept open by 'hang'


def now_iso(t=None):
    t = time.time() if t is None else t
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def crc(b):
    return google_crc32c.value(b)


def log(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()


def new_version(key, vid):
    return {'id': vid, 'state': 'ENABLED', 'material': AESGCM.generate_key(256),
            'created': now_iso(), 'destroyTime': None}


def version_json(kname, v):
    o = {'name': '%s/cryptoKeyVersions/%d' % (kname, v['id']), 'state': v['state'],
         'createTime': v['created'], 'protectionLevel': 'SOFTWARE',
         'algorithm': 'GOOGLE_SYMMETRIC_ENCRYPTION'}
    if v['destroyTime']:
        o['destroyTime'] = v['destroyTime']
    return o


def key_json(kname, k):
    o = {'name': kname, 'purpose': 'ENCRYPT_DECRYPT', 'createTime': k['created'],
         'versionTemplate': {'protectionLevel': 'SOFTWARE', 'algorithm': 'GOOGLE_SYMMETRIC_ENCRYPTION'}}
    if k['primary'] in k['versions']:
        o['primary'] = version_json(kname, k['versions'][k['primary']])
    return o


def make_key(kname):
    k = {'versions': {}, 'primary': 1, 'next': 2, 'deny': False, 'created': now_iso()}
    k['versions'][1] = new_version(k, 1)
    keys[kname] = k
    return k


def b64d(s):
    return base64.b64decode(s, validate=True)


def enum_value(v, names):
    if isinstance(v, int):
        return names[v] if 0 <= v < len(names) else None
    return v if v in names else None


class ApiError(Exception):
    def __init__(self, http, status, message, reason=None, resource=None, metadata=None,
                 violations=None):
        super().__init__(message)
        self.http, self.status, self.message = http, status, message
        self.reason, self.resource, self.metadata = reason, resource, metadata or {}
        self.violations = violations

    def body(self):
        details = []
        if self.reason:
            details.append({'@type': 'type.googleapis.com/google.rpc.ErrorInfo', 'reason': self.reason,
                            'domain': 'googleapis.com', 'metadata': self.metadata})
        if self.resource:
            details.append({'@type': 'type.googleapis.com/google.rpc.ResourceInfo',
                            'resourceType': self.resource[0], 'resourceName': self.resource[1],
                            'description': self.message})
        if self.violations:
            details.append({'@type': 'type.googleapis.com/google.rpc.PreconditionFailure',
                            'violations': [{'type': t, 'subject': sub, 'description': d}
                                           for t, sub, d in self.violations]})
        e = {'code': self.http, 'message': self.message, 'status': self.status}
        if details:
            e['details'] = details
        return {'error': e}


def find_key(kname):
    """The key, or the NOT_FOUND Cloud KMS would give (ResourceInfo names
    what is missing: the key under an existing ring, or the ring)."""
    m = KEY_RE.match(kname)
    if not m:
        raise ApiError(400, 'INVALID_ARGUMENT', 'Resource name [%s] does not match any known type.' % kname)
    ring = kname.rsplit('/cryptoKeys/', 1)[0]
    if ring == FAULT_RING and kname not in keys:
        make_key(kname)
    if m.group(1) in disabled_projects:
        raise ApiError(403, 'PERMISSION_DENIED',
                       'Cloud Key Management Service (KMS) API has not been used in project %s before or it is disabled.' % m.group(1),
                       reason='SERVICE_DISABLED',
                       metadata={'service': 'cloudkms.googleapis.com', 'consumer': 'projects/%s' % m.group(1)})
    k = keys.get(kname)
    if k is None:
        if ring in rings:
            raise ApiError(404, 'NOT_FOUND', '%s not found.' % kname,
                           resource=('type.googleapis.com/google.cloud.kms.v1.CryptoKey', kname))
        raise ApiError(404, 'NOT_FOUND', '%s not found.' % ring,
                       resource=('type.googleapis.com/google.cloud.kms.v1.KeyRing', ring))
    if k['deny']:
        raise ApiError(403, 'PERMISSION_DENIED',
                       "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '%s' (or it may not exist)." % kname,
                       reason='IAM_PERMISSION_DENIED',
                       metadata={'permission': 'cloudkms.cryptoKeyVersions.useToEncrypt', 'resource': kname})
    return k


def find_version(vname):
    m = VER_RE.match(vname)
    if not m:
        raise ApiError(400, 'INVALID_ARGUMENT', 'Resource name [%s] does not match any known type.' % vname)
    k = find_key(m.group(1))
    v = k['versions'].get(int(m.group(2)))
    if v is None:
        raise ApiError(404, 'NOT_FOUND', '%s not found.' % vname,
                       resource=('type.googleapis.com/google.cloud.kms.v1.CryptoKeyVersion', vname))
    return m.group(1), k, v


def usable(kname, v):
    if v['state'] != 'ENABLED':
        raise ApiError(400, 'FAILED_PRECONDITION', '%s/cryptoKeyVersions/%d is not enabled, current state is: %s.'
                       % (kname, v['id'], v['state']))


def check_crc(req, data_field, crc_field, data):
    if crc_field in req:
        stats['crc_checked'] += 1
        if int(req[crc_field]) != crc(data):
            raise ApiError(400, 'INVALID_ARGUMENT',
                           'The checksum in field %s did not match the data in field %s.' % (crc_field, data_field))
        return True
    return False


def encrypt(kname, req, mode):
    k = find_key(kname)
    v = k['versions'].get(k['primary'])
    if v is None:
        raise ApiError(400, 'FAILED_PRECONDITION', '%s has no primary version.' % kname)
    usable(kname, v)
    try:
        pt = b64d(req.get('plaintext', ''))
        aad = b64d(req.get('additionalAuthenticatedData', ''))
    except ValueError:
        raise ApiError(400, 'INVALID_ARGUMENT', 'Invalid value at plaintext (TYPE_BYTES)')
    if not pt:
        raise ApiError(400, 'INVALID_ARGUMENT', 'plaintext must not be empty')
    vp = check_crc(req, 'plaintext', 'plaintextCrc32c', pt)
    va = check_crc(req, 'additional_authenticated_data', 'additionalAuthenticatedDataCrc32c', aad)
    nonce = os.urandom(12)
    ct = v['id'].to_bytes(4, 'big') + nonce + AESGCM(v['material']).encrypt(nonce, pt, aad)
    c = crc(ct)
    if mode == 'badcrc':
        c ^= 1
    stats['encrypt'] += 1
    return {'name': '%s/cryptoKeyVersions/%d' % (kname, v['id']), 'ciphertext': base64.b64encode(ct).decode(),
            'ciphertextCrc32c': str(c), 'verifiedPlaintextCrc32c': vp and mode != 'noverify',
            'verifiedAdditionalAuthenticatedDataCrc32c': va, 'protectionLevel': 'SOFTWARE'}


def decrypt(kname, req, mode):
    k = find_key(kname)
    if k.get('deny_decrypt'):
        raise ApiError(403, 'PERMISSION_DENIED',
                       "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied on resource '%s' (or it may not exist)." % kname,
                       reason='IAM_PERMISSION_DENIED',
                       metadata={'permission': 'cloudkms.cryptoKeyVersions.useToDecrypt', 'resource': kname})
    try:
        ct = b64d(req.get('ciphertext', ''))
        aad = b64d(req.get('additionalAuthenticatedData', ''))
    except ValueError:
        raise ApiError(400, 'INVALID_ARGUMENT', 'Invalid value at ciphertext (TYPE_BYTES)')
    check_crc(req, 'ciphertext', 'ciphertextCrc32c', ct)
    check_crc(req, 'additional_authenticated_data', 'additionalAuthenticatedDataCrc32c', aad)
    bad = ApiError(400, 'INVALID_ARGUMENT', "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
    if len(ct) < 4 + 12 + 16:
        raise bad
    v = k['versions'].get(int.from_bytes(ct[:4], 'big'))
    if v is None:
        raise bad
    usable(kname, v)
    try:
        pt = AESGCM(v['material']).decrypt(ct[4:16], ct[16:], aad)
    except InvalidTag:
        raise bad
    c = crc(pt)
    if mode == 'badptcrc':
        c ^= 1
    stats['decrypt'] += 1
    return {'plaintext': base64.b64encode(pt).decode(), 'plaintextCrc32c': str(c),
            'usedPrimary': v['id'] == k['primary'], 'protectionLevel': 'SOFTWARE'}


def b64url_d(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


def verify_jwt(assertion, token_url):
    """RFC 7523 assertion: RS256 signature by the registered key of iss."""
    try:
        h, c, s = assertion.split('.')
        hdr, claims = json.loads(b64url_d(h)), json.loads(b64url_d(c))
    except (ValueError, TypeError):
        return 'malformed assertion'
    if hdr.get('alg') != 'RS256':
        return 'alg is not RS256'
    pub = sa_keys.get(claims.get('iss'))
    if pub is None:
        return 'unknown iss'
    try:
        pub.verify(b64url_d(s), ('%s.%s' % (h, c)).encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return 'bad signature'
    now = time.time()
    # Google's token endpoint wants this audience whatever token_uri is
    # ("Using OAuth 2.0 for Server to Server Applications"); google-auth sends it.
    if claims.get('aud') != 'https://oauth2.googleapis.com/token':
        return 'aud %r is not https://oauth2.googleapis.com/token' % claims.get('aud')
    if not isinstance(claims.get('exp'), int) or claims['exp'] < now or claims['exp'] - claims.get('iat', 0) > 3600:
        return 'bad exp'
    if not isinstance(claims.get('iat'), int) or claims['iat'] > now + 60:
        return 'bad iat'
    scope = claims.get('scope', '').split()
    if not ({'https://www.googleapis.com/auth/cloudkms', 'https://www.googleapis.com/auth/cloud-platform'} & set(scope)):
        return 'no cloudkms scope'
    return None


def issue_token(kind, who=None):
    t = 'ya29.fake-%s-%s' % (kind, secrets.token_urlsafe(24))
    token_who[t] = who or METADATA_EMAIL[0]
    life = 3600
    if token_mode['mode'] == 'short':
        life = 2
    if token_mode['mode'] != 'bogus':	# 'bogus': tokens the API never accepts
        tokens[t] = time.time() + life
    stats['tokens_' + kind] += 1
    return {'access_token': t, 'expires_in': life, 'token_type': 'Bearer'}


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    token_url = None

    def log_message(self, fmt, *args):
        pass

    def send(self, status, obj=None, raw=None, ctype='application/json; charset=UTF-8', length=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n else b''

    def hang(self):
        hold.append(self.connection)
        while True:
            time.sleep(3600)

    # -- token endpoint (OAuth 2.0) and administration --
    def token(self, raw):
        form = urllib.parse.parse_qs(raw.decode())
        mode = token_mode['mode']
        if mode == 'hang':
            self.hang()
        if mode == 'e500':
            return self.send(500, {'error': 'internal_failure'})
        if form.get('grant_type') != ['urn:ietf:params:oauth:grant-type:jwt-bearer'] or 'assertion' not in form:
            return self.send(400, {'error': 'unsupported_grant_type'})
        why = verify_jwt(form['assertion'][0], self.token_url)
        try:
            iss = json.loads(b64url_d(form['assertion'][0].split('.')[1])).get('iss')
        except (ValueError, TypeError, IndexError):
            iss = None
        if why:
            stats['jwt_rejected'] += 1
            log('JWT REJECTED %s' % why)
            return self.send(400, {'error': 'invalid_grant', 'error_description': why})
        log('JWT OK')
        with lock:
            return self.send(200, issue_token('jwt', iss))

    def admin(self, op, req):
        with lock:
            if op == 'deny' and req.get('only') == 'decrypt':
                keys[req['key']]['deny_decrypt'] = bool(req['deny'])
            elif op == 'deny':
                keys[req['key']]['deny'] = bool(req['deny'])
            elif op == 'service':
                (disabled_projects.discard if req['enabled'] else disabled_projects.add)(req['project'])
            elif op == 'expire-tokens':
                for t in tokens:
                    tokens[t] = 0
            elif op == 'state':
                _, _, v = find_version(req['version'])
                v['state'] = req['state']
            elif op == 'token-mode':
                token_mode['mode'] = req['mode']
            elif op == 'sa':		# register a service account's public key
                sa_keys[req['email']] = serialization.load_pem_public_key(req['pub'].encode())
            elif op == 'deny-principal':	# every API call of that principal denied
                (denied_principals.add if req['deny'] else denied_principals.discard)(req['email'])
            elif op == 'email-mode':	# the metadata server's email answer
                email_mode['mode'] = req['mode']
            else:
                return self.send(404, {'error': 'no such admin op'})
        return self.send(200, {})

    # -- Cloud KMS --
    def authorised(self):
        auth = self.headers.get('Authorization', '')
        with lock:
            exp = tokens.get(auth[7:]) if auth.startswith('Bearer ') else None
            if exp is None or exp < time.time():
                stats['unauthenticated'] += 1
                raise ApiError(401, 'UNAUTHENTICATED',
                               'Request had invalid authentication credentials. Expected OAuth 2 access token.',
                               reason='ACCESS_TOKEN_EXPIRED' if exp is not None else 'CREDENTIALS_MISSING')
            who = token_who.get(auth[7:])
        if who in denied_principals:
            raise ApiError(403, 'PERMISSION_DENIED',
                           "Permission 'cloudkms.cryptoKeys.get' denied for %s (or it may not exist)." % who,
                           reason='IAM_PERMISSION_DENIED', metadata={'permission': 'cloudkms.cryptoKeys.get'})

    def fault(self, name, mode):
        if mode == 'e429':
            raise ApiError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', reason='RATE_LIMIT_EXCEEDED')
        if mode == 'burst':
            with lock:
                counts[name] = counts.get(name, 0) + 1
                if counts[name] <= 3:
                    raise ApiError(503, 'UNAVAILABLE', 'The service is currently unavailable.')
        if mode == 'e500':
            raise ApiError(500, 'INTERNAL', 'Internal error encountered.')
        if mode == 'deadline':
            raise ApiError(504, 'DEADLINE_EXCEEDED', 'Deadline exceeded.')
        if mode == 'apidisabled':
            raise ApiError(403, 'PERMISSION_DENIED', 'Cloud KMS API has not been used in project 12345 before or it is disabled.',
                           reason='SERVICE_DISABLED',
                           metadata={'service': 'cloudkms.googleapis.com', 'consumer': 'projects/12345'})
        if mode == 'userproject':
            raise ApiError(403, 'PERMISSION_DENIED', 'Caller does not have required permission to use project p.',
                           reason='USER_PROJECT_DENIED', metadata={'consumer': 'projects/p'})
        if mode == 'ekm' and urllib.parse.urlsplit(self.path).path.endswith((':encrypt', ':decrypt')):
            # Cloud EKM: the external key manager did not answer (Cloud
            # KMS "Cloud EKM errors": FAILED_PRECONDITION, PreconditionFailure
            # violation[0] the key's state, violation[1].type the domain);
            # the version itself stays ENABLED.
            raise ApiError(400, 'FAILED_PRECONDITION',
                           'The request to the external key manager timed out. The key version is in state: ENABLED.',
                           violations=[('KEY_STATE', name + '/cryptoKeyVersions/1', 'ENABLED'),
                                       ('EXTERNAL_KEY_MANAGER_UNAVAILABLE', 'https://ekm.example/v0/keys/k',
                                        'The external key manager did not respond in time.')])
        if mode == 'echo':	# a hostile server echoing the credential back
            raise ApiError(400, 'INVALID_ARGUMENT', 'bad request with %s' % self.headers.get('Authorization', ''))
        if mode == 'invalidarg':
            raise ApiError(400, 'INVALID_ARGUMENT', 'Invalid argument.')
        if mode == 'expire':
            with lock:
                counts[name] = counts.get(name, 0) + 1
                if counts[name] == 1:
                    auth = self.headers.get('Authorization', '')
                    tokens[auth[7:]] = 0
                    stats['unauthenticated'] += 1
                    raise ApiError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.',
                                   reason='ACCESS_TOKEN_EXPIRED')
        if mode == 'html':
            self.send(502, raw=b'<html><body>Bad Gateway</body></html>', ctype='text/html')
            return True
        if mode == 'malformed':
            self.send(200, raw=b'{"name": "projects/p/locations/global/keyRings/faults/cry')
            return True
        if mode == 'truncated':
            self.send(200, raw=b'{"ciphertext": "AAAAAAAAAAAAAA', length=400)
            self.close_connection = True
            return True
        if mode == 'oversized':
            self.send(200, raw=b'{"pad": "' + b'A' * (2 << 20) + b'"}')
            return True
        if mode == 'hang':
            self.hang()
        return False

    def api(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        path = urllib.parse.unquote(url.path)
        raw = self.body() if method in ('POST', 'PATCH') else b''
        if method == 'POST' and path == '/token':
            return self.token(raw)
        if path.startswith('/admin/'):
            if method == 'GET':
                with lock:
                    return self.send(200, stats)
            return self.admin(path[7:], json.loads(raw or b'{}'))
        if not path.startswith('/v1/'):
            return self.send(404, raw=b'not found', ctype='text/plain')
        name = path[4:]
        verb = ''
        if ':' in name.rsplit('/', 1)[-1]:
            name, verb = name.rsplit(':', 1)
        try:
            req = json.loads(raw) if raw else {}
        except ValueError:
            return self.send(400, ApiError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.').body())
        try:
            self.authorised()
            mode = ''
            if name.startswith(FAULT_RING + '/cryptoKeys/'):
                mode = name.split('/cryptoKeys/', 1)[1].split('/')[0].split('-')[0]
                if self.fault(name, mode):
                    return
            with lock:
                out = self.route(method, name, verb, query, req, mode)
            log('%s %s%s -> 200' % (method, name, ':' + verb if verb else ''))
            return self.send(200, out)
        except ApiError as e:
            log('%s %s%s -> %d %s %s' % (method, name, ':' + verb if verb else '', e.http, e.status, e.reason or ''))
            return self.send(e.http, e.body())

    def route(self, method, name, verb, query, req, mode):
        if method == 'POST' and verb == 'encrypt':
            return encrypt(name, req, mode)
        if method == 'POST' and verb == 'decrypt':
            return decrypt(name, req, mode)
        if method == 'GET' and KEY_RE.match(name):
            stats['get'] += 1
            return key_json(name, find_key(name))
        if method == 'GET' and VER_RE.match(name):
            kname, _, v = find_version(name)
            return version_json(kname, v)
        if method == 'POST' and re.match(r'^projects/[^/]+/locations/[^/]+/keyRings$', name):
            ring = '%s/%s' % (name, query['keyRingId'][0])
            if ring in rings:
                raise ApiError(409, 'ALREADY_EXISTS', '%s already exists.' % ring)
            rings[ring] = now_iso()
            return {'name': ring, 'createTime': rings[ring]}
        if method == 'POST' and re.match(r'^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys$', name):
            ring = name.rsplit('/', 1)[0]
            if ring not in rings:
                raise ApiError(404, 'NOT_FOUND', '%s not found.' % ring,
                               resource=('type.googleapis.com/google.cloud.kms.v1.KeyRing', ring))
            kname = '%s/%s' % (name, query['cryptoKeyId'][0])
            if kname in keys:
                raise ApiError(409, 'ALREADY_EXISTS', '%s already exists.' % kname)
            if enum_value(req.get('purpose', 1), PURPOSES) != 'ENCRYPT_DECRYPT':
                raise ApiError(400, 'INVALID_ARGUMENT', 'only ENCRYPT_DECRYPT keys in this fake')
            return key_json(kname, make_key(kname))
        if method == 'POST' and KEY_RE.match(name) and verb == 'updatePrimaryVersion':
            k = find_key(name)
            vid = int(req.get('cryptoKeyVersionId', '0'))
            if vid not in k['versions']:
                raise ApiError(404, 'NOT_FOUND', 'version not found')
            usable(name, k['versions'][vid])
            k['primary'] = vid
            return key_json(name, k)
        if method == 'POST' and re.match(r'.*/cryptoKeys/[^/]+/cryptoKeyVersions$', name) and not verb:
            kname = name.rsplit('/', 1)[0]
            k = find_key(kname)
            vid = k['next']
            k['next'] += 1
            k['versions'][vid] = new_version(k, vid)
            return version_json(kname, k['versions'][vid])
        if method == 'PATCH' and VER_RE.match(name):
            kname, _, v = find_version(name)
            if query.get('updateMask') != ['state']:
                raise ApiError(400, 'INVALID_ARGUMENT', 'updateMask must be state')
            st = enum_value(req.get('state'), STATES)
            if st not in ('ENABLED', 'DISABLED') or v['state'] not in ('ENABLED', 'DISABLED'):
                raise ApiError(400, 'FAILED_PRECONDITION', 'cannot change state %s to %s' % (v['state'], st))
            v['state'] = st
            return version_json(kname, v)
        if method == 'POST' and VER_RE.match(name) and verb == 'destroy':
            kname, _, v = find_version(name)
            if v['state'] not in ('ENABLED', 'DISABLED'):
                raise ApiError(400, 'FAILED_PRECONDITION', 'cannot destroy in state %s' % v['state'])
            v['state'] = 'DESTROY_SCHEDULED'
            v['destroyTime'] = now_iso(time.time() + 86400)
            return version_json(kname, v)
        if method == 'POST' and VER_RE.match(name) and verb == 'restore':
            kname, _, v = find_version(name)
            if v['state'] != 'DESTROY_SCHEDULED':
                raise ApiError(400, 'FAILED_PRECONDITION', 'not scheduled for destruction')
            v['state'] = 'DISABLED'
            v['destroyTime'] = None
            return version_json(kname, v)
        raise ApiError(404, 'NOT_FOUND', 'Method not found.')

    def do_GET(self):
        self.api('GET')

    def do_POST(self):
        self.api('POST')

    def do_PATCH(self):
        self.api('PATCH')


class Metadata(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if self.path.split('?')[0] == '/computeMetadata/v1/instance/service-accounts/default/email' and \
                self.headers.get('Metadata-Flavor') == 'Google':
            mode = email_mode['mode']
            data = {'ok': METADATA_EMAIL[0], 'html': '<html>Welcome</html>', 'long': 'a' * 300 + '@x.com',
                    'two': 'a@b.com\nc@d.com', 'empty': '', 'noat': 'lakecrypt-vm'}.get(mode, '').encode()
            if mode == 'hang':
                time.sleep(30)
            self.send_response(404 if mode == 'e404' else 200)
            self.send_header('Metadata-Flavor', 'Google')
            self.send_header('Content-Type', 'application/text')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path.split('?')[0] != '/computeMetadata/v1/instance/service-accounts/default/token':
            data = b'not found'
            status = 404
        elif self.headers.get('Metadata-Flavor') != 'Google':
            data = b'Missing Metadata-Flavor:Google header.'
            status = 403
        else:
            with lock:
                data = json.dumps(issue_token('metadata')).encode()
            status = 200
        self.send_response(status)
        self.send_header('Metadata-Flavor', 'Google')
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class TLSServer(ThreadingHTTPServer):
    """TLS handshake in the connection's own thread: a client that never
    completes one holds up nobody else."""
    daemon_threads = True
    ctx = None

    def finish_request(self, request, client_address):
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def hang_server(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        hold.append(c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tls', action='append', default=[], help='PORT:CERT:KEY')
    ap.add_argument('--metadata', type=int)
    ap.add_argument('--plain', type=int, help='PORT: the same API over plain HTTP (the key owner\'s console in the e2e test)')
    ap.add_argument('--hang', type=int)
    ap.add_argument('--sa', action='append', default=[], help='EMAIL=PUBLIC_KEY.pem')
    a = ap.parse_args()
    for s in a.sa:
        email, path = s.split('=', 1)
        with open(path, 'rb') as f:
            sa_keys[email] = serialization.load_pem_public_key(f.read())
    rings[FAULT_RING] = now_iso()
    servers = []
    for spec in a.tls:
        port, cert, key = spec.split(':')
        h = type('H%s' % port, (Handler,), {'token_url': 'https://127.0.0.1:%s/token' % port})
        srv = TLSServer(('127.0.0.1', int(port)), h)
        srv.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.ctx.load_cert_chain(cert, key)
        servers.append(srv)
    if a.plain:
        srv = ThreadingHTTPServer(('127.0.0.1', a.plain), Handler)
        srv.daemon_threads = True
        servers.append(srv)
    if a.metadata:
        srv = ThreadingHTTPServer(('127.0.0.1', a.metadata), Metadata)
        srv.daemon_threads = True
        servers.append(srv)
    if a.hang:
        threading.Thread(target=hang_server, args=(a.hang,), daemon=True).start()
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    log('fake-gcp-kms ready')
    while True:
        time.sleep(3600)


if __name__ == '__main__':
    main()
