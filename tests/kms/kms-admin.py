#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Administer keys of an AWS KMS endpoint (local-kms in tests) with
botocore, the reference client:
  kms-admin.py ENDPOINT CA create|disable|enable|schedule|cancel|describe [KEY]
Prints the key ARN (create) or KeyState (others)."""
import sys

import botocore.session

endpoint, ca, cmd = sys.argv[1:4]
key = sys.argv[4] if len(sys.argv) > 4 else None
if key and key.startswith('arn:'):
    key = key.rsplit('/', 1)[-1]	# moto wants the bare id for state changes
kms = botocore.session.get_session().create_client(
    'kms', region_name='eu-west-2', endpoint_url=endpoint, verify=ca,
    aws_access_key_id='AKIDFAKE', aws_secret_access_key='fakeSecretKey')
if cmd == 'create':
    print(kms.create_key(Description='lakecrypt test')['KeyMetadata']['Arn'])
    sys.exit(0)
if cmd == 'disable':
    kms.disable_key(KeyId=key)
elif cmd == 'enable':
    kms.enable_key(KeyId=key)
elif cmd == 'schedule':
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
elif cmd == 'cancel':
    kms.cancel_key_deletion(KeyId=key)
print(kms.describe_key(KeyId=key)['KeyMetadata']['KeyState'])
