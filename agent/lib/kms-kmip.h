/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KMIP provider (provider kind "kmip"): a CMK held by a KMIP 1.x server,
 * reached over mutually authenticated TLS (OpenSSL), requests and replies
 * in TTLV (kmip-ttlv.h).  Sources: OASIS KMIP Specification v1.2 and v1.4
 * (operations in section 4, objects/attributes in 2 and 3, message
 * contents in 6 and 7, enumerations in 9.1.3); KMIP Profiles v1.2/1.4
 * (TLS transport: port 5696, TLS 1.2, client certificate).
 *
 * Key reference: the key's Unique Identifier on the server, as given to
 * `lakecryptctl keyconfig create NAME --provider kmip --key UID` (printable
 * ASCII, at most LC_KMIP_UID_MAX bytes).  The key must be an AES Symmetric
 * Key in the Active state with the Encrypt and Decrypt usage mask bits.
 * Bound reference: "server-sha256=<64 lower-case hex>;uid=<UID>", the
 * SHA-256 of the DER SubjectPublicKeyInfo of the server certificate
 * (RFC 5280 4.1.2.7) the key was found on.  key_state of an unbound UID
 * returns it in reply->bound_ref and keyconfig create stores it: a denial
 * (Item Not Found, Permission Denied, Object Archived, a state other than
 * Active) from a server with another public key -- `server` pointed
 * elsewhere, an unsynced replica -- is then MISCONFIG, never DENIED.  For
 * an unbound UID (configurations made before), Item Not Found is
 * MISCONFIG: it cannot tell a destroyed key from another server.
 *
 * Versions: the first call of a provider asks the server Discover Versions
 * (4.26) and uses KMIP 1.4 if offered (and max_minor allows it), else 1.3
 * or 1.2; a server without 1.2 (no Encrypt/Decrypt) is MISCONFIG.
 *
 * Operations and the binding of the KEK context ("lakecrypt:v2;...") --
 * the client never uses Get: a server may still hand out key material on a
 * plain Get after Revoke (PyKMIP 0.10 does), so nothing here depends on it.
 *   KMIP 1.4: wrap = Encrypt (4.29) with Cryptographic Parameters {AES,
 *     GCM, Tag Length 16}, a random 12-byte IV/Counter/Nonce from the
 *     client and the context as Authenticated Encryption Additional Data
 *     (new in 1.4); unwrap = Decrypt (4.30) with the same IV, the
 *     Authenticated Encryption Tag and the context as additional data: the
 *     server checks the context.  (PyKMIP 0.10's server does this, but only
 *     when the request header says 1.4: it reads the 1.4-only fields by the
 *     request's version.  On a failed tag check it answers General Failure,
 *     not Cryptographic Failure, which is why the blob also carries the
 *     context's digest: a wrong context is named INVALID before any call.)
 *   KMIP 1.2/1.3 (no additional data on Encrypt): AES-CBC with PKCS5
 *     padding, server-chosen or client IV, over KEK || B where
 *     B = SHA-256("lakecrypt-kmip-bind-v1" || be32(len(context)) ||
 *     context || KEK): the context bound inside the encrypted bytes and
 *     checked after Decrypt in constant time.  (NIST key wrap, mode 0x0D,
 *     would be the natural choice but PyKMIP and many servers do not offer
 *     it for Encrypt; CBC is offered by every server with Encrypt.)
 *   key_state = GetAttributes (4.12) of State, Deactivation Date and
 *     Destroy Date: Active -> enabled (disabled if the Deactivation Date
 *     has passed by the server's clock, below); Pre-Active, Deactivated,
 *     Compromised -> disabled;
 *     Destroyed, Destroyed Compromised -> destroyed; Destroy Date ->
 *     deletion_date.
 *
 * Blob (lakecrypt's own format, stored in the volume header), big endian:
 *   0  "LKM1"            magic
 *   4  mode              1 = GCM with AAD (KMIP 1.4), 2 = CBC-bound
 *   5  iv_len            1..16
 *   6  tag_len           16 for GCM, 0 for CBC
 *   7  0                 reserved
 *   8  SHA-256(context)  32 bytes: names a wrong context before any call
 *   40 ct_len            2 bytes, 1..LC_KMIP_MAX_CT
 *   42 iv, tag, ct
 *
 * Errors (Result Reason, 9.1.3.2.29):
 *   Item Not Found (destroyed or never existed: bound reference only),
 *   Permission Denied (key not Active: revoked, deactivated; or access
 *   denied to this client), Object Archived, from the server of the bound
 *   reference                                  -> DENIED
 *   any of them from a server whose public key is not the bound
 *   reference's; Item Not Found for an unbound reference -> MISCONFIG
 *   Cryptographic Failure on Decrypt, a blob that is not ours, a context
 *   that is not the blob's, a binding that does not check -> INVALID
 *   Authentication Not Successful, Operation/Feature Not Supported,
 *   Invalid Field/Message, Missing Data, Illegal Operation and every other
 *   reason; a TLS alert about certificates (the server does not trust the
 *   client certificate); a server certificate that does not verify; a
 *   client key file readable by group or others -> MISCONFIG: never a kill.
 *   a whole reply (its announced length received) that does not decode
 *   or breaks the protocol: not a Response Message, oversized (more than
 *   the Maximum Response Size sent) or misaligned, bad padding, another
 *   batch item, operation or key than asked, a required field missing,
 *   sizes that do not fit the request -> INVALID: never retried (a boot
 *   unit with timeout=0 would otherwise ask a broken server for ever),
 *   never a kill (the watcher counts it as no answer, probe.c)
 *   General Failure, Operation Canceled, Operation Pending/Undone, connect
 *   refused/reset, timeouts, a reply cut short by the connection's end
 *                                              -> TRANSIENT
 * Audit: reply->key_id is the Unique Identifier the server answered,
 * reply->request_id the Server Correlation Value if the server gives one
 * (KMIP 1.4), else "batch-<hex>": the Unique Batch Item ID this client
 * sent and the server echoed, with the response's Time Stamp.
 *
 * Time: each call opens one TLS connection (no state shared between
 * concurrent calls), connect and handshake bounded by connect_timeout_ms,
 * the whole exchange by the attempt's timeout.  The host name is resolved
 * with getaddrinfo(), which has no timeout of its own: give an address or
 * a name in /etc/hosts where DNS may stall.
 * The process must ignore SIGPIPE (the agent does).
 */
#ifndef LC_KMS_KMIP_H
#define LC_KMS_KMIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmip-ttlv.h"
#include "lc-error.h"
#include "lc-types.h"
#include "provider.h"
#include "secmem.h"

#define LC_KMS_KMIP_NAME		"kmip"
#define LC_KMIP_DEFAULT_PORT		"5696"
#define LC_KMIP_MAX_RESPONSE		(64 * 1024)	/* bytes of one reply */
#define LC_KMIP_MAX_REQUEST		4096
#define LC_KMIP_MAX_PLAINTEXT		512		/* bytes wrapped */
#define LC_KMIP_MAX_CT			1024
#define LC_KMIP_UID_MAX			256
#define LC_KMIP_BOUND_PREFIX		"server-sha256="	/* 14 characters */

/* A parsed key reference: a UID, bound or not to the server's public key. */
struct lc_kmip_ref {
	char uid[LC_KMIP_UID_MAX + 1];
	uint8_t server_id[32];		/* SHA-256 of the server's SPKI, if bound */
	bool bound;
};

/* Parse @key_ref (a UID, or the bound form above).  0, or -EINVAL
 * (MISCONFIG) saying what is wrong. */
int lc_kmip_parse_ref(const char *key_ref, struct lc_kmip_ref *ref, struct lc_error *err);
#define LC_KMIP_CONNECT_TIMEOUT_MS	5000
#define LC_KMIP_DEFAULT_TIMEOUT_MS	30000		/* an attempt given no timeout */

/* KMIP enumerations used (9.1.3.2) */
enum lc_kmip_op {
	LC_KMIP_OP_CREATE		= 0x01,
	LC_KMIP_OP_GET_ATTRIBUTES	= 0x0B,
	LC_KMIP_OP_ACTIVATE		= 0x12,
	LC_KMIP_OP_REVOKE		= 0x13,
	LC_KMIP_OP_DESTROY		= 0x14,
	LC_KMIP_OP_DISCOVER_VERSIONS	= 0x1E,
	LC_KMIP_OP_ENCRYPT		= 0x1F,
	LC_KMIP_OP_DECRYPT		= 0x20,
};

enum lc_kmip_blob_mode { LC_KMIP_MODE_GCM = 1, LC_KMIP_MODE_CBC_BOUND = 2 };

#define LC_KMIP_BLOB_HDR	42
#define LC_KMIP_MAX_BLOB	(LC_KMIP_BLOB_HDR + 16 + 16 + LC_KMIP_MAX_CT)
#define LC_KMIP_BATCH_ID_LEN	8

/* What one reply said (pointers into the reply buffer). */
struct lc_kmip_result {
	uint32_t status;		/* Result Status: 0 success */
	uint32_t reason;		/* Result Reason, 0 if absent */
	char message[256];		/* Result Message, "" if absent */
	char uid[LC_PROVIDER_KEYID_MAX];	/* payload's Unique Identifier */
	char server_corr[LC_PROVIDER_REQID_MAX];	/* Server Correlation Value */
	int64_t time_stamp;		/* response header, epoch s */
	unsigned int version_minor;	/* response header's version, major 1 */
	const uint8_t *data, *iv, *tag;
	size_t data_len, iv_len, tag_len;
	bool has_state;
	uint32_t state;			/* State enumeration */
	int64_t deactivation_date, destroy_date;	/* 0 if absent */
	unsigned int minors[8];		/* Discover Versions: 1.x offered */
	unsigned int nminors;
};

/*
 * Read one reply to @op (and the batch item id this client sent, NULL:
 * not checked) from @len bytes at @buf: TTLV decode, one batch item,
 * operation and batch id echoed, Result Status, the payload fields @op
 * needs.  0 and @res filled for a success; else a negative errno, @err
 * with the class above and @res as far as read (reason, message).
 */
int lc_kmip_parse_response(uint32_t op, const uint8_t *batch_id, const uint8_t *buf,
			   size_t len, struct lc_kmip_result *res, struct lc_error *err);

/*
 * Clocks.  KMIP 1.4 section 3.22 moves an Active object to Deactivated when
 * its Deactivation Date is reached: by the server's clock.  The date is
 * compared with the Time Stamp of the same reply's Response Header (6.5,
 * the server's clock; a reply without one is refused), never with the
 * host's clock, which may be hours off (lost NTP, a resumed VM) and would
 * disable a healthy key and arm the kill switch.  No tolerance is needed:
 * both values come from the server.  true: @res is Active but deactivated
 * by its server's own clock.
 */
bool lc_kmip_deactivated_by_server(const struct lc_kmip_result *res);

/* Blob codec (format above).  lc_kmip_blob_parse checks every length;
 * -EINVAL (INVALID) for anything that is not a whole blob of ours. */
struct lc_kmip_blob {
	uint8_t mode, iv_len, tag_len;
	uint8_t ctx_digest[32];
	const uint8_t *iv, *tag, *ct;
	size_t ct_len;
};
int lc_kmip_blob_parse(const uint8_t *p, size_t n, struct lc_kmip_blob *b, struct lc_error *err);

/*
 * Identity (provider.h's identity op; issue 10).  A KMIP server knows its
 * client by the TLS client certificate (KMIP Profiles 1.4 section 3.1.2;
 * PyKMIP: the subject's common name owns the objects it creates and its
 * policies match on it).  The principal is
 *   "subject=<RFC 4514 subject>;issuer=<RFC 4514 issuer>"
 * of the certificate in [kmip] client_cert, as OpenSSL prints names with
 * XN_FLAG_RFC2253 (RFC 4514/2253 order and escapes; control characters
 * and every non-ASCII byte, UTF-8 included, as \XX): printable ASCII,
 * compared exactly (identity_match NULL: strcmp).  Not the certificate's
 * fingerprint: a renewed certificate (new key, serial, validity) for the
 * same subject from the same CA is the same client to the server, so the
 * same principal.  A principal longer than @size - 1 keeps its first
 * characters and ends "...;sha256=<64 hex>" (SHA-256 of the whole printed
 * form): bounded, and two names still two principals.
 * No request is made: KMIP has no "who am I" operation (Query names the
 * server, not the client), the check runs right after a denial that came
 * over a session this same certificate authenticated (and keyconfig create
 * has just read the key's state over one), and a network call here could
 * only fail and leave a denial standing that was a wrong certificate.
 * 0; -EINVAL MISCONFIG (no certificate, a name over 32 KiB of DER),
 * -EINVAL INTERNAL (@size < LC_KMIP_PRINCIPAL_MIN), -ENOMEM.
 */
#define LC_KMIP_PRINCIPAL_MIN	128
typedef struct x509_st X509;
int lc_kmip_cert_principal(const X509 *cert, char *out, size_t size, struct lc_error *err);

/* ---- the provider ------------------------------------------------------ */

struct lc_kms_kmip_config {
	const char *server;		/* host, host:port, [v6addr]:port; port 5696 */
	const char *ca_file;		/* PEM CA bundle that signed the server */
	const char *cert_file;		/* PEM client certificate (chain) */
	const char *key_file;		/* PEM client private key, mode 0600 or less */
	unsigned int max_minor;		/* highest 1.x to use: 2..4, 0: 4 */
	uint64_t connect_timeout_ms;	/* TCP + TLS, 0: LC_KMIP_CONNECT_TIMEOUT_MS */
};

struct lc_kms_kmip;

/*
 * Check the configuration and load the TLS context: certificate, key
 * (refused if the file is not a regular file or is readable or writable
 * by group or others, as ssh refuses a private key), CA bundle.  0,
 * -EINVAL/-EPERM/-ENOENT (MISCONFIG, the message names the file), -ENOMEM.
 * No connection is made.
 */
int lc_kms_kmip_new(struct lc_kms_kmip **k, const struct lc_kms_kmip_config *cfg,
		    struct lc_error *err);
void lc_kms_kmip_free(struct lc_kms_kmip *k);

/* @p owns @k: lc_provider_close() frees it. */
void lc_kms_kmip_provider_init(struct lc_provider *p, struct lc_kms_kmip *k);
extern const struct lc_provider_ops lc_kms_kmip_ops;

#endif /* LC_KMS_KMIP_H */
