#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A fake AWS KMS endpoint (HTTPS) and instance metadata service (HTTP)
for the fault cases of tests/kms/check.sh.  Run with a Python that has
botocore: every KMS request is re-signed with botocore (SigV4Auth, the
request's own X-Amz-Date, the credentials of its access key id) and its
Authorization header must match byte for byte, else the answer is
InvalidSignatureException and "SIGV4 MISMATCH" is logged.

The key id picks the behaviour: arn:aws:kms:eu-west-2:111122223333:key/<mode>[-tag]
  ok         Encrypt/Decrypt/DescribeKey work (context enforced)
  okarn, wrongregion, wrongkey, aliasarn
             as ok; DescribeKey's Arn for a bare key id is its own ARN, one
             of another region, another key's, an alias ARN
  throttle   400 ThrottlingException, always
  burst      503 for the first 3 requests of this key id, then ok
  e5xx       500 always
  malformed  200 with a body that is not JSON
  truncated  200, Content-Length 400, 30 bytes sent, connection closed
  oversized  200 with a 2 MiB body
  hang       reads the request, never answers
  disabled   400 DisabledException
  invalid    400 InvalidCiphertextException
  notfound   400 NotFoundException
  policy     as ok, under the key policy an unsigned POST /admin/policy
             {"key": ARN, "policy": {...}} set (none: all allowed): its
             Allow statements for kms:Encrypt/Decrypt/DescribeKey with the
             condition operators Documentation/kms-providers.md uses
             (ForAllValues:StringEquals on kms:EncryptionContextKeys, Null
             and StringEquals on kms:EncryptionContext:<key>), as AWS
             evaluates them; no Allow matches: 400 AccessDeniedException.
             Any other operator is refused (500), never guessed.
A form-encoded POST is STS AssumeRoleWithWebIdentity (token
web-identity-jwt-42), answered with the AKIDIMDS credentials in XML, or,
with Action=GetCallerIdentity at path /sts/<mode>/ (signed, checked with
botocore as the KMS requests), STS GetCallerIdentity:
  ok         the principal POST /admin/creds gave the access key
             ({"akid", "secret", "arn"}), else arn:aws:iam::111122223333:user/fake
  assumed    an assumed role, a new session name each time
  oversized  200 with a 2 MiB body       malformed  200, not XML
  noarn      200 without Arn             twoarn     200 with two Arn
  badarn     Arn not a principal ARN     longarn    Arn of 3000 characters
  account    Account is not the Arn's    denied     403 AccessDenied
  throttle   400 Throttling              hang       never answers
POST /admin/deny {"key": ARN, "akids": [...]}: that key's requests signed
by those access keys are 400 AccessDeniedException (a principal the key
policy does not name); an empty list allows all again.
Instance metadata (--imds PORT): IMDSv2 token, role "lakecrypt-test",
credentials AKIDIMDS with a session token; GET /container-creds serves
the same as a container credentials endpoint (Authorization
container-auth-token-42).  --imds-hang PORT accepts
connections and never answers.
"""
import argparse
import base64
import datetime
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CREDS = {
    'AKIDFAKE': ('fakeSecretKey/0123456789abcdefghijklmnopqrstu', None),
    'AKIDIMDS': ('imdsSecretKey/0123456789abcdefghijklmnopqrstu',
                 'IQoJb3JpZ2luX2VjEFAKE+session/token=='),
}
IMDS_TOKEN = 'imds-token-0123456789'
CONTAINER_TOKEN = 'container-auth-token-42'
WEB_IDENTITY_TOKEN = 'web-identity-jwt-42'
counts = {}
lock = threading.Lock()
stats = {'match': 0, 'mismatch': 0}


policies = {}
denied_akids = {}
ARNS = {}


def _values(v):
    return v if isinstance(v, list) else [v]


def condition_holds(cond, ctx):
    """One statement's Condition block against an EncryptionContext map."""
    for op, tests in cond.items():
        for ckey, want in tests.items():
            want = _values(want)
            if op == 'ForAllValues:StringEquals' and ckey == 'kms:EncryptionContextKeys':
                if not all(k in want for k in ctx):
                    return False
            elif op == 'Null' and ckey.startswith('kms:EncryptionContext:'):
                absent = ckey[len('kms:EncryptionContext:'):] not in ctx
                if absent != (str(want[0]).lower() == 'true'):
                    return False
            elif op == 'StringEquals' and ckey.startswith('kms:EncryptionContext:'):
                k = ckey[len('kms:EncryptionContext:'):]
                if k not in ctx or ctx[k] not in want:
                    return False
            else:
                raise ValueError('unsupported condition %s %s' % (op, ckey))
    return True


def policy_allows(policy, op, key, ctx):
    for st in policy.get('Statement', []):
        if st.get('Effect') != 'Allow' or 'kms:' + op not in _values(st.get('Action', [])):
            continue
        if st.get('Resource') not in ('*', key):
            continue
        if condition_holds(st.get('Condition', {}), ctx):
            return True
    return False


def log(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()


def botocore_authorization(handler, body):
    """The Authorization header botocore computes for this request."""
    auth = handler.headers.get('Authorization', '')
    try:
        cred = auth.split('Credential=')[1].split(',')[0]
        akid, date, region, service, _ = cred.split('/')
    except (IndexError, ValueError):
        return None, None
    if akid not in CREDS:
        return None, akid
    secret, token = CREDS[akid]
    when = datetime.datetime.strptime(handler.headers['X-Amz-Date'], '%Y%m%dT%H%M%SZ')
    host = handler.headers['Host']
    hdrs = {'Content-Type': handler.headers['Content-Type']}
    if handler.headers.get('X-Amz-Target'):
        hdrs['X-Amz-Target'] = handler.headers['X-Amz-Target']
    req = AWSRequest(method='POST', url='https://%s%s' % (host, handler.path), data=body, headers=hdrs)
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: when
    try:
        SigV4Auth(Credentials(akid, secret, token), service, region).add_auth(req)
    finally:
        botocore.auth.get_current_datetime = saved
    if token and handler.headers.get('X-Amz-Security-Token') != token:
        return 'token differs', akid
    return req.headers['Authorization'], akid


class KMS(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj=None, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/x-amz-json-1.1')
        self.send_header('x-amzn-RequestId', 'fake-%d' % int(time.time() * 1e6))
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, typ, msg, status=400):
        self.answer(status, {'__type': typ, 'message': msg})

    def sts(self, body):
        """STS AssumeRoleWithWebIdentity (query protocol, XML answer)."""
        form = urllib.parse.parse_qs(body.decode())
        if form.get('Action') != ['AssumeRoleWithWebIdentity'] or \
                form.get('WebIdentityToken') != [WEB_IDENTITY_TOKEN] or not form.get('RoleArn'):
            data = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                    '<Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>bad token</Message>'
                    '</Error><RequestId>fake-sts</RequestId></ErrorResponse>').encode()
            status = 400
        else:
            log('STS web identity credentials issued for %s' % form['RoleArn'][0])
            secret, token = CREDS['AKIDIMDS']
            exp = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
            data = ('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                    '<AssumeRoleWithWebIdentityResult>'
                    '<SubjectFromWebIdentityToken>system:serviceaccount:lakecrypt:agent</SubjectFromWebIdentityToken>'
                    '<AssumedRoleUser><Arn>%s/%s</Arn><AssumedRoleId>AROAFAKE:%s</AssumedRoleId></AssumedRoleUser>'
                    '<Credentials><AccessKeyId>AKIDIMDS</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>'
                    '<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>'
                    '<Audience>sts.amazonaws.com</Audience><Provider>fake</Provider>'
                    '</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>fake-sts</RequestId>'
                    '</ResponseMetadata></AssumeRoleWithWebIdentityResponse>' % (
                        form['RoleArn'][0], form['RoleSessionName'][0], form['RoleSessionName'][0],
                        secret, token, exp)).encode()
            status = 200
        self.send_response(status)
        self.send_header('Content-Type', 'text/xml')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def xml(self, status, text):
        data = text if isinstance(text, bytes) else text.encode()
        self.send_response(status)
        self.send_header('Content-Type', 'text/xml')
        self.send_header('x-amzn-RequestId', 'fake-sts-%d' % int(time.time() * 1e6))
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def caller_identity(self, body):
        """STS GetCallerIdentity (query protocol, XML answer), mode from the path."""
        want, akid = botocore_authorization(self, body)
        if want != self.headers.get('Authorization'):
            with lock:
                stats['mismatch'] += 1
            log('SIGV4 MISMATCH sts akid=%s' % akid)
            return self.xml(403, '<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>'
                                 '<Message>botocore computes another signature</Message></Error></ErrorResponse>')
        with lock:
            stats['match'] += 1
        log('SIGV4 MATCH STS.GetCallerIdentity %s' % akid)
        parts = self.path.strip('/').split('/')
        mode = parts[1] if len(parts) > 1 and parts[0] == 'sts' else 'ok'
        arn = ARNS.get(akid, 'arn:aws:iam::111122223333:user/fake')
        acct = arn.split(':')[4]
        if mode == 'assumed':
            arn, acct = 'arn:aws:sts::111122223333:assumed-role/lakecrypt-node/i-%d' % int(time.time() * 1e6), '111122223333'
        elif mode == 'badarn':
            arn = 'not-an-arn'
        elif mode == 'longarn':
            arn = 'arn:aws:iam::111122223333:user/' + 'x' * 3000
        elif mode == 'account':
            acct = '999999999999'
        elif mode == 'oversized':
            return self.xml(200, b'<GetCallerIdentityResponse>' + b'A' * (2 << 20))
        elif mode == 'malformed':
            return self.xml(200, '<GetCallerIdentityResponse><oops')
        elif mode == 'denied':
            return self.xml(403, '<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>'
                                 '<Message>denied</Message></Error></ErrorResponse>')
        elif mode == 'throttle':
            return self.xml(400, '<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>'
                                 '<Message>Rate exceeded</Message></Error></ErrorResponse>')
        elif mode == 'hang':
            time.sleep(60)
            return None
        el = '<Arn>%s</Arn>' % arn
        if mode == 'noarn':
            el = ''
        elif mode == 'twoarn':
            el = el + '<Arn>arn:aws:iam::111122223333:user/other</Arn>'
        return self.xml(200, '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                             '<GetCallerIdentityResult>%s<UserId>AIDAFAKE</UserId><Account>%s</Account>'
                             '</GetCallerIdentityResult><ResponseMetadata><RequestId>fake-sts</RequestId>'
                             '</ResponseMetadata></GetCallerIdentityResponse>' % (el, acct))

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n)
        if self.path == '/admin/creds':
            req = json.loads(body)
            with lock:
                CREDS[req['akid']] = (req['secret'], None)
                if req.get('arn'):
                    ARNS[req['akid']] = req['arn']
            return self.answer(200, {})
        if self.path == '/admin/deny':
            req = json.loads(body)
            with lock:
                denied_akids[req['key']] = set(req['akids'])
            log('DENY on %s for %s' % (req['key'], ','.join(sorted(req['akids']))))
            return self.answer(200, {})
        if self.headers.get('Content-Type', '').startswith('application/x-www-form-urlencoded') and \
                urllib.parse.parse_qs(body.decode()).get('Action') == ['GetCallerIdentity']:
            return self.caller_identity(body)
        if self.path == '/admin/policy':
            req = json.loads(body)
            with lock:
                policies[req['key']] = req['policy']
            log('POLICY set on %s' % req['key'])
            return self.answer(200, {})
        if self.headers.get('Content-Type', '').startswith('application/x-www-form-urlencoded'):
            return self.sts(body)
        want, akid = botocore_authorization(self, body)
        got = self.headers.get('Authorization')
        if want != got:
            with lock:
                stats['mismatch'] += 1
            log('SIGV4 MISMATCH akid=%s\n  got  %s\n  want %s' % (akid, got, want))
            return self.error('InvalidSignatureException', 'botocore computes another signature')
        with lock:
            stats['match'] += 1
        log('SIGV4 MATCH %s %s' % (self.headers['X-Amz-Target'], akid))
        op = self.headers['X-Amz-Target'].split('.')[-1]
        req = json.loads(body)
        key = req.get('KeyId', '')
        mode = key.rsplit('/', 1)[-1].split('-')[0]
        with lock:
            counts[key] = counts.get(key, 0) + 1
            nth = counts[key]
        log('CONN %s port=%d' % (key, self.client_address[1]))
        if mode == 'throttle':
            return self.error('ThrottlingException', 'Rate exceeded')
        if mode == 'burst' and nth <= 3:
            return self.answer(503, raw=b'<html>Service Unavailable</html>')
        if mode == 'e5xx':
            return self.error('KMSInternalException', 'internal', 500)
        if mode == 'malformed':
            return self.answer(200, raw=b'{"CiphertextBlob": "AAEC", oops')
        if mode == 'truncated':
            self.send_response(200)
            self.send_header('Content-Length', '400')
            self.end_headers()
            self.wfile.write(b'{"CiphertextBlob":"AAECAwQFBgcI')
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if mode == 'oversized':
            return self.answer(200, raw=b'{"Pad":"' + b'A' * (2 << 20) + b'"}')
        if mode == 'hang':
            time.sleep(60)
            return None
        if mode == 'disabled':
            return self.error('DisabledException', '%s is disabled.' % key)
        if mode == 'invalid':
            return self.error('InvalidCiphertextException', '')
        if mode == 'notfound':
            return self.error('NotFoundException', 'Key %s does not exist' % key)
        if akid in denied_akids.get(key, ()):
            return self.error('AccessDeniedException',
                              'User: %s is not authorized to perform: kms:%s on resource: %s'
                              % (ARNS.get(akid, akid), op, key))
        if mode == 'policy' and key in policies:
            try:
                allowed = policy_allows(policies[key], op, key, req.get('EncryptionContext', {}))
            except ValueError as e:
                return self.error('KMSInternalException', 'fake: %s' % e, 500)
            if not allowed:
                log('POLICY DENIES %s %s' % (op, json.dumps(req.get('EncryptionContext', {}), sort_keys=True)))
                return self.error('AccessDeniedException',
                                  'User: arn:aws:iam::111122223333:user/fake is not authorized to perform: kms:%s '
                                  'on resource: %s because no resource-based policy allows the kms:%s action'
                                  % (op, key, op))
        ctx = json.dumps(req.get('EncryptionContext', {}), sort_keys=True).encode()
        tag = hashlib.sha256(ctx).digest()[:8]
        if op == 'Encrypt':
            pt = base64.b64decode(req['Plaintext'])
            return self.answer(200, {'CiphertextBlob': base64.b64encode(b'FK' + tag + pt).decode(),
                                     'KeyId': key, 'EncryptionAlgorithm': 'SYMMETRIC_DEFAULT'})
        if op == 'Decrypt':
            blob = base64.b64decode(req['CiphertextBlob'])
            if blob[:2] != b'FK' or blob[2:10] != tag:
                return self.error('InvalidCiphertextException', '')
            return self.answer(200, {'Plaintext': base64.b64encode(blob[10:]).decode(), 'KeyId': key})
        if op == 'DescribeKey':
            kid = key.rsplit('/', 1)[-1]
            # What DescribeKey says is the ARN of a bare key id: its own
            # (okarn), one of another region (wrongregion), another key's
            # (wrongkey), an alias (aliasarn).
            arns = {'okarn': 'arn:aws:kms:eu-west-2:111122223333:key/' + kid,
                    'wrongregion': 'arn:aws:kms:us-east-1:111122223333:key/' + kid,
                    'wrongkey': 'arn:aws:kms:eu-west-2:111122223333:key/okarn-other',
                    'aliasarn': 'arn:aws:kms:eu-west-2:111122223333:alias/' + kid}
            return self.answer(200, {'KeyMetadata': {'Arn': arns.get(mode, key), 'KeyId': kid,
                                                     'KeyState': 'Enabled', 'Enabled': True}})
        return self.error('UnknownOperationException', op)


