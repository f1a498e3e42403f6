#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Drive tests/kms/fake-azure-kv.py with Microsoft's official SDK
(azure-keyvault-keys, azure-identity), the reference clients, both to
administer test keys and to prove that the fake speaks the real protocol:

  azure-admin.py VAULT_URL CMD [ARGS]
    create NAME [rsa|oct-hsm]   KeyClient.create_rsa_key / create_oct_key -> kid
    disable|enable NAME         KeyClient.update_key_properties -> enabled flag
    window NAME NBF|- EXP|-     KeyClient.update_key_properties(not_before, expires_on),
                                epoch s or - for none -> "window <nbf> <exp>"
    delete NAME                 KeyClient.begin_delete_key -> "deleted <date>"
    recover NAME                KeyClient.begin_recover_deleted_key -> kid
    state NAME                  KeyClient.get_key -> "enabled" / "disabled"
    roundtrip NAME              CryptographyClient wrap_key + unwrap_key
                                (RSA-OAEP-256) -> "roundtrip ok <kid>"
    unwrap-kid KID B64URL       CryptographyClient(KID).unwrap_key
                                (RSA-OAEP-256) -> base64url of the result
    wrap-kid KID B64URL         CryptographyClient(KID).wrap_key -> base64url
    error get|unwrap|wrap NAME      the error the SDK raises -> "<Class> <status> <code> <inner>"
    token secret|cert|imds|deny  a credential's get_token -> "token <scope>"
    claims secret|cert|imds|deny its token's oid and tid -> "claims oid=<oid>;tid=<tid>"
Environment: AZ_CA (test CA, also REQUESTS_CA_BUNDLE), AZ_AUTHORITY
(https://127.0.0.1:PORT), AZ_CERT (client certificate PEM), AZ_IMDS
(http://127.0.0.1:PORT).
"""
import base64
import datetime
import os
import sys

from azure.core.exceptions import HttpResponseError
from azure.identity import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
CLIENT = '11111111-1111-4111-8111-111111111111'
SECRET = 'fake-client-secret~0123456789'
CERT_CLIENT = '22222222-2222-4222-8222-222222222222'
DENY_CLIENT = '00000000-0000-0000-0000-0000000000d0'
DENY_SECRET = 'denied-client-secret~0123456789'
SCOPE = 'https://vault.azure.net/.default'

os.environ['REQUESTS_CA_BUNDLE'] = os.environ['AZ_CA']
authority = os.environ['AZ_AUTHORITY']


def credential(kind='secret'):
    # A non-Azure authority: no instance discovery (MSAL would ask
    # login.microsoftonline.com which authorities exist).
    if kind == 'secret':
        return ClientSecretCredential(TENANT, CLIENT, SECRET, authority=authority,
                                      disable_instance_discovery=True)
    if kind == 'deny':
        return ClientSecretCredential(TENANT, DENY_CLIENT, DENY_SECRET, authority=authority,
                                      disable_instance_discovery=True)
    if kind == 'cert':
        return CertificateCredential(TENANT, CERT_CLIENT, certificate_path=os.environ['AZ_CERT'],
                                     authority=authority, disable_instance_discovery=True,
                                     send_certificate_chain=False)
    if kind == 'imds':
        # azure-identity's documented override of the IMDS host.
        os.environ['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = os.environ['AZ_IMDS']
        return ManagedIdentityCredential()
    raise SystemExit('unknown credential ' + kind)


def main():
    vault, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    # The vault's challenge names resource https://vault.azure.net while the
    # host is 127.0.0.1: the SDK's check that they match is turned off.
    kc = KeyClient(vault, credential(), verify_challenge_resource=False)
    if cmd == 'create':
        if len(args) > 1 and args[1] == 'oct-hsm':
            k = kc.create_oct_key(args[0], size=256, hardware_protected=True)
        else:
            k = kc.create_rsa_key(args[0], size=2048)
        print(k.id)
    elif cmd in ('disable', 'enable'):
        k = kc.update_key_properties(args[0], enabled=cmd == 'enable')
        print('enabled' if k.properties.enabled else 'disabled')
    elif cmd == 'window':
        def when(x):
            return None if x == '-' else datetime.datetime.fromtimestamp(int(x), tz=datetime.timezone.utc)
        k = kc.update_key_properties(args[0], not_before=when(args[1]), expires_on=when(args[2]))
        ts = [int(t.timestamp()) if t else '-' for t in (k.properties.not_before, k.properties.expires_on)]
        print('window', *ts)
    elif cmd == 'delete':
        d = kc.begin_delete_key(args[0]).result()
        print('deleted', d.deleted_date.year > 2000, d.scheduled_purge_date is not None)
    elif cmd == 'recover':
        print(kc.begin_recover_deleted_key(args[0]).result().id)
    elif cmd == 'state':
        print('enabled' if kc.get_key(args[0]).properties.enabled else 'disabled')
    elif cmd == 'roundtrip':
        key = kc.get_key(args[0])
        cc = CryptographyClient(key, credential(), verify_challenge_resource=False)
        data = os.urandom(32)
        w = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, data)
        u = cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key)
        print('roundtrip', 'ok' if u.key == data else 'MISMATCH', w.key_id)
    elif cmd == 'unwrap-kid':
        cc = CryptographyClient(args[0], credential(), verify_challenge_resource=False)
        enc = base64.urlsafe_b64decode(args[1] + '=' * (-len(args[1]) % 4))
        u = cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, enc)
        print(base64.urlsafe_b64encode(u.key).rstrip(b'=').decode())
    elif cmd == 'wrap-kid':
        cc = CryptographyClient(args[0], credential(), verify_challenge_resource=False)
        data = base64.urlsafe_b64decode(args[1] + '=' * (-len(args[1]) % 4))
        w = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, data)
        print(base64.urlsafe_b64encode(w.encrypted_key).rstrip(b'=').decode())
    elif cmd == 'error':
        op, name = args[0], args[1]
        who = args[2] if len(args) > 2 else 'secret'
        try:
            if op == 'get':
                KeyClient(vault, credential(who), verify_challenge_resource=False).get_key(name)
            elif op == 'wrap':
                # The SDK's generated REST client: CryptographyClient would
                # wrap locally with the public key (and judge exp by the
                # host's clock), this asks the vault.
                k = kc.get_key(name)
                kc._client.wrap_key(name, k.properties.version,  # pylint: disable=protected-access
                                    {'alg': 'RSA-OAEP-256', 'value': 'A' * 43})
            else:
                cc = CryptographyClient(kc.get_key(name).id, credential(who),
                                        verify_challenge_resource=False)
                cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, b'\0' * 256)
            print('no error')
        except HttpResponseError as e:
            inner = ''
            if e.error is not None and e.error.innererror:
                inner = e.error.innererror.get('code', '')
            print(type(e).__name__, e.status_code, e.error.code if e.error else '-', inner or '-')
    elif cmd == 'claims':
        # what the SDK's token says of its principal (JWT payload, RFC 7519)
        import json
        t = credential(args[0]).get_token(SCOPE).token
        pl = t.split('.')[1]
        c = json.loads(base64.urlsafe_b64decode(pl + '=' * (-len(pl) % 4)))
        print('claims oid=%s;tid=%s' % (c['oid'], c['tid']))
    elif cmd == 'token':
        t = credential(args[0]).get_token(SCOPE)
        print('token', SCOPE if t.token and t.expires_on > 0 else 'EMPTY')
    else:
        raise SystemExit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
