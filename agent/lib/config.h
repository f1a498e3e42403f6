/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's configuration file (default LC_CONFIG_DEFAULT_PATH).
 *
 * Format: INI.  "[section]" lines, "key = value" lines, blank lines and
 * comment lines whose first non-blank character is '#' or ';'.  A '#'
 * after a blank starts a comment at the end of a line.  There are no
 * quotes and no continuation lines: a value is everything after the '='
 * up to such a comment, with surrounding blanks removed, and must not be
 * empty.  Every key belongs to a section; unknown sections, unknown
 * keys, duplicated keys and malformed lines are errors naming the file and
 * line.  Anything not set keeps its default.
 *
 *   [agent]
 *   socket = /run/lakecrypt/agent.sock      # control socket (< 108 bytes)
 *   socket_mode = 0660                      # octal permissions of the socket
 *   state_dir = /var/lib/lakecrypt          # local KMS keys, key configs
 *   audit_log = /var/log/lakecrypt/audit.log
 *   audit_fsync = yes                       # fsync every audit record
 *   admin_group = lakecrypt-admin
 *   operator_group = lakecrypt
 *   log = stderr                            # stderr | syslog
 *   log_level = info                        # error | warning | info | debug
 *   max_clients = 64                        # connections at once, 1..1024
 *                                           # (uid 0 has 8 more in reserve)
 *   max_clients_per_uid = 16                # per peer uid other than 0
 *   idle_timeout_s = 60                     # close a connection idle this long
 *   send_timeout_s = 10                     # close one whose peer reads no
 *                                           # reply for this long
 *   busy_wait_ms = 30000                    # 0..600000: a request for a
 *                                           # volume another request is
 *                                           # opening waits this long at
 *                                           # most, then fails -EBUSY
 *
 *   [kms]
 *   retry_attempts = 5                      # 1..100, attempts per KMS call
 *   retry_base_delay_ms = 100               # first backoff, doubled each retry
 *   retry_max_delay_ms = 5000               # >= retry_base_delay_ms
 *   deadline_ms = 30000                     # whole call, retries included
 *
 *   [revocation]
 *   watch_interval_s = 60                   # CMK state check, 1..86400
 *   revoke_wait_ms = 5000                   # revoke answers after this at
 *                                           # most; stalled ones go on
 *   jitter_pct = 10                         # 0..50: each interval drawn in
 *                                           # [i*(1-j), i*(1+j)]
 *   confirm_denials = 2                     # 1..16 denials confirm a revocation
 *   confirm_window_s = 300                  # ... within this many seconds,
 *                                           # no success between them; must
 *                                           # hold the watcher's denials:
 *                                           # (confirm_denials - 1) *
 *                                           # watch_interval_s * (1 + jitter)
 *                                           # <= confirm_window_s, else the
 *                                           # file is refused
 *   fail_closed_after_s = 0                 # 0: never; else an outage (no
 *                                           # authoritative answer) this long
 *                                           # revokes (strict regimes only)
 *   canary = yes                            # probe with a real unwrap of the
 *                                           # key configuration's canary
 *
 *   [test]                                  # tests only, never in production
 *   kms_stall_file = /path                  # while this file exists, every
 *                                           # KMS call waits (a KMS that
 *                                           # never answers)
 *   watch_pause_file = /path                # while this file exists, the
 *                                           # watcher probes no CMK
 *   segrekey_pause_file = /path             # while this file exists, a
 *                                           # segment re-key holds before
 *                                           # each zone's data (segrekey.h)
 *   registry_pause_file = /path             # while this file exists, the etcd
 *                                           # registry's watch stops at its next
 *                                           # message and waits (a stale copy)
 *   watch_keyconfig = name                  # the watcher probes this key
 *                                           # configuration's CMK as if an open
 *                                           # volume used it (hosts without
 *                                           # device-mapper: tests/etcd)
 *   kms_fault_file = /path                  # while this file exists, its first
 *                                           # word makes KMS calls fail:
 *                                           # "transient" every call,
 *                                           # "flaky" every other call
 *
 *   [aws-kms]                               # provider "aws-kms" (kms-aws.h)
 *   endpoint = https://kms.eu-west-1.amazonaws.com  # override; default:
 *                                           # https://kms.<ARN's region>.amazonaws.com
 *   region = eu-west-1                      # for key ids that are not ARNs,
 *                                           # and the region the endpoint serves
 *   ca_bundle = /etc/ssl/certs/ca-certificates.crt  # PEM; default: system CAs
 *   credentials = auto                      # auto | env | profile | web-identity |
 *                                           # container | imds
 *   profile = default                       # shared files' profile (profile, auto)
 *   imds_endpoint = http://169.254.169.254  # instance metadata service
 *   connect_timeout_ms = 3000               # 1..600000, TCP + TLS connect
 *   imds_timeout_ms = 2000                  # 1..600000, per metadata request
 *   sts_endpoint = https://sts.eu-west-1.amazonaws.com  # GetCallerIdentity (identity
 *                                           # binding); default $AWS_ENDPOINT_URL_STS,
 *                                           # else https://sts.<key's region>.amazonaws.com
 *
 *   [kmip]                                  # provider "kmip" (kms-kmip.h)
 *   server = kmip.example.com:5696          # host[:port] or [IPv6]:port
 *   ca_bundle = /etc/lakecrypt/kmip-ca.pem  # PEM CA that signed the server
 *   client_cert = /etc/lakecrypt/kmip-client.pem  # PEM, extendedKeyUsage clientAuth
 *   client_key = /etc/lakecrypt/kmip-client.key   # PEM, mode 0600 or less
 *   max_version = 1.4                       # 1.2 | 1.3 | 1.4: highest to use
 *   connect_timeout_ms = 5000               # 1..600000, TCP + TLS connect
 *   [pkcs11]                                # provider "pkcs11" (kms-pkcs11.h)
 *   module = /usr/lib/softhsm/libsofthsm2.so  # the PKCS#11 module; unset:
 *                                           # every pkcs11 call is refused
 *   token_label = lakecrypt                 # token by label (<= 32 bytes) ...
 *   token_serial = 5f1c1a3b2e4d6a7c         # ... and/or serial (<= 16 bytes)
 *   pin_file = /etc/lakecrypt/pkcs11.pin    # user PIN, read at start; owned
 *                                           # by the agent's user or root, 0600
 *   sessions = 4                            # 1..64, concurrent sessions
 *   [gcp-kms]                               # provider "gcp-kms" (kms-gcp.h)
 *   endpoint = https://cloudkms.googleapis.com  # override (regional, private, tests)
 *   ca_bundle = /etc/ssl/certs/ca-certificates.crt  # PEM; default: system CAs
 *   credentials = auto                      # auto | metadata | service-account
 *   key_file = /etc/lakecrypt/gcp-sa.json   # service-account key (mode 0600);
 *                                           # default $GOOGLE_APPLICATION_CREDENTIALS
 *   metadata_endpoint = http://metadata.google.internal  # token source
 *   connect_timeout_ms = 3000               # 1..600000, TCP + TLS connect
 *   metadata_timeout_ms = 2000              # 1..600000, per metadata request
 *   [azure-kv]                              # provider "azure-kv" (kms-azure.h)
 *   credentials = managed-identity          # managed-identity | client-secret |
 *                                           # client-certificate
 *   tenant_id = <directory id>              # client-*: the Entra ID tenant
 *   client_id = <application id>            # client-*; managed identity: a
 *                                           # user-assigned identity (optional)
 *   client_secret_file = /etc/lakecrypt/azure-secret   # mode 0600
 *   client_certificate_file = /etc/lakecrypt/azure.pem # key + cert, mode 0600
 *   authority = https://login.microsoftonline.com      # token endpoint host
 *   imds_endpoint = http://169.254.169.254  # managed identity endpoint
 *   resource = https://vault.azure.net      # default: by the key's host
 *   ca_bundle = /etc/ssl/certs/ca-certificates.crt  # PEM; default: system CAs
 *   connect_timeout_ms = 3000               # 1..600000, TCP + TLS connect
 *   imds_timeout_ms = 2000                  # 1..600000, per IMDS request
 *
 *   [registry]                              # key configurations, bindings
 *   backend = file                          # file (<state_dir>/registry.json,
 *                                           # needs nothing else) | etcd
 *   endpoints = https://10.0.0.1:2379,https://10.0.0.2:2379  # etcd: the
 *                                           # cluster's members, 1..16,
 *                                           # https://host[:port], comma-separated
 *   ca = /etc/lakecrypt/etcd-ca.pem         # etcd: the CA of the members (required)
 *   cert = /etc/lakecrypt/etcd-client.pem   # etcd: client certificate ...
 *   key = /etc/lakecrypt/etcd-client.key    # ... and its key (both or neither)
 *   prefix = /lakecrypt/                    # etcd: every key under it; starts
 *                                           # and ends with '/', printable
 *   connect_timeout_ms = 2000               # 1..600000, TCP + TLS per member
 *   timeout_ms = 5000                       # 1..600000, one request per member
 *   watch_idle_s = 660                      # 1..86400: a watch silent this long
 *                                           # is restarted (etcd's progress
 *                                           # notifications: every 600 s)
 *   retry_max_ms = 10000                    # 100..600000, longest pause between
 *                                           # reconnections (doubling from 100)
 *   backstop_interval_s = 900               # 0..604800: shared probes (etcd.md):
 *                                           # one agent per CMK probes every
 *                                           # watch_interval_s and publishes; the
 *                                           # others probe only this often while
 *                                           # its "ok" results keep coming
 *                                           # (0: no sharing, every agent probes)
 *   probe_lease_s = 30                      # 2..3600: TTL of the probe holder's
 *                                           # etcd lease (a dead holder is
 *                                           # replaced within it + an interval)
 *
 *   [volume]                                # defaults for format
 *   cipher = aes-xts-plain64
 *   key_size = 64                           # bytes, 1..128
 *   segment_size = 1M                       # bytes, K/M/G suffix (binary),
 *                                           # power of two >= 4K
 *
 * (The trailing "# ..." above are explanations.  In the file such a comment
 * is allowed after a value, not after a [section] line; the <...> are
 * placeholders, not values.  A ';' after a value is part of the value.)
 * The shipped example, tools/systemd/agent.conf.example, names every key
 * but [test]'s; tests/system/check.sh checks it against this parser.
 * Booleans are yes/no, true/false, on/off or 1/0.
 */