class IMDS(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if self.path == '/latest/api/token' and self.headers.get('X-aws-ec2-metadata-token-ttl-seconds'):
            log('IMDS token issued')
            return self.answer(200, IMDS_TOKEN)
        return self.answer(400, 'bad token request')

    def creds_json(self):
        exp = (datetime.datetime.utcnow() + datetime.timedelta(hours=6)).strftime('%Y-%m-%dT%H:%M:%SZ')
        secret, token = CREDS['AKIDIMDS']
        return json.dumps({'Code': 'Success', 'Type': 'AWS-HMAC', 'AccessKeyId': 'AKIDIMDS',
                           'SecretAccessKey': secret, 'Token': token, 'Expiration': exp})

    def do_GET(self):
        if self.path == '/container-creds':
            if self.headers.get('Authorization') != CONTAINER_TOKEN:
                return self.answer(401, 'bad authorization')
            log('container credentials issued')
            return self.answer(200, self.creds_json())
        if self.headers.get('X-aws-ec2-metadata-token') != IMDS_TOKEN:
            return self.answer(401, 'no token')
        if self.path == '/latest/meta-data/iam/security-credentials/':
            return self.answer(200, 'lakecrypt-test')
        if self.path == '/latest/meta-data/iam/security-credentials/lakecrypt-test':
            return self.answer(200, self.creds_json())
        return self.answer(404, 'not found')


def hang_server(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(64)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)	# accept, read nothing, answer nothing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kms', type=int, action='append', default=[],
                    help='PORT:CERT:KEY, an HTTPS KMS endpoint (repeatable)')
    ap.add_argument('--kms-tls', action='append', default=[])
    ap.add_argument('--imds', type=int)
    ap.add_argument('--imds-hang', type=int)
    a = ap.parse_args()
    threads = []
    for spec in a.kms_tls:
        port, cert, key = spec.split(':')
        srv = ThreadingHTTPServer(('127.0.0.1', int(port)), KMS)
        srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threads.append(threading.Thread(target=srv.serve_forever, daemon=True))
    if a.imds:
        srv = ThreadingHTTPServer(('127.0.0.1', a.imds), IMDS)
        srv.daemon_threads = True
        threads.append(threading.Thread(target=srv.serve_forever, daemon=True))
    if a.imds_hang:
        threads.append(threading.Thread(target=hang_server, args=(a.imds_hang,), daemon=True))
    for t in threads:
        t.start()
    log('fake-aws: ready')
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
