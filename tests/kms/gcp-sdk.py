#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The official Google Cloud SDK against tests/kms/fake-gcp-kms.py:
google-cloud-kms (KeyManagementServiceClient, REST transport) with an
access token that google-auth obtains from the fake token endpoint with a
service-account key file (RS256 JWT bearer grant, token_uri in the file).
TLS is verified against the test CA ($REQUESTS_CA_BUNDLE).

  gcp-sdk.py HOST:PORT SA.json setup PROJECT LOCATION RING KEY   -> key name
  gcp-sdk.py HOST:PORT SA.json prove KEY                         -> PROVE lines
  gcp-sdk.py HOST:PORT SA.json disable|enable|destroy|restore VERSION
  gcp-sdk.py HOST:PORT SA.json rotate KEY                        -> new version name
  gcp-sdk.py HOST:PORT SA.json state KEY                         -> primary state
  gcp-sdk.py HOST:PORT SA.json error KEY OP                      -> the SDK's exception
"""
import sys

import google.auth.transport.requests
import google_crc32c
import grpc
from google.api_core import exceptions
from google.cloud import kms
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

AAD = b'lakecrypt:v2;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0;workspace=finance;project=ledger;keyconfig=gcp-kc'


def client(endpoint, sa_file):
    sa = service_account.Credentials.from_service_account_file(
        sa_file, scopes=['https://www.googleapis.com/auth/cloudkms'])
    sa.refresh(google.auth.transport.requests.Request())	# JWT bearer grant at token_uri
    creds = oauth2_credentials.Credentials(sa.token)
    return kms.KeyManagementServiceClient(transport='rest', credentials=creds,
                                          client_options={'api_endpoint': endpoint})


def crc(b):
    return google_crc32c.value(b)


def rpc_class(e):
    """The class api_core gives the google.rpc status of the error body
    (the REST transport itself maps by HTTP code: 403 Forbidden, 400
    BadRequest, of which PermissionDenied, FailedPrecondition are the gRPC
    subclasses)."""
    status = e.response.json()['error']['status']
    return type(exceptions.from_grpc_status(grpc.StatusCode[status], '')).__name__, status


def main():
    endpoint, sa_file, op = sys.argv[1:4]
    args = sys.argv[4:]
    c = client(endpoint, sa_file)
    if op == 'setup':
        project, location, ring, key = args
        parent = 'projects/%s/locations/%s' % (project, location)
        r = c.create_key_ring(request={'parent': parent, 'key_ring_id': ring, 'key_ring': {}})
        k = c.create_crypto_key(request={'parent': r.name, 'crypto_key_id': key, 'crypto_key': {
            'purpose': kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT,
            'version_template': {'algorithm': kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm.GOOGLE_SYMMETRIC_ENCRYPTION}}})
        print(k.name)
    elif op == 'prove':
        key = args[0]
        pt = b'0123456789abcdef0123456789abcdef'
        e = c.encrypt(request={'name': key, 'plaintext': pt, 'plaintext_crc32c': crc(pt),
                               'additional_authenticated_data': AAD,
                               'additional_authenticated_data_crc32c': crc(AAD)})
        print('PROVE encrypt name=%s verified_pt=%s verified_aad=%s ct_crc_ok=%s' % (
            e.name, e.verified_plaintext_crc32c, e.verified_additional_authenticated_data_crc32c,
            e.ciphertext_crc32c == crc(e.ciphertext)))
        d = c.decrypt(request={'name': key, 'ciphertext': e.ciphertext, 'ciphertext_crc32c': crc(e.ciphertext),
                               'additional_authenticated_data': AAD,
                               'additional_authenticated_data_crc32c': crc(AAD)})
        print('PROVE decrypt same=%s pt_crc_ok=%s used_primary=%s' % (
            d.plaintext == pt, d.plaintext_crc32c == crc(d.plaintext), d.used_primary))
        try:
            c.decrypt(request={'name': key, 'ciphertext': e.ciphertext, 'additional_authenticated_data': AAD + b'x'})
            print('PROVE wrong-aad accepted')
        except exceptions.GoogleAPICallError as x:
            print('PROVE wrong-aad %s %s' % (type(x).__name__, rpc_class(x)[1]))
        try:
            c.decrypt(request={'name': key, 'ciphertext': e.ciphertext, 'ciphertext_crc32c': crc(e.ciphertext) ^ 1,
                               'additional_authenticated_data': AAD})
            print('PROVE bad-crc accepted')
        except exceptions.GoogleAPICallError as x:
            print('PROVE bad-crc %s %s' % (type(x).__name__, rpc_class(x)[1]))
        k = c.get_crypto_key(request={'name': key})
        print('PROVE get name_ok=%s purpose=%s primary=%s state=%s' % (
            k.name == key, k.purpose.name, k.primary.name, k.primary.state.name))
    elif op in ('disable', 'enable'):
        st = kms.CryptoKeyVersion.CryptoKeyVersionState.DISABLED if op == 'disable' else \
            kms.CryptoKeyVersion.CryptoKeyVersionState.ENABLED
        v = c.update_crypto_key_version(request={'crypto_key_version': {'name': args[0], 'state': st},
                                                 'update_mask': {'paths': ['state']}})
        print(v.state.name)
    elif op == 'destroy':
        v = c.destroy_crypto_key_version(request={'name': args[0]})
        print(v.state.name, v.destroy_time.year > 2000)
    elif op == 'restore':
        print(c.restore_crypto_key_version(request={'name': args[0]}).state.name)
    elif op == 'rotate':
        v = c.create_crypto_key_version(request={'parent': args[0], 'crypto_key_version': {}})
        k = c.update_crypto_key_primary_version(request={'name': args[0],
                                                         'crypto_key_version_id': v.name.rsplit('/', 1)[1]})
        print(k.primary.name)
    elif op == 'state':
        print(c.get_crypto_key(request={'name': args[0]}).primary.state.name)
    elif op == 'error':
        key, what = args
        try:
            if what == 'encrypt':
                c.encrypt(request={'name': key, 'plaintext': b'x' * 32, 'additional_authenticated_data': AAD})
            elif what == 'decrypt':
                ct = c.encrypt(request={'name': key, 'plaintext': b'x' * 32,
                                        'additional_authenticated_data': AAD}).ciphertext
                c.decrypt(request={'name': key, 'ciphertext': ct, 'additional_authenticated_data': AAD})
            else:
                c.get_crypto_key(request={'name': key})
            print('NOERROR')
        except exceptions.GoogleAPICallError as x:
            cls, status = rpc_class(x)
            print('%s %s %s %s' % (type(x).__name__, cls, status, x.reason or '-'))
            # google.rpc.PreconditionFailure as api_core hands it over
            # (Cloud EKM's errors): its violations' types.
            for d in x.details or []:
                if isinstance(d, dict) and d.get('@type', '').endswith('google.rpc.PreconditionFailure'):
                    print('PRECONDITION %s' % ' '.join(v.get('type', '?') for v in d.get('violations', [])))
    else:
        sys.exit('unknown op %s' % op)


if __name__ == '__main__':
    main()
