#!/usr/bin/python3
"""Administer keys in a KMIP server with PyKMIP's own client (the vendor's
SDK), for tests/kms/kmip.sh and the e2e test:

  kmip-admin.py HOST PORT CA CERT KEY create          -> prints the new key's
                                                       Unique Identifier (AES-256,
                                                       Encrypt|Decrypt, Active)
  kmip-admin.py HOST PORT CA CERT KEY create-inactive -> same, left Pre-Active
  kmip-admin.py HOST PORT CA CERT KEY revoke UID      -> Revoke (key compromise
                                                       not claimed): Deactivated
  kmip-admin.py HOST PORT CA CERT KEY destroy UID     -> Destroy
  kmip-admin.py HOST PORT CA CERT KEY state UID       -> prints the State name
  kmip-admin.py HOST PORT CA CERT KEY encrypt UID     -> Encrypt with PyKMIP's
                                                       client, prints ok
"""
import sys

from kmip import enums
from kmip.pie.client import ProxyKmipClient


def main():
    host, port, ca, cert, key, cmd = sys.argv[1:7]
    args = sys.argv[7:]
    c = ProxyKmipClient(hostname=host, port=int(port), cert=cert, key=key, ca=ca,
                        ssl_version="PROTOCOL_TLSv1_2", config_file="/dev/null")
    with c:
        if cmd in ("create", "create-inactive"):
            uid = c.create(enums.CryptographicAlgorithm.AES, 256,
                           cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                     enums.CryptographicUsageMask.DECRYPT])
            if cmd == "create":
                c.activate(uid)
            print(uid)
        elif cmd == "revoke":
            c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, args[0])
            print("revoked")
        elif cmd == "destroy":
            c.destroy(args[0])
            print("destroyed")
        elif cmd == "state":
            _, attrs = c.get_attributes(args[0], ["State"])
            print(attrs[0].attribute_value.value.name)
        elif cmd == "encrypt":
            ct, iv = c.encrypt(b"0123456789abcdef", uid=args[0], cryptographic_parameters={
                "cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
                "block_cipher_mode": enums.BlockCipherMode.CBC,
                "padding_method": enums.PaddingMethod.PKCS5})
            print("ok" if ct else "empty")
        else:
            sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
