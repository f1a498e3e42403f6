#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A fake lakecrypt-agent for the lakecryptctl tests: speaks the control
protocol of Documentation/agent-protocol.md on a Unix socket, answers from
canned data, and logs every request (one JSON line each) to a file.

Special arguments trigger failures:
  key_id / name "denied-*"    -> error class denied (-EACCES)
  key_id / name "transient-*" -> error class transient (-ETIMEDOUT)
  key_id / name "refused-*"   -> error class refused (-EACCES)
  key_id / name "invalid-*"   -> error class invalid (-EINVAL)
  name "hangup"               -> close the connection without answering
  name "slow"                 -> answer after 3 seconds
  name "garbage"              -> answer with a line that is not JSON
  name "wrongid"              -> answer with another id
  volume.close of "notopen" with if_open -> {"closed": false} (nothing open)
  name "flaky-*"              -> class transient the first time a name is
                                 asked for, success after (open/cache retry)

usage: fake-agent.py SOCKET LOGFILE
"""
import json
import os
import socket
import sys
import time

KEY = {"key_id": "k-1", "description": "db root", "state": "enabled",
       "primary_version": 1, "versions": 1, "created": 1700000000,
       "deletion_date": None}
VOL = {"name": "db1", "kind": "project", "uuid": "0b6c1d2e-0000-4000-8000-000000000001",
       "device": "/dev/sdb", "dm_device": "/dev/mapper/db1", "workspace": "ws1",
       "project": "db1", "keyconfig": "kc1", "provider": "local", "cmk_id": "k-1",
       "cmk_version": "1", "segments": 4096, "segment_size": 1048576,
       "state": "active", "keys_loaded": 4096, "reads": 0, "writes": 0,
       "io_errors": 0, "discard": "-"}
ERRORS = {"denied": (-13, "the KMS denied the use of key %s: it is disabled"),
          "transient": (-110, "the KMS did not answer for %s: retry later"),
          "refused": (-13, "operation refused for %s: admin role required"),
          "invalid": (-22, "%s is not valid")}


def result(op, args):
    if op == "ping":
        return {"version": "1.0.0", "role": "admin"}
    if op in ("kms.create",):
        return dict(KEY, description=args.get("description", ""))
    if op == "kms.list":
        return {"keys": [KEY, dict(KEY, key_id="k-22", state="disabled", description="")]}
    if op.startswith("kms."):
        k = dict(KEY, key_id=args["key_id"])
        if op == "kms.disable":
            k["state"] = "disabled"
        if op == "kms.schedule-deletion":
            k["state"] = "pending_deletion"
            k["deletion_date"] = 1700000000 + args["days"] * 86400
        if op == "kms.rotate":
            k["primary_version"] = k["versions"] = 2
        if op == "kms.destroy":
            k["state"] = "destroyed" if args["now"] else "pending_deletion"
        return k
    if op == "keyconfig.create":
        return {"name": args["name"], "provider": args["provider"], "key_ref": args["key_ref"]}
    if op == "keyconfig.list":
        return {"keyconfigs": [{"name": "kc1", "provider": "local", "key_ref": "k-1"}]}
    if op == "workspace.bind":
        return {"workspace": args["workspace"], "keyconfig": args["keyconfig"]}
    if op == "check":
        return {"checks": [{"cmk": args.get("cmk", "k-1"), "provider": "local", "state": "enabled",
                            "keyconfig": "finance-kc", "canary": "denied", "outcome": "denied",
                            "verdict": "pending", "denials": 1, "counted": False, "kms_calls": 2,
                            "detail": "canary unwrap: denied"}],
                "kms_calls": 2}
    if op == "workspace.hook":
        hook = None if args.get("clear") else {k: v for k, v in args.items() if k != "workspace"}
        return {"workspace": args["workspace"], "hook": hook}
    if op == "workspace.list":
        return {"workspaces": [{"workspace": "ws1", "keyconfig": "kc1"}]}
    # key lifecycle: per-volume results; name/workspace "partial-*" has one failure
    if (op == "volume.rewrap" and args.get("all")) or op == "workspace.rekey":
        word = "rekeyed" if op == "workspace.rekey" else "rewrapped"
        bad = str(args.get("workspace", args.get("keyconfig", ""))).startswith("partial")
        res = [dict(name="db1", outcome=word, keyconfig="kc2", cmk_version="2"),
               dict(name="db2", outcome="failed" if bad else word, keyconfig="kc1",
                    cmk_version="1", **({"error": "no header copy is authenticated"} if bad else {}))]
        return {"results": res, "done": 1 if bad else 2, "already": 0, "failed": 1 if bad else 0}
    if op == "volume.shred":
        return {"name": args["name"], "first": 2, "last": 4, "keys_wiped": True,
                "kek_rotated": True, "zeroed": True, "offset": 1048576 + 2 * 65536,
                "length": 3 * 65536, "discard": "discard"}
    if op == "volume.rekey":
        return {"uuid": VOL["uuid"], "workspace": args["workspace"], "project": "db1",
                "keyconfig": "kc2", "provider": "local", "cmk_id": "k-2", "cmk_version": "1"}
    if op == "volume.rekey-segment":
        return {"device": args["device"], "first": 2, "last": 3, "rekeyed": 2,
                "resumed": args["resume"], "generation": 2, "sectors": 256, "seqno": 9}
    if op in ("volume.format", "volume.open", "volume.rewrap", "volume.rotate-kek",
              "volume.resize"):
        return dict(VOL, **{k: v for k, v in args.items() if k in VOL})
    if op == "volume.close" and args.get("if_open") and args.get("name") == "notopen":
        return {"name": "notopen", "closed": False}
    if op == "cache.open":
        return dict(VOL, kind="cache", project=None, **{k: v for k, v in args.items() if k in VOL})
    if op == "status":
        cmks = [{"cmk": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                 "provider": "aws-kms", "keyconfig": "", "last": "unknown", "last_detail": "connect timed out",
                 "last_at": 1714564800, "verdict": "keep", "denials": 0, "outage_s": 120,
                 "probes": 7, "fail_closed_at": 1714568280},
                {"cmk": "lk-0123456789abcdef0123456789abcdef", "provider": "local", "keyconfig": "",
                 "last": "denied", "last_detail": "key is disabled", "last_at": 1714564860,
                 "verdict": "pending", "denials": 1, "outage_s": 0, "probes": 3},
                {"cmk": "lk-0123456789abcdef0123456789abcdef", "provider": "local",
                 "keyconfig": "finance-kc", "last": "denied", "last_detail": "canary unwrap: denied",
                 "last_at": 1714564860, "verdict": "revoke", "denials": 2, "outage_s": 0,
                 "probes": 3}]
        return {"volumes": [VOL], "kms_calls": {"unwrap": 1}, "cmks": cmks}
    if op == "revoke":
        return {"revoked": ["db1", "cache1"]}
    if op == "audit.tail":
        return {"records": [{"time": "2024-05-01T12:00:00.000Z", "peer_uid": 0, "op": "open",
                             "outcome": "success", "workspace": "ws1"}][:args.get("lines", 50)]}
    return {}


FLAKY_SEEN = set()


def answer(conn, line, log):
    req = json.loads(line)
    log.write(json.dumps(req, sort_keys=True) + "\n")
    log.flush()
    assert set(req) <= {"op", "id", "args"}, req
    rid, op, args = req["id"], req["op"], req.get("args", {})
    special = str(args.get("key_id", args.get("name", args.get("cmk", ""))))
    if special == "hangup":
        return False
    if special.startswith("hangup-") and special not in FLAKY_SEEN:
        FLAKY_SEEN.add(special)	# hangs up the first time, answers after
        return False
    if special == "slow":
        time.sleep(3)
    if special == "garbage":
        conn.sendall(b"this is not json\n")
        return True
    if special == "wrongid":
        rid += 1
    if special.startswith("flaky-") and special not in FLAKY_SEEN:
        FLAKY_SEEN.add(special)
        special = "transient-" + special
    for cls, (code, fmt) in ERRORS.items():
        if special.startswith(cls + "-"):
            rep = {"id": rid, "ok": False,
                   "error": {"code": code, "class": cls, "message": fmt % special}}
            break
    else:
        rep = {"id": rid, "ok": True, "result": result(op, args)}
    conn.sendall(json.dumps(rep).encode() + b"\n")
    return True


def main():
    path, logpath = sys.argv[1], sys.argv[2]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    with open(logpath, "a") as log:
        while True:
            conn, _ = srv.accept()
            buf = b""
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                    keep = True
                    while b"\n" in buf and keep:
                        line, buf = buf.split(b"\n", 1)
                        keep = answer(conn, line.decode(), log)
                    if not keep:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            conn.close()


if __name__ == "__main__":
    main()