#ifndef LC_CONFIG_H
#define LC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lc-error.h"

/* SYSCONFDIR of the build (the Makefile's -DLC_SYSCONFDIR, default /etc):
 * agent.conf and lakecrypttab are read under LC_SYSCONFDIR "/lakecrypt",
 * the directory the lakecrypt-generator of the same install reads. */
#ifndef LC_SYSCONFDIR
#define LC_SYSCONFDIR		"/etc"
#endif
#define LC_CONFIG_DEFAULT_PATH	LC_SYSCONFDIR "/lakecrypt/agent.conf"
#define LC_LAKECRYPTTAB_DEFAULT_PATH LC_SYSCONFDIR "/lakecrypt/lakecrypttab"
#define LC_CONFIG_PATH_MAX	4096
#define LC_CONFIG_NAME_MAX	64
#define LC_CONFIG_URL_MAX	512
#define LC_CONFIG_ENDPOINTS_MAX	16	/* [registry] endpoints (LC_ETCD_MAX_ENDPOINTS) */

struct lc_config {
	/* [agent] */
	char socket_path[108];
	char lakecrypttab[LC_CONFIG_PATH_MAX];	/* name reservations; "" none */
	char crypttab[LC_CONFIG_PATH_MAX];	/* crypttab(5) names refused; "" none */
	mode_t socket_mode;
	char state_dir[LC_CONFIG_PATH_MAX];
	char audit_log[LC_CONFIG_PATH_MAX];
	bool audit_fsync;
	char admin_group[LC_CONFIG_NAME_MAX];
	char operator_group[LC_CONFIG_NAME_MAX];
	bool log_syslog;
	enum lc_log_level log_level;
	unsigned int max_clients;
	unsigned int max_clients_per_uid;
	unsigned int idle_timeout_s;
	unsigned int send_timeout_s;
	unsigned int busy_wait_ms;
	/* [kms] */
	unsigned int retry_attempts;
	unsigned int retry_base_delay_ms;
	unsigned int retry_max_delay_ms;
	unsigned int deadline_ms;
	/* [revocation] */
	unsigned int watch_interval_s;
	unsigned int revoke_wait_ms;
	unsigned int jitter_pct;
	unsigned int confirm_denials;
	unsigned int confirm_window_s;
	unsigned int fail_closed_after_s;
	bool canary;
	/* [test] */
	char test_kms_stall_file[LC_CONFIG_PATH_MAX];
	char test_kms_fault_file[LC_CONFIG_PATH_MAX];
	char test_watch_pause_file[LC_CONFIG_PATH_MAX];
	char test_segrekey_pause_file[LC_CONFIG_PATH_MAX];	/* segrekey.h */
	char test_registry_pause_file[LC_CONFIG_PATH_MAX];	/* registry-etcd.h */
	char test_watch_keyconfig[LC_CONFIG_NAME_MAX];	/* watch.c: probed as if a volume used it */
	/* [aws-kms]: "" / 0 = not set (the provider's default) */
	char aws_endpoint[LC_CONFIG_URL_MAX];
	char aws_region[32];
	char aws_ca_bundle[LC_CONFIG_PATH_MAX];
	char aws_credentials[16];
	char aws_profile[LC_CONFIG_NAME_MAX];
	char aws_imds_endpoint[LC_CONFIG_URL_MAX];
	unsigned int aws_connect_timeout_ms;
	unsigned int aws_imds_timeout_ms;
	char aws_sts_endpoint[LC_CONFIG_URL_MAX];	/* GetCallerIdentity (identity binding) */
	/* [kmip]: "" / 0 = not set; without server the provider is unconfigured */
	char kmip_server[LC_CONFIG_URL_MAX];
	char kmip_ca_bundle[LC_CONFIG_PATH_MAX];
	char kmip_client_cert[LC_CONFIG_PATH_MAX];
	char kmip_client_key[LC_CONFIG_PATH_MAX];
	char kmip_max_version[8];
	unsigned int kmip_connect_timeout_ms;
	/* [pkcs11]: "" / 0 = not set */
	char pkcs11_module[LC_CONFIG_PATH_MAX];
	char pkcs11_token_label[33];
	char pkcs11_token_serial[17];
	char pkcs11_pin_file[LC_CONFIG_PATH_MAX];
	unsigned int pkcs11_sessions;
	/* [gcp-kms]: "" / 0 = not set (the provider's default) */
	char gcp_endpoint[LC_CONFIG_URL_MAX];
	char gcp_ca_bundle[LC_CONFIG_PATH_MAX];
	char gcp_credentials[16];
	char gcp_key_file[LC_CONFIG_PATH_MAX];
	char gcp_metadata_endpoint[LC_CONFIG_URL_MAX];
	unsigned int gcp_connect_timeout_ms;
	unsigned int gcp_metadata_timeout_ms;
	/* [azure-kv]: "" / 0 = not set (the provider's default) */
	char azure_credentials[24];
	char azure_tenant_id[LC_CONFIG_NAME_MAX];
	char azure_client_id[LC_CONFIG_NAME_MAX];
	char azure_client_secret_file[LC_CONFIG_PATH_MAX];
	char azure_client_certificate_file[LC_CONFIG_PATH_MAX];
	char azure_authority[LC_CONFIG_URL_MAX];
	char azure_imds_endpoint[LC_CONFIG_URL_MAX];
	char azure_resource[LC_CONFIG_URL_MAX];
	char azure_ca_bundle[LC_CONFIG_PATH_MAX];
	unsigned int azure_connect_timeout_ms;
	unsigned int azure_imds_timeout_ms;
	/* [registry]: where key configurations and bindings live
	 * (registry.h, registry-etcd.h) */
	bool registry_etcd;				/* backend = etcd (default file) */
	char registry_endpoints[LC_CONFIG_URL_MAX * 4];	/* "https://h:p,https://h:p" */
	char registry_ca[LC_CONFIG_PATH_MAX];
	char registry_cert[LC_CONFIG_PATH_MAX];
	char registry_key[LC_CONFIG_PATH_MAX];
	char registry_prefix[LC_CONFIG_NAME_MAX * 4];	/* "/lakecrypt/" */
	unsigned int registry_connect_timeout_ms;
	unsigned int registry_timeout_ms;
	unsigned int registry_watch_idle_s;
	unsigned int registry_retry_max_ms;
	unsigned int registry_backstop_interval_s;	/* shared probes: others' own probe, 0: no sharing */
	unsigned int registry_probe_lease_s;		/* the probe holder's lease TTL */
	/* [volume] */
	char cipher[128];
	unsigned int key_size;
	uint64_t segment_sectors;
};

/* Fill @cfg with the defaults shown above. */
void lc_config_defaults(struct lc_config *cfg);

/* Parse @len bytes of @text over @cfg (which holds defaults or earlier
 * values); @name is the file name for messages.  Then the settings as a
 * whole: retry_max_delay_ms >= retry_base_delay_ms, and a [revocation]
 * whose watcher can confirm a revocation (above; lc_revconf_policy_check()
 * on the agent's policy).  0, or -EINVAL (MISCONFIG) with "FILE:LINE:
 * ..." in @err.  On error @cfg may be partly updated. */
int lc_config_parse(struct lc_config *cfg, const char *text, size_t len, const char *name,
		    struct lc_error *err);

/* Defaults, then @path (NULL: LC_CONFIG_DEFAULT_PATH).  A missing file is
 * -ENOENT with a message; the caller decides whether defaults will do. */
int lc_config_load(struct lc_config *cfg, const char *path, struct lc_error *err);

#endif /* LC_CONFIG_H */
