// SPDX-License-Identifier: GPL-2.0
/*
 * KMIP provider (see kms-kmip.h): requests and replies in TTLV, one TLS
 * connection per call, Encrypt/Decrypt for wrap/unwrap, GetAttributes for
 * the key's state.  One attempt per call; provider.c retries.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kms-kmip.h"

/* ---- KMIP vocabulary (KMIP 1.4 section 9.1.3.1 tags, 9.1.3.2 enums) ---- */

#define T_ATTRIBUTE			0x420008
#define T_ATTRIBUTE_NAME		0x42000A
#define T_ATTRIBUTE_VALUE		0x42000B
#define T_BATCH_COUNT			0x42000D
#define T_BATCH_ITEM			0x42000F
#define T_BLOCK_CIPHER_MODE		0x420011
#define T_CRYPTOGRAPHIC_ALGORITHM	0x420028
#define T_CRYPTOGRAPHIC_PARAMETERS	0x42002B
#define T_IV_COUNTER_NONCE		0x42003D
#define T_MAXIMUM_RESPONSE_SIZE		0x420050
#define T_OPERATION			0x42005C
#define T_PADDING_METHOD		0x42005F
#define T_PROTOCOL_VERSION		0x420069
#define T_PROTOCOL_VERSION_MAJOR	0x42006A
#define T_PROTOCOL_VERSION_MINOR	0x42006B
#define T_REQUEST_HEADER		0x420077
#define T_REQUEST_MESSAGE		0x420078
#define T_REQUEST_PAYLOAD		0x420079
#define T_RESPONSE_HEADER		0x42007A
#define T_RESPONSE_MESSAGE		0x42007B
#define T_RESPONSE_PAYLOAD		0x42007C
#define T_RESULT_MESSAGE		0x42007D
#define T_RESULT_REASON			0x42007E
#define T_RESULT_STATUS			0x42007F
#define T_TIME_STAMP			0x420092
#define T_UNIQUE_BATCH_ITEM_ID		0x420093
#define T_UNIQUE_IDENTIFIER		0x420094
#define T_DATA				0x4200C2
#define T_TAG_LENGTH			0x4200CE
#define T_AE_ADDITIONAL_DATA		0x4200FE
#define T_AE_TAG			0x4200FF
#define T_SERVER_CORRELATION_VALUE	0x420106

#define ALG_AES			0x03
#define MODE_CBC		0x01
#define MODE_GCM		0x09
#define PAD_PKCS5		0x03

#define STATUS_SUCCESS		0
#define STATUS_FAILED		1
#define STATUS_PENDING		2
#define STATUS_UNDONE		3

#define R_ITEM_NOT_FOUND	0x01
#define R_RESPONSE_TOO_LARGE	0x02
#define R_AUTH_NOT_SUCCESSFUL	0x03
#define R_OP_NOT_SUPPORTED	0x05
#define R_CANCELED		0x09
#define R_CRYPTO_FAILURE	0x0A
#define R_ILLEGAL_OPERATION	0x0B
#define R_PERMISSION_DENIED	0x0C
#define R_OBJECT_ARCHIVED	0x0D
#define R_GENERAL_FAILURE	0x100

#define ST_PRE_ACTIVE		1
#define ST_ACTIVE		2
#define ST_DEACTIVATED		3
#define ST_COMPROMISED		4
#define ST_DESTROYED		5
#define ST_DESTROYED_COMPROMISED 6

#define GCM_IV_LEN	12
#define GCM_TAG_LEN	16
#define CBC_IV_LEN	16
#define BIND_LABEL	"lakecrypt-kmip-bind-v1"

static const char *op_name(uint32_t op)
{
	switch (op) {
	case LC_KMIP_OP_GET_ATTRIBUTES:		return "GetAttributes";
	case LC_KMIP_OP_DISCOVER_VERSIONS:	return "DiscoverVersions";
	case LC_KMIP_OP_ENCRYPT:		return "Encrypt";
	case LC_KMIP_OP_DECRYPT:		return "Decrypt";
	default:				return "operation";
	}
}

static const char *reason_name(uint32_t r)
{
	static const char *const names[] = {
		NULL, "Item Not Found", "Response Too Large", "Authentication Not Successful",
		"Invalid Message", "Operation Not Supported", "Missing Data", "Invalid Field",
		"Feature Not Supported", "Operation Canceled By Requester",
		"Cryptographic Failure", "Illegal Operation", "Permission Denied",
		"Object Archived", "Index Out of Bounds", "Application Namespace Not Supported",
		"Key Format Type Not Supported", "Key Compression Type Not Supported",
		"Encoding Option Error", "Key Value Not Present", "Attestation Required",
		"Attestation Failed", "Sensitive", "Not Extractable", "Object Already Exists",
	};

	if (r == R_GENERAL_FAILURE)
		return "General Failure";
	if (r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "unknown reason";
}

/* ---- reply -------------------------------------------------------------- */

/*
 * A whole reply (its length was read, every byte of it received) that does
 * not parse or breaks the protocol: INVALID, never retried (provider.c)
 * and never a denial.  Retrying would only ask a broken server again, for
 * ever under a boot unit's timeout=0.  A connection that breaks in the
 * middle of a message (EOF, reset, timeout) is TRANSIENT (transport).
 */
#define bad_reply(...) lc_err(err, -EBADMSG, LC_ERRC_INVALID, __VA_ARGS__)

static int read_payload(uint32_t op, const struct lc_ttlv_tree *t, int pl,
			struct lc_kmip_result *res, struct lc_error *err)
{
	int i, r;

	i = lc_ttlv_find(t, pl, T_UNIQUE_IDENTIFIER);
	if (i >= 0) {
		r = lc_ttlv_get_text(t, i, res->uid, sizeof(res->uid));
		if (r < 0)
			return bad_reply("KMIP %s reply: the Unique Identifier is not a short text string",
					 op_name(op));
	}
	switch (op) {
	case LC_KMIP_OP_DISCOVER_VERSIONS:
		for (i = lc_ttlv_find(t, pl, T_PROTOCOL_VERSION); i >= 0;
		     i = lc_ttlv_find_next(t, i, T_PROTOCOL_VERSION)) {
			int32_t ma, mi;

			if (lc_ttlv_get_int(t, lc_ttlv_find(t, i, T_PROTOCOL_VERSION_MAJOR), &ma) < 0 ||
			    lc_ttlv_get_int(t, lc_ttlv_find(t, i, T_PROTOCOL_VERSION_MINOR), &mi) < 0)
				return bad_reply("KMIP DiscoverVersions reply: a Protocol Version without major and minor integers");
			if (ma == 1 && mi >= 0 && mi <= 99 &&
			    res->nminors < sizeof(res->minors) / sizeof(res->minors[0]))
				res->minors[res->nminors++] = (unsigned int)mi;
		}
		return 0;
	case LC_KMIP_OP_ENCRYPT:
	case LC_KMIP_OP_DECRYPT:
		if (!res->uid[0])
			return bad_reply("KMIP %s reply without the key's Unique Identifier", op_name(op));
		if (lc_ttlv_get_bytes(t, lc_ttlv_find(t, pl, T_DATA), &res->data, &res->data_len) < 0 ||
		    !res->data_len)
			return bad_reply("KMIP %s reply without Data", op_name(op));
		i = lc_ttlv_find(t, pl, T_IV_COUNTER_NONCE);
		if (i >= 0 && lc_ttlv_get_bytes(t, i, &res->iv, &res->iv_len) < 0)
			return bad_reply("KMIP %s reply: IV/Counter/Nonce is not a byte string", op_name(op));
		i = lc_ttlv_find(t, pl, T_AE_TAG);
		if (i >= 0 && lc_ttlv_get_bytes(t, i, &res->tag, &res->tag_len) < 0)
			return bad_reply("KMIP %s reply: the Authenticated Encryption Tag is not a byte string",
					 op_name(op));
		return 0;
	case LC_KMIP_OP_GET_ATTRIBUTES:
		for (i = lc_ttlv_find(t, pl, T_ATTRIBUTE); i >= 0;
		     i = lc_ttlv_find_next(t, i, T_ATTRIBUTE)) {
			char name[64];
			int v = lc_ttlv_find(t, i, T_ATTRIBUTE_VALUE);

			if (lc_ttlv_get_text(t, lc_ttlv_find(t, i, T_ATTRIBUTE_NAME), name,
					     sizeof(name)) < 0)
				continue;	/* a long name is none we asked for */
			if (!strcmp(name, "State")) {
				if (lc_ttlv_get_enum(t, v, &res->state) < 0)
					return bad_reply("KMIP GetAttributes reply: State is not an enumeration");
				res->has_state = true;
			} else if (!strcmp(name, "Deactivation Date")) {
				if (lc_ttlv_get_datetime(t, v, &res->deactivation_date) < 0)
					return bad_reply("KMIP GetAttributes reply: Deactivation Date is not a Date-Time");
			} else if (!strcmp(name, "Destroy Date")) {
				if (lc_ttlv_get_datetime(t, v, &res->destroy_date) < 0)
					return bad_reply("KMIP GetAttributes reply: Destroy Date is not a Date-Time");
			}
		}
		return 0;
	default:
		return 0;
	}
}

static int fail_class(uint32_t op, uint32_t reason)
{
	switch (reason) {
	case R_ITEM_NOT_FOUND:
	case R_PERMISSION_DENIED:
	case R_OBJECT_ARCHIVED:
		return LC_ERRC_DENIED;
	case R_CRYPTO_FAILURE:
		return op == LC_KMIP_OP_DECRYPT ? LC_ERRC_INVALID : LC_ERRC_MISCONFIG;
	case R_GENERAL_FAILURE:
	case R_CANCELED:
		return LC_ERRC_TRANSIENT;
	default:
		return LC_ERRC_MISCONFIG;
	}
}

static int parse_tree(uint32_t op, const uint8_t *batch_id, const struct lc_ttlv_tree *t,
		      struct lc_kmip_result *res, struct lc_error *err)
{
	int hdr, bi, i, pl;
	int32_t count, mi;
	uint32_t rop;
	const uint8_t *id;
	size_t idlen;

	if (t->items[0].tag != T_RESPONSE_MESSAGE || t->items[0].type != LC_TTLV_STRUCTURE)
		return bad_reply("KMIP reply is not a Response Message (tag 0x%06x)", t->items[0].tag);
	hdr = lc_ttlv_find(t, 0, T_RESPONSE_HEADER);
	if (hdr < 0)
		return bad_reply("KMIP reply without a Response Header");
	i = lc_ttlv_find(t, hdr, T_PROTOCOL_VERSION);
	if (lc_ttlv_get_int(t, lc_ttlv_find(t, i, T_PROTOCOL_VERSION_MINOR), &mi) < 0 || mi < 0)
		return bad_reply("KMIP reply header without a Protocol Version");
	res->version_minor = (unsigned int)mi;
	if (lc_ttlv_get_datetime(t, lc_ttlv_find(t, hdr, T_TIME_STAMP), &res->time_stamp) < 0)
		return bad_reply("KMIP reply header without a Time Stamp");
	i = lc_ttlv_find(t, hdr, T_SERVER_CORRELATION_VALUE);
	if (i >= 0 && lc_ttlv_get_text(t, i, res->server_corr, sizeof(res->server_corr)) < 0)
		res->server_corr[0] = '\0';
	if (lc_ttlv_get_int(t, lc_ttlv_find(t, hdr, T_BATCH_COUNT), &count) < 0 || count != 1)
		return bad_reply("KMIP reply: the Batch Count is not 1");
	bi = lc_ttlv_find(t, 0, T_BATCH_ITEM);
	if (bi < 0 || lc_ttlv_find_next(t, bi, T_BATCH_ITEM) >= 0)
		return bad_reply("KMIP reply: expected exactly one Batch Item");
	i = lc_ttlv_find(t, bi, T_OPERATION);
	if (i >= 0 && (lc_ttlv_get_enum(t, i, &rop) < 0 || rop != op))
		return bad_reply("KMIP reply: the Batch Item answers another operation than %s",
				 op_name(op));
	i = lc_ttlv_find(t, bi, T_UNIQUE_BATCH_ITEM_ID);
	if (i >= 0 && batch_id &&
	    (lc_ttlv_get_bytes(t, i, &id, &idlen) < 0 || idlen != LC_KMIP_BATCH_ID_LEN ||
	     memcmp(id, batch_id, LC_KMIP_BATCH_ID_LEN)))
		return bad_reply("KMIP reply: the Unique Batch Item ID is not the one sent");
	if (lc_ttlv_get_enum(t, lc_ttlv_find(t, bi, T_RESULT_STATUS), &res->status) < 0)
		return bad_reply("KMIP reply without a Result Status");
	i = lc_ttlv_find(t, bi, T_RESULT_REASON);
	if (i >= 0 && lc_ttlv_get_enum(t, i, &res->reason) < 0)
		return bad_reply("KMIP reply: the Result Reason is not an enumeration");
	i = lc_ttlv_find(t, bi, T_RESULT_MESSAGE);
	if (i >= 0 && lc_ttlv_get_text(t, i, res->message, sizeof(res->message)) == -ENAMETOOLONG) {
		/* Keep the start of an over-long message. */
		memcpy(res->message, t->items[i].val, sizeof(res->message) - 1);
		for (size_t k = 0; k < sizeof(res->message) - 1; k++)
			if ((uint8_t)res->message[k] < 0x20 || (uint8_t)res->message[k] == 0x7f)
				res->message[k] = '?';
		res->message[sizeof(res->message) - 1] = '\0';
	}
	switch (res->status) {
	case STATUS_SUCCESS:
		break;
	case STATUS_FAILED:
		return lc_err(err, res->reason == R_ITEM_NOT_FOUND ? -ENOKEY :
				   fail_class(op, res->reason) == LC_ERRC_DENIED ? -EKEYREVOKED : -EIO,
			      fail_class(op, res->reason),
			      "KMIP %s failed: %s (reason 0x%x)%s%s", op_name(op),
			      reason_name(res->reason), res->reason, res->message[0] ? ": " : "",
			      res->message);
	case STATUS_PENDING:
	case STATUS_UNDONE:
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT,
			      "KMIP %s: the server answered Operation %s", op_name(op),
			      res->status == STATUS_PENDING ? "Pending" : "Undone");
	default:
		return bad_reply("KMIP %s: unknown Result Status %u", op_name(op), res->status);
	}
	pl = lc_ttlv_find(t, bi, T_RESPONSE_PAYLOAD);
	if (pl < 0)
		return bad_reply("KMIP %s reply without a Response Payload", op_name(op));
	return read_payload(op, t, pl, res, err);
}

int lc_kmip_parse_response(uint32_t op, const uint8_t *batch_id, const uint8_t *buf,
			   size_t len, struct lc_kmip_result *res, struct lc_error *err)
{
	struct lc_ttlv_tree *t;
	int r;

	memset(res, 0, sizeof(*res));
	if (len > LC_KMIP_MAX_RESPONSE)
		return bad_reply("KMIP reply of %zu bytes is too large (at most %d)", len,
				 LC_KMIP_MAX_RESPONSE);
	t = malloc(sizeof(*t));
	if (!t)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	r = lc_ttlv_decode(buf, len, t, err);
	if (r >= 0)
		r = parse_tree(op, batch_id, t, res, err);
	free(t);
	return r;
}

/* ---- blob ----------------------------------------------------------------- */

int lc_kmip_blob_parse(const uint8_t *p, size_t n, struct lc_kmip_blob *b, struct lc_error *err)
{
	size_t ct_len;

	memset(b, 0, sizeof(*b));
	if (n < LC_KMIP_BLOB_HDR || memcmp(p, "LKM1", 4))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "the wrapped key is not a lakecrypt KMIP blob (bad magic or %zu bytes)", n);
	b->mode = p[4];
	b->iv_len = p[5];
	b->tag_len = p[6];
	ct_len = (size_t)p[40] << 8 | p[41];
	if ((b->mode != LC_KMIP_MODE_GCM && b->mode != LC_KMIP_MODE_CBC_BOUND) || p[7] ||
	    !b->iv_len || b->iv_len > 16 ||
	    (b->mode == LC_KMIP_MODE_GCM ? b->tag_len != GCM_TAG_LEN : b->tag_len != 0) ||
	    !ct_len || ct_len > LC_KMIP_MAX_CT ||
	    n != LC_KMIP_BLOB_HDR + b->iv_len + b->tag_len + ct_len)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "the KMIP blob is corrupt: mode %u, IV %u, tag %u, ciphertext %zu bytes in %zu",
			      b->mode, b->iv_len, b->tag_len, ct_len, n);
	memcpy(b->ctx_digest, p + 8, 32);
	b->iv = p + LC_KMIP_BLOB_HDR;
	b->tag = b->iv + b->iv_len;
	b->ct = b->tag + b->tag_len;
	b->ct_len = ct_len;
	return 0;
}

static int blob_build(uint8_t mode, const uint8_t digest[32], const uint8_t *iv, size_t iv_len,
		      const uint8_t *tag, size_t tag_len, const uint8_t *ct, size_t ct_len,
		      struct lc_buf *blob, struct lc_error *err)
{
	uint8_t *p;

	if (!iv_len || iv_len > 16 || tag_len > 16 || !ct_len || ct_len > LC_KMIP_MAX_CT)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "KMIP Encrypt reply: IV %zu, tag %zu, ciphertext %zu bytes: not usable",
			      iv_len, tag_len, ct_len);
	blob->len = LC_KMIP_BLOB_HDR + iv_len + tag_len + ct_len;
	blob->p = p = malloc(blob->len);
	if (!p)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	memcpy(p, "LKM1", 4);
	p[4] = mode;
	p[5] = (uint8_t)iv_len;
	p[6] = (uint8_t)tag_len;
	p[7] = 0;
	memcpy(p + 8, digest, 32);
	p[40] = (uint8_t)(ct_len >> 8);
	p[41] = (uint8_t)ct_len;
	memcpy(p + LC_KMIP_BLOB_HDR, iv, iv_len);
	if (tag_len)
		memcpy(p + LC_KMIP_BLOB_HDR + iv_len, tag, tag_len);
	memcpy(p + LC_KMIP_BLOB_HDR + iv_len + tag_len, ct, ct_len);
	return 0;
}

/* B = SHA-256(label || be32(len(ctx)) || ctx || kek). */
static int bind_digest(const char *ctx, const uint8_t *kek, size_t kek_len, uint8_t out[32])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	size_t cl = strlen(ctx);
	uint8_t be[4] = { (uint8_t)(cl >> 24), (uint8_t)(cl >> 16), (uint8_t)(cl >> 8), (uint8_t)cl };
	int ok;

	if (!m)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(m, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(m, BIND_LABEL, strlen(BIND_LABEL)) &&
	     EVP_DigestUpdate(m, be, 4) && EVP_DigestUpdate(m, ctx, cl) &&
	     EVP_DigestUpdate(m, kek, kek_len) && EVP_DigestFinal_ex(m, out, NULL);
	EVP_MD_CTX_free(m);
	return ok ? 0 : -ENOMEM;
}

/* ---- the client ------------------------------------------------------------ */

struct lc_kms_kmip {
	SSL_CTX *ctx;
	char host[256];
	char port[8];
	bool host_is_ip;
	unsigned int max_minor;
	uint64_t connect_timeout_ms;
	_Atomic unsigned int minor;	/* negotiated 1.x, 0: not yet */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int parse_server(struct lc_kms_kmip *k, const char *s, struct lc_error *err)
{
	const char *host = s, *port = NULL;
	size_t hl;

	if (!s || !*s)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "[kmip] server is not set: expected host[:port] of the KMIP server");
	if (*s == '[') {
		const char *e = strchr(s, ']');

		if (!e || (e[1] && e[1] != ':'))
			goto bad;
		host = s + 1;
		hl = (size_t)(e - host);
		port = e[1] ? e + 2 : NULL;
	} else {
		const char *c = strchr(s, ':');

		if (c && strchr(c + 1, ':'))
			goto bad;	/* a bare IPv6 address: needs [] */
		hl = c ? (size_t)(c - s) : strlen(s);
		port = c ? c + 1 : NULL;
	}
	if (!hl || hl >= sizeof(k->host))
		goto bad;
	for (size_t i = 0; i < hl; i++)
		if (host[i] <= ' ' || host[i] == '/' || host[i] == '@' || (unsigned char)host[i] >= 0x7f)
			goto bad;
	memcpy(k->host, host, hl);
	k->host[hl] = '\0';
	if (port) {
		char *end;
		unsigned long p = strtoul(port, &end, 10);

		if (!*port || *end || p == 0 || p > 65535)
			goto bad;
		snprintf(k->port, sizeof(k->port), "%lu", p);
	} else {
		snprintf(k->port, sizeof(k->port), "%s", LC_KMIP_DEFAULT_PORT);
	}
	{
		unsigned char tmp[16];

		k->host_is_ip = inet_pton(AF_INET, k->host, tmp) == 1 ||
				inet_pton(AF_INET6, k->host, tmp) == 1;
	}
	return 0;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
		      "[kmip] server = \"%.128s\" is not usable: expected host, host:port or [IPv6]:port",
		      s);
}

static void ssl_errstr(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, size);
	else
		snprintf(buf, size, "no OpenSSL error");
	ERR_clear_error();
}

/* Read the client key: a regular file, not group/other accessible, into
 * locked memory, then parsed from there; the copy is wiped. */
static int load_key(SSL_CTX *ctx, const char *path, struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret buf = { 0 };
	_cleanup_close_ int fd = -1;
	struct stat st;
	EVP_PKEY *pk;
	size_t len = 0;
	BIO *bio;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "[kmip] client_key %s: %s", path,
			      strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "[kmip] client_key %s is not a regular file", path);
	if (st.st_mode & 077)
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "[kmip] client_key %s has mode %04o: a private key must not be accessible by group or others (chmod 600)",
			      path, (unsigned int)(st.st_mode & 07777));
	/* As for every other secret file: another user could replace it. */
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "[kmip] client_key %s is owned by uid %u, not by the agent's user or root",
			      path, (unsigned int)st.st_uid);
	if (st.st_size <= 0 || st.st_size > 64 * 1024)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "[kmip] client_key %s: %lld bytes is not a PEM private key", path,
			      (long long)st.st_size);
	r = lc_secret_alloc(&buf, (size_t)st.st_size);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	while (len < buf.len) {
		ssize_t n = read(fd, buf.p + len, buf.len - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return lc_err(err, n < 0 ? -errno : -EIO, LC_ERRC_MISCONFIG,
				      "[kmip] reading client_key %s failed", path);
		len += (size_t)n;
	}
	bio = BIO_new_mem_buf(buf.p, (int)len);
	if (!bio)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pk) {
		ERR_clear_error();
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "[kmip] client_key %s is not an unencrypted PEM private key", path);
	}
	r = SSL_CTX_use_PrivateKey(ctx, pk);
	EVP_PKEY_free(pk);
	if (r != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "[kmip] client_key %s does not belong to the client certificate", path);
	}
	return 0;
}

int lc_kms_kmip_new(struct lc_kms_kmip **out, const struct lc_kms_kmip_config *cfg,
		    struct lc_error *err)
{
	struct lc_kms_kmip *k;
	char es[256];
	int r;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	r = parse_server(k, cfg->server, err);
	if (r < 0)
		goto fail;
	if (!cfg->ca_file || !cfg->cert_file || !cfg->key_file) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "[kmip] needs ca_bundle, client_cert and client_key (mutual TLS)");
		goto fail;
	}
	if (cfg->max_minor && (cfg->max_minor < 2 || cfg->max_minor > 4)) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "[kmip] max_version 1.%u: expected 1.2, 1.3 or 1.4", cfg->max_minor);
		goto fail;
	}
	k->max_minor = cfg->max_minor ? cfg->max_minor : 4;
	k->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
							: LC_KMIP_CONNECT_TIMEOUT_MS;
	k->ctx = SSL_CTX_new(TLS_client_method());
	if (!k->ctx) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory (SSL_CTX)");
		goto fail;
	}
	/* KMIP Profiles: TLS 1.2 or later, the server verified. */
	SSL_CTX_set_min_proto_version(k->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(k->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(k->ctx, SSL_MODE_AUTO_RETRY);
	if (SSL_CTX_load_verify_locations(k->ctx, cfg->ca_file, NULL) != 1) {
		ssl_errstr(es, sizeof(es));
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "[kmip] ca_bundle %s is not a readable PEM CA bundle (%s)", cfg->ca_file, es);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(k->ctx, cfg->cert_file) != 1) {
		ssl_errstr(es, sizeof(es));
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "[kmip] client_cert %s is not a readable PEM certificate (%s)", cfg->cert_file,
			   es);
		goto fail;
	}
	r = load_key(k->ctx, cfg->key_file, err);
	if (r < 0)
		goto fail;
	*out = k;
	return 0;
fail:
	lc_kms_kmip_free(k);
	return r;
}

void lc_kms_kmip_free(struct lc_kms_kmip *k)
{
	if (!k)
		return;
	SSL_CTX_free(k->ctx);
	free(k);
}

/* ---- transport ---------------------------------------------------------- */

struct conn {
	int fd;
	SSL *ssl;
	uint64_t deadline;	/* ms, monotonic */
	struct lc_kms_kmip *k;
	uint8_t server_id[32];	/* SHA-256 of the server certificate's public key (SPKI DER) */
	bool have_server_id;
};

static void conn_close(struct conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);	/* no close_notify: the socket just closes */
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

static int wait_fd(struct conn *c, short ev, uint64_t deadline, const char *what,
		   struct lc_error *err)
{
	for (;;) {
		uint64_t now = now_ms();
		struct pollfd p = { .fd = c->fd, .events = ev };
		int n;

		if (now >= deadline)
			return lc_err(err, -ETIMEDOUT, LC_ERRC_TRANSIENT,
				      "KMIP server %s:%s: no answer %s within the time limit", c->k->host,
				      c->k->port, what);
		n = poll(&p, 1, (int)(deadline - now > 60000 ? 60000 : deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return lc_err(err, -errno, LC_ERRC_TRANSIENT, "poll: %s", strerror(errno));
	}
}

/* Why a TLS operation failed, as a class: certificate trouble is the
 * configuration's, anything else the network's. */
static int tls_fail(struct conn *c, int ret, const char *what, struct lc_error *err)
{
	int se = SSL_get_error(c->ssl, ret);
	unsigned long e = ERR_peek_last_error();
	long vr = SSL_get_verify_result(c->ssl);
	char es[256] = "";

	if (e)
		ERR_error_string_n(e, es, sizeof(es));
	ERR_clear_error();
	if (vr != X509_V_OK)
		return lc_err(err, -EPROTO, LC_ERRC_MISCONFIG,
			      "KMIP server %s:%s: its TLS certificate does not verify against ca_bundle: %s",
			      c->k->host, c->k->port, X509_verify_cert_error_string(vr));
	if (se == SSL_ERROR_SSL && e && ERR_GET_LIB(e) == ERR_LIB_SSL) {
		int reason = ERR_GET_REASON(e);

		/* A fatal alert from the server (reason = SSL_AD_REASON_OFFSET + alert). */
		if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
			int alert = reason - SSL_AD_REASON_OFFSET;

			switch (alert) {
			case SSL_AD_BAD_CERTIFICATE:
			case SSL_AD_UNSUPPORTED_CERTIFICATE:
			case SSL_AD_CERTIFICATE_REVOKED:
			case SSL_AD_CERTIFICATE_EXPIRED:
			case SSL_AD_CERTIFICATE_UNKNOWN:
			case SSL_AD_UNKNOWN_CA:
			case SSL_AD_ACCESS_DENIED:
			case SSL_AD_HANDSHAKE_FAILURE:
			case SSL_AD_PROTOCOL_VERSION:
			case SSL_AD_INSUFFICIENT_SECURITY:
#ifdef SSL_AD_CERTIFICATE_REQUIRED
			case SSL_AD_CERTIFICATE_REQUIRED:
#endif
				return lc_err(err, -EACCES, LC_ERRC_MISCONFIG,
					      "KMIP server %s:%s refused the TLS session %s (alert \"%s\"): does it trust client_cert, and does client_cert have clientAuth?",
					      c->k->host, c->k->port, what,
					      SSL_alert_desc_string_long(alert));
			default:
				break;
			}
		}
	}
	if (se == SSL_ERROR_ZERO_RETURN || (se == SSL_ERROR_SYSCALL && !e) ||
	    (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
		return lc_err(err, -ECONNRESET, LC_ERRC_TRANSIENT,
			      "KMIP server %s:%s closed the connection %s", c->k->host, c->k->port,
			      what);
	return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "KMIP server %s:%s: TLS failed %s: %s",
		      c->k->host, c->k->port, what, es[0] ? es : "I/O error");
}

/* The server's identity: SHA-256 of its (verified) certificate's
 * SubjectPublicKeyInfo, DER (RFC 5280 section 4.1.2.7).  The public key,
 * not the whole certificate: a renewed certificate on the same key pair
 * is the same server. */
static void server_identity(struct conn *c)
{
	X509 *x = SSL_get0_peer_certificate(c->ssl);
	unsigned char *der = NULL;
	int n;

	c->have_server_id = false;
	if (!x)
		return;
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (n > 0 && SHA256(der, (size_t)n, c->server_id))
		c->have_server_id = true;
	OPENSSL_free(der);
}

static int conn_open(struct lc_kms_kmip *k, struct conn *c, uint64_t deadline,
		     struct lc_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL, *a;
	uint64_t cdeadline = now_ms() + k->connect_timeout_ms;
	int r, gai, last = ECONNREFUSED;

	c->fd = -1;
	c->ssl = NULL;
	c->k = k;
	c->deadline = deadline;
	c->have_server_id = false;
	if (cdeadline > deadline)
		cdeadline = deadline;
	gai = getaddrinfo(k->host, k->port, &hints, &ai);
	if (gai)
		return lc_err(err, -EHOSTUNREACH,
			      gai == EAI_AGAIN ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG,
			      "KMIP server %s: cannot resolve: %s", k->host, gai_strerror(gai));
	for (a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (fd < 0) {
			last = errno;
			continue;
		}
		c->fd = fd;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (errno != EINPROGRESS) {
			last = errno;
			close(fd);
			c->fd = -1;
			continue;
		}
		r = wait_fd(c, POLLOUT, cdeadline, "to connect", err);
		if (r < 0) {
			freeaddrinfo(ai);
			conn_close(c);
			return r;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && !soerr)
			break;
		last = soerr ? soerr : errno;
		close(fd);
		c->fd = -1;
	}
	freeaddrinfo(ai);
	if (c->fd < 0)
		return lc_err(err, -last, LC_ERRC_TRANSIENT, "KMIP server %s:%s: connect: %s",
			      k->host, k->port, strerror(last));

	c->ssl = SSL_new(k->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		conn_close(c);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory (SSL)");
	}
	if (k->host_is_ip) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), k->host);
	} else {
		SSL_set_tlsext_host_name(c->ssl, k->host);
		SSL_set1_host(c->ssl, k->host);
	}
	for (;;) {
		int ret = SSL_connect(c->ssl), se;

		if (ret == 1) {
			server_identity(c);
			return 0;
		}
		se = SSL_get_error(c->ssl, ret);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
			r = wait_fd(c, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, cdeadline,
				    "to the TLS handshake", err);
		} else {
			r = tls_fail(c, ret, "in the handshake", err);
		}
		if (r < 0) {
			conn_close(c);
			return r;
		}
	}
}

static int conn_write(struct conn *c, const uint8_t *p, size_t n, struct lc_error *err)
{
	while (n) {
		size_t w = 0;
		int ret = SSL_write_ex(c->ssl, p, n, &w), se, r;

		if (ret == 1) {
			p += w;
			n -= w;
			continue;
		}
		se = SSL_get_error(c->ssl, ret);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE)
			r = wait_fd(c, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, c->deadline,
				    "while sending the request", err);
		else
			r = tls_fail(c, ret, "while sending the request", err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int conn_read(struct conn *c, uint8_t *p, size_t n, struct lc_error *err)
{
	while (n) {
		size_t got = 0;
		int ret = SSL_read_ex(c->ssl, p, n, &got), se, r;

		if (ret == 1) {
			p += got;
			n -= got;
			continue;
		}
		se = SSL_get_error(c->ssl, ret);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE)
			r = wait_fd(c, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, c->deadline,
				    "to the request", err);
		else
			r = tls_fail(c, ret, "while reading the reply", err);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * In TLS 1.3 a server checks the client certificate after the client's
 * side of the handshake is done: its refusal can arrive as a reset that
 * discards the alert.  Say so, and stay transient (retried; the next
 * attempt usually reads the alert and is misconfigured).
 */
static int tls13_hint(struct conn *c, int r, struct lc_error *err)
{
	if (r == -ECONNRESET && SSL_version(c->ssl) == TLS1_3_VERSION) {
		size_t l = strlen(err->msg);

		snprintf(err->msg + l, sizeof(err->msg) - l,
			 " before any reply (with TLS 1.3 also how a server that does not trust client_cert may end the session)");
	}
	return r;
}

/*
 * One request, one reply, on @c.  The reply lands in @resp (locked: a
 * Decrypt reply holds the key), *@rlen its length: at most
 * LC_KMIP_MAX_RESPONSE bytes in all, as the request's Maximum Response
 * Size says.
 */
static int exchange(struct conn *c, const uint8_t *req, size_t reqlen, struct lc_secret *resp,
		    size_t *rlen, struct lc_error *err)
{
	uint32_t tt, len;
	int r;

	r = conn_write(c, req, reqlen, err);
	if (r == -ECONNRESET) {
		/* The server may have said why before it closed: an alert
		 * already received is still readable. */
		uint8_t b;
		size_t got;
		int ret = SSL_read_ex(c->ssl, &b, 1, &got);

		if (ret != 1 && SSL_get_error(c->ssl, ret) == SSL_ERROR_SSL) {
			struct lc_error e2;

			if (tls_fail(c, ret, "after the handshake", &e2) < 0 &&
			    e2.cls == LC_ERRC_MISCONFIG) {
				*err = e2;
				return e2.code;
			}
		}
		ERR_clear_error();
	}
	if (r < 0)
		return tls13_hint(c, r, err);
	r = conn_read(c, resp->p, LC_TTLV_HDR, err);
	if (r < 0)
		return tls13_hint(c, r, err);
	tt = (uint32_t)resp->p[0] << 24 | (uint32_t)resp->p[1] << 16 | (uint32_t)resp->p[2] << 8 |
	     resp->p[3];
	len = (uint32_t)resp->p[4] << 24 | (uint32_t)resp->p[5] << 16 | (uint32_t)resp->p[6] << 8 |
	      resp->p[7];
	if (tt != ((uint32_t)T_RESPONSE_MESSAGE << 8 | LC_TTLV_STRUCTURE))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "KMIP server %s:%s: the reply does not start with a Response Message (0x%08x): not a KMIP server?",
			      c->k->host, c->k->port, tt);
	if (len % 8 || len > LC_KMIP_MAX_RESPONSE - LC_TTLV_HDR)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "KMIP server %s:%s: a reply of %u bytes is too large or misaligned (at most %zu)",
			      c->k->host, c->k->port, len, (size_t)LC_KMIP_MAX_RESPONSE - LC_TTLV_HDR);
	r = conn_read(c, resp->p + LC_TTLV_HDR, len, err);
	if (r < 0)
		return r;
	*rlen = LC_TTLV_HDR + len;
	return 0;
}

/* ---- requests -------------------------------------------------------------- */

static void req_begin(struct lc_ttlv_enc *e, unsigned int minor, uint32_t op,
		      const uint8_t batch_id[LC_KMIP_BATCH_ID_LEN])
{
	lc_ttlv_begin(e, T_REQUEST_MESSAGE);
	lc_ttlv_begin(e, T_REQUEST_HEADER);
	lc_ttlv_begin(e, T_PROTOCOL_VERSION);
	lc_ttlv_int(e, T_PROTOCOL_VERSION_MAJOR, 1);
	lc_ttlv_int(e, T_PROTOCOL_VERSION_MINOR, (int32_t)minor);
	lc_ttlv_end(e);
	lc_ttlv_int(e, T_MAXIMUM_RESPONSE_SIZE, LC_KMIP_MAX_RESPONSE);
	lc_ttlv_int(e, T_BATCH_COUNT, 1);
	lc_ttlv_end(e);
	lc_ttlv_begin(e, T_BATCH_ITEM);
	lc_ttlv_enum(e, T_OPERATION, op);
	lc_ttlv_bytes(e, T_UNIQUE_BATCH_ITEM_ID, batch_id, LC_KMIP_BATCH_ID_LEN);
	lc_ttlv_begin(e, T_REQUEST_PAYLOAD);
}

static void req_end(struct lc_ttlv_enc *e)
{
	lc_ttlv_end(e);	/* payload */
	lc_ttlv_end(e);	/* batch item */
	lc_ttlv_end(e);	/* message */
}

static void crypto_params(struct lc_ttlv_enc *e, int mode)
{
	lc_ttlv_begin(e, T_CRYPTOGRAPHIC_PARAMETERS);
	if (mode == LC_KMIP_MODE_GCM) {
		lc_ttlv_enum(e, T_BLOCK_CIPHER_MODE, MODE_GCM);
		lc_ttlv_enum(e, T_CRYPTOGRAPHIC_ALGORITHM, ALG_AES);
		lc_ttlv_int(e, T_TAG_LENGTH, GCM_TAG_LEN);
	} else {
		lc_ttlv_enum(e, T_BLOCK_CIPHER_MODE, MODE_CBC);
		lc_ttlv_enum(e, T_PADDING_METHOD, PAD_PKCS5);
		lc_ttlv_enum(e, T_CRYPTOGRAPHIC_ALGORITHM, ALG_AES);
	}
	lc_ttlv_end(e);
}

static void fill_reply(struct lc_provider_reply *reply, const struct lc_kmip_result *res,
		       const uint8_t batch_id[LC_KMIP_BATCH_ID_LEN])
{
	if (!reply)
		return;
	if (res->uid[0])
		snprintf(reply->key_id, sizeof(reply->key_id), "%s", res->uid);
	if (res->server_corr[0]) {
		snprintf(reply->request_id, sizeof(reply->request_id), "%s", res->server_corr);
	} else {
		char *o = reply->request_id;

		o += sprintf(o, "batch-");
		for (int i = 0; i < LC_KMIP_BATCH_ID_LEN; i++)
			o += sprintf(o, "%02x", batch_id[i]);
		if (res->time_stamp)
			sprintf(o, "@%" PRId64, res->time_stamp);
	}
}

/*
 * One operation on an open connection: build with @build, send, read,
 * parse.  @reqbuf is locked memory of LC_KMIP_MAX_REQUEST bytes; @resp of
 * LC_KMIP_MAX_RESPONSE.
 */
typedef void (*build_fn)(struct lc_ttlv_enc *e, const void *arg);

static int call(struct conn *c, unsigned int minor, uint32_t op, build_fn build, const void *arg,
		struct lc_secret *reqbuf, struct lc_secret *resp, struct lc_kmip_result *res,
		struct lc_provider_reply *reply, struct lc_error *err)
{
	uint8_t batch_id[LC_KMIP_BATCH_ID_LEN];
	struct lc_ttlv_enc e;
	size_t reqlen, rlen = 0;
	int r;

	memset(res, 0, sizeof(*res));
	r = lc_rand_bytes(batch_id, sizeof(batch_id), false, "a KMIP batch item id", err);
	if (r < 0)
		return r;
	lc_ttlv_enc_init(&e, reqbuf->p, reqbuf->len);
	req_begin(&e, minor, op, batch_id);
	build(&e, arg);
	req_end(&e);
	reqlen = lc_ttlv_enc_done(&e);
	if (!reqlen)
		return lc_err(err, -E2BIG, LC_ERRC_INVALID, "KMIP %s request does not fit in %zu bytes",
			      op_name(op), reqbuf->len);
	r = exchange(c, reqbuf->p, reqlen, resp, &rlen, err);
	lc_wipe(reqbuf->p, reqlen);
	if (r < 0)
		return r;
	r = lc_kmip_parse_response(op, batch_id, resp->p, rlen, res, err);
	fill_reply(reply, res, batch_id);
	return r;
}

static void build_discover(struct lc_ttlv_enc *e, const void *arg)
{
	(void)e;
	(void)arg;	/* no versions listed: the server lists all it speaks */
}

struct session {
	struct conn c;
	struct lc_secret req, resp;
	unsigned int minor;
};

static void session_close(struct session *s)
{
	conn_close(&s->c);
	lc_secret_free(&s->req);
	lc_secret_free(&s->resp);
}

/* Connect, and agree on a version the first time. */
static int session_open(struct lc_kms_kmip *k, uint64_t timeout_ms, struct session *s,
			struct lc_error *err)
{
	struct lc_kmip_result res;
	unsigned int best = 0;
	int r;

	memset(s, 0, sizeof(*s));
	s->c.fd = -1;
	if (lc_secret_alloc(&s->req, LC_KMIP_MAX_REQUEST) < 0 ||
	    lc_secret_alloc(&s->resp, LC_KMIP_MAX_RESPONSE) < 0) {
		session_close(s);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	r = conn_open(k, &s->c, now_ms() + (timeout_ms ? timeout_ms : LC_KMIP_DEFAULT_TIMEOUT_MS),
		      err);
	if (r < 0) {
		session_close(s);
		return r;
	}
	s->minor = atomic_load(&k->minor);
	if (s->minor)
		return 0;
	/* Discover Versions (KMIP 1.1+) in a 1.2 header. */
	r = call(&s->c, 2, LC_KMIP_OP_DISCOVER_VERSIONS, build_discover, NULL, &s->req, &s->resp,
		 &res, NULL, err);
	if (r < 0) {
		if (err->cls == LC_ERRC_DENIED)
			err->cls = LC_ERRC_MISCONFIG;	/* never a kill: this names no key */
		session_close(s);
		return r;
	}
	for (unsigned int i = 0; i < res.nminors; i++)
		if (res.minors[i] >= 2 && res.minors[i] <= k->max_minor && res.minors[i] > best)
			best = res.minors[i];
	if (!best) {
		session_close(s);
		return lc_err(err, -EPROTONOSUPPORT, LC_ERRC_MISCONFIG,
			      "KMIP server %s:%s offers no version from 1.2 to 1.%u (Encrypt and Decrypt need 1.2)",
			      k->host, k->port, k->max_minor);
	}
	atomic_store(&k->minor, best);
	s->minor = best;
	return 0;
}

static int check_uid(const char *key_ref, struct lc_error *err)
{
	size_t n = key_ref ? strlen(key_ref) : 0;

	if (n > 14 && !strncmp(key_ref, LC_KMIP_BOUND_PREFIX, 14))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "KMIP bound key reference \"%.120s\": expected " LC_KMIP_BOUND_PREFIX "<64 hex digits>;uid=<Unique Identifier>",
			      key_ref);
	if (!n || n > LC_KMIP_UID_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "KMIP key reference must be the key's Unique Identifier (1..%d characters)",
			      LC_KMIP_UID_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)key_ref[i] < 0x21 || (unsigned char)key_ref[i] > 0x7e)
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "KMIP key reference \"%.64s\" must be printable ASCII without blanks",
				      key_ref);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;	/* lower case only: one spelling per identity */
}

int lc_kmip_parse_ref(const char *key_ref, struct lc_kmip_ref *ref, struct lc_error *err)
{
	const char *p = key_ref;

	memset(ref, 0, sizeof(*ref));
	if (p && !strncmp(p, LC_KMIP_BOUND_PREFIX, 14)) {
		p += 14;
		for (int i = 0; i < 32; i++) {
			int hi = hexval(p[2 * i]), lo = hi < 0 ? -1 : hexval(p[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return check_uid(key_ref, err);
			ref->server_id[i] = (uint8_t)(hi << 4 | lo);
		}
		if (strncmp(p + 64, ";uid=", 5))
			return check_uid(key_ref, err);
		p += 69;
		ref->bound = true;
	}
	if (check_uid(p, err) < 0)
		return -EINVAL;
	snprintf(ref->uid, sizeof(ref->uid), "%s", p);
	return 0;
}

static void hex32(const uint8_t id[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
}

/*
 * After a failed call or a key state that is not "enabled" (@r < 0 with
 * @err, or @denial): a denial counts only from the server the key was
 * made on.  For a bound reference on another server (another key pair:
 * a config change, another cluster, an unsynced replica) it becomes
 * MISCONFIG; for an unbound reference, Item Not Found does (it cannot
 * tell a destroyed key from another server).  Returns the (new) @r.
 */
static int server_check(const struct lc_kms_kmip *k, const struct conn *c,
			const struct lc_kmip_ref *ref, const struct lc_kmip_result *res, int r,
			bool denial, struct lc_error *err)
{
	char want[65], got[65];

	if ((r < 0 && err->cls != LC_ERRC_DENIED) || (r >= 0 && !denial))
		return r;
	if (ref->bound && (!c->have_server_id || memcmp(c->server_id, ref->server_id, 32))) {
		char was[LC_ERROR_MSG_MAX];

		hex32(ref->server_id, want);
		if (c->have_server_id)
			hex32(c->server_id, got);
		else
			snprintf(got, sizeof(got), "unknown");
		snprintf(was, sizeof(was), "%s", r < 0 ? err->msg : "a key state other than enabled");
		return lc_err(err, -EXDEV, LC_ERRC_MISCONFIG,
			      "KMIP server %s:%s is not the server key \"%.64s\" was made on (its public key's SHA-256 is %.16s..., the key configuration's %.16s...): another server, or a replica that does not hold the key; no revocation (it said: %.200s)",
			      k->host, k->port, ref->uid, got, want, was);
	}
	if (!ref->bound && r < 0 && res->status == STATUS_FAILED && res->reason == R_ITEM_NOT_FOUND)
		return lc_err(err, -ENOKEY, LC_ERRC_MISCONFIG,
			      "KMIP server %s:%s has no key \"%.64s\" (Item Not Found), and the key reference is not bound to a server: a destroyed key cannot be told from another server or an unsynced replica, so this is no revocation; re-create the key configuration on the right server (keyconfig create binds it; then lakecryptctl workspace rekey)",
			      k->host, k->port, ref->uid);
	return r;
}

/* The key answered must be the key asked for. */
static int check_answered_uid(const char *key_ref, const struct lc_kmip_result *res,
			      struct lc_error *err)
{
	if (strcmp(res->uid, key_ref))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "KMIP reply names key \"%.64s\", not the key asked for", res->uid);
	return 0;
}

/* ---- wrap ------------------------------------------------------------------ */

struct enc_args {
	const char *uid;
	int mode;
	const uint8_t *data;
	size_t data_len;
	const uint8_t *iv;
	size_t iv_len;
	const uint8_t *tag;	/* Decrypt, GCM */
	const char *aad;	/* GCM */
};

static void build_crypt(struct lc_ttlv_enc *e, const void *arg)
{
	const struct enc_args *a = arg;

	lc_ttlv_text(e, T_UNIQUE_IDENTIFIER, a->uid);
	crypto_params(e, a->mode);
	lc_ttlv_bytes(e, T_DATA, a->data, a->data_len);
	lc_ttlv_bytes(e, T_IV_COUNTER_NONCE, a->iv, a->iv_len);
	if (a->mode == LC_KMIP_MODE_GCM) {
		lc_ttlv_bytes(e, T_AE_ADDITIONAL_DATA, a->aad, strlen(a->aad));
		if (a->tag)
			lc_ttlv_bytes(e, T_AE_TAG, a->tag, GCM_TAG_LEN);
	}
}

static int kmip_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		     const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		     struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_kmip *k = priv;
	_cleanup_secret_ struct lc_secret inner = { 0 };
	struct lc_kmip_result res;
	struct lc_kmip_ref ref;
	struct enc_args a = { .uid = ref.uid, .aad = context };
	struct session s;
	uint8_t iv[16], digest[32];
	int r;

	blob->p = NULL;
	blob->len = 0;
	if ((r = lc_kmip_parse_ref(key_ref, &ref, err)) < 0)
		return r;
	if (!pt->len || pt->len > LC_KMIP_MAX_PLAINTEXT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "KMIP wrap: %zu bytes of plaintext, expected 1..%d", pt->len,
			      LC_KMIP_MAX_PLAINTEXT);
	SHA256((const uint8_t *)context, strlen(context), digest);
	r = session_open(k, timeout_ms, &s, err);
	if (r < 0)
		return r;
	a.mode = s.minor >= 4 ? LC_KMIP_MODE_GCM : LC_KMIP_MODE_CBC_BOUND;
	a.iv_len = a.mode == LC_KMIP_MODE_GCM ? GCM_IV_LEN : CBC_IV_LEN;
	a.iv = iv;
	r = lc_rand_bytes(iv, a.iv_len, false, "a KMIP IV", err);
	if (r < 0)
		goto out;
	if (a.mode == LC_KMIP_MODE_GCM) {
		a.data = pt->p;
		a.data_len = pt->len;
	} else {
		r = lc_secret_alloc(&inner, pt->len + 32);
		if (r < 0) {
			r = lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
			goto out;
		}
		memcpy(inner.p, pt->p, pt->len);
		if (bind_digest(context, pt->p, pt->len, inner.p + pt->len) < 0) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "SHA-256 failed");
			goto out;
		}
		a.data = inner.p;
		a.data_len = inner.len;
	}
	r = call(&s.c, s.minor, LC_KMIP_OP_ENCRYPT, build_crypt, &a, &s.req, &s.resp, &res, reply,
		 err);
	r = server_check(k, &s.c, &ref, &res, r, false, err);
	if (r < 0)
		goto out;
	if ((r = check_answered_uid(ref.uid, &res, err)) < 0)
		goto out;
	if (res.iv && (res.iv_len != a.iv_len))
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "KMIP Encrypt reply: an IV of %zu bytes, expected %zu", res.iv_len, a.iv_len);
	else if (a.mode == LC_KMIP_MODE_GCM && (!res.tag || res.tag_len != GCM_TAG_LEN))
		r = lc_err(err, -EBADMSG, LC_ERRC_MISCONFIG,
			   "KMIP Encrypt (AES-GCM) reply without a %d-byte Authenticated Encryption Tag: set [kmip] max_version = 1.2 for this server",
			   GCM_TAG_LEN);
	else if (a.mode == LC_KMIP_MODE_GCM && res.data_len != pt->len)
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "KMIP Encrypt (AES-GCM) reply: %zu bytes of ciphertext for %zu of plaintext",
			   res.data_len, pt->len);
	else
		r = blob_build((uint8_t)a.mode, digest, res.iv ? res.iv : iv, a.iv_len,
			       a.mode == LC_KMIP_MODE_GCM ? res.tag : NULL,
			       a.mode == LC_KMIP_MODE_GCM ? GCM_TAG_LEN : 0, res.data, res.data_len,
			       blob, err);
out:
	session_close(&s);
	return r;
}

/* ---- unwrap ---------------------------------------------------------------- */

static int kmip_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
		       const char *context, uint64_t timeout_ms, struct lc_secret *pt,
		       struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_kmip *k = priv;
	struct lc_kmip_result res;
	struct lc_kmip_blob b;
	struct lc_kmip_ref ref;
	struct enc_args a = { .uid = ref.uid, .aad = context };
	struct session s;
	uint8_t digest[32];
	size_t n;
	int r;

	pt->p = NULL;
	pt->len = 0;
	if ((r = lc_kmip_parse_ref(key_ref, &ref, err)) < 0)
		return r;
	r = lc_kmip_blob_parse(blob->p, blob->len, &b, err);
	if (r < 0)
		return r;
	SHA256((const uint8_t *)context, strlen(context), digest);
	if (CRYPTO_memcmp(digest, b.ctx_digest, 32))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "the encryption context did not match: this KMIP blob was wrapped for another volume, workspace, project or key configuration");
	r = session_open(k, timeout_ms, &s, err);
	if (r < 0)
		return r;
	if (b.mode == LC_KMIP_MODE_GCM && s.minor < 4) {
		r = lc_err(err, -EPROTONOSUPPORT, LC_ERRC_MISCONFIG,
			   "this blob was wrapped with AES-GCM under KMIP 1.4, but the server %s:%s now speaks only 1.%u (or max_version says so)",
			   k->host, k->port, s.minor);
		goto out;
	}
	a.mode = b.mode;
	a.data = b.ct;
	a.data_len = b.ct_len;
	a.iv = b.iv;
	a.iv_len = b.iv_len;
	a.tag = b.mode == LC_KMIP_MODE_GCM ? b.tag : NULL;
	r = call(&s.c, s.minor, LC_KMIP_OP_DECRYPT, build_crypt, &a, &s.req, &s.resp, &res, reply,
		 err);
	r = server_check(k, &s.c, &ref, &res, r, false, err);
	if (r < 0)
		goto out;
	if ((r = check_answered_uid(ref.uid, &res, err)) < 0)
		goto out;
	n = res.data_len;
	if (b.mode == LC_KMIP_MODE_CBC_BOUND) {
		uint8_t want[32];

		if (n <= 32 || n - 32 > LC_KMIP_MAX_PLAINTEXT ||
		    bind_digest(context, res.data, n - 32, want) < 0 ||
		    CRYPTO_memcmp(want, res.data + n - 32, 32)) {
			lc_wipe(want, sizeof(want));
			r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				   "the KMIP blob does not check after Decrypt: corrupt, or bound to another context");
			goto out;
		}
		n -= 32;
	} else if (n != b.ct_len) {
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "KMIP Decrypt (AES-GCM) reply: %zu bytes of plaintext for %zu of ciphertext",
			   n, b.ct_len);
		goto out;
	}
	r = lc_secret_alloc(pt, n);
	if (r < 0) {
		r = lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	memcpy(pt->p, res.data, n);
out:
	session_close(&s);	/* wipes the reply, which held the plaintext */
	return r;
}

/* ---- key state --------------------------------------------------------------- */

bool lc_kmip_deactivated_by_server(const struct lc_kmip_result *res)
{
	return res->deactivation_date > 0 && res->time_stamp > 0 &&
	       res->deactivation_date <= res->time_stamp;
}

static void build_get_attrs(struct lc_ttlv_enc *e, const void *arg)
{
	lc_ttlv_text(e, T_UNIQUE_IDENTIFIER, arg);
	lc_ttlv_text(e, T_ATTRIBUTE_NAME, "State");
	lc_ttlv_text(e, T_ATTRIBUTE_NAME, "Deactivation Date");
	lc_ttlv_text(e, T_ATTRIBUTE_NAME, "Destroy Date");
}

static int kmip_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
			  struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_kmip *k = priv;
	struct lc_provider_reply local;
	struct lc_kmip_result res;
	struct lc_kmip_ref ref;
	struct session s;
	int r;

	if (!reply)
		reply = memset(&local, 0, sizeof(local));
	if ((r = lc_kmip_parse_ref(key_ref, &ref, err)) < 0)
		return r;
	r = session_open(k, timeout_ms, &s, err);
	if (r < 0)
		return r;
	r = call(&s.c, s.minor, LC_KMIP_OP_GET_ATTRIBUTES, build_get_attrs, ref.uid, &s.req, &s.resp,
		 &res, reply, err);
	if (r < 0) {
		/* Only a failed operation's reason counts: a reason attached to
		 * another status is junk, never a denial. */
		if (res.status == STATUS_FAILED && res.reason == R_ITEM_NOT_FOUND) {
			reply->state = LC_KEY_DESTROYED;
			lc_err(err, -ENOKEY, LC_ERRC_DENIED,
			       "KMIP server %s:%s has no key \"%.64s\" (Item Not Found): destroyed, or never created",
			       k->host, k->port, ref.uid);
		}
		r = server_check(k, &s.c, &ref, &res, r, false, err);
		if (r < 0 && err->cls != LC_ERRC_DENIED)
			reply->state = LC_KEY_UNKNOWN;
		goto out;
	}
	if ((r = check_answered_uid(ref.uid, &res, err)) < 0)
		goto out;
	if (!res.has_state) {
		r = lc_err(err, -EBADMSG, LC_ERRC_MISCONFIG,
			   "KMIP GetAttributes reply for \"%.64s\" has no State: is it a managed cryptographic object?",
			   key_ref);
		goto out;
	}
	switch (res.state) {
	case ST_ACTIVE:
		/* The Deactivation Date against the server's own clock (the
		 * reply's Time Stamp), never the host's: see kms-kmip.h. */
		reply->state = LC_KEY_ENABLED;
		if (lc_kmip_deactivated_by_server(&res))
			reply->state = LC_KEY_DISABLED;
		break;
	case ST_PRE_ACTIVE:
	case ST_DEACTIVATED:
	case ST_COMPROMISED:
		reply->state = LC_KEY_DISABLED;
		break;
	case ST_DESTROYED:
	case ST_DESTROYED_COMPROMISED:
		reply->state = LC_KEY_DESTROYED;
		break;
	default:
		r = lc_err(err, -EBADMSG, LC_ERRC_MISCONFIG,
			   "KMIP key \"%.64s\" is in state %u, which lakecrypt does not know", key_ref,
			   res.state);
		goto out;
	}
	reply->deletion_date = res.destroy_date;
	r = server_check(k, &s.c, &ref, &res, 0, reply->state != LC_KEY_ENABLED, err);
	if (r < 0) {
		reply->state = LC_KEY_UNKNOWN;
		reply->deletion_date = 0;
		goto out;
	}
	/* Bind an unbound reference to this server (keyconfig create). */
	reply->bound_ref[0] = '\0';
	if (!ref.bound && s.c.have_server_id) {
		char id[65];

		hex32(s.c.server_id, id);
		snprintf(reply->bound_ref, sizeof(reply->bound_ref), LC_KMIP_BOUND_PREFIX "%s;uid=%s",
			 id, ref.uid);
	}
out:
	session_close(&s);
	return r;
}

/* The principal: the client certificate's subject and issuer, read from
 * the TLS context every connection uses (kms-kmip.h, kms-kmip-ident.c). */
static int kmip_identity(void *priv, const char *key_ref, uint64_t timeout_ms, char principal[],
			 size_t size, struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_kmip *k = priv;

	(void)key_ref, (void)timeout_ms, (void)reply;
	return lc_kmip_cert_principal(SSL_CTX_get0_certificate(k->ctx), principal, size, err);
}

static void kmip_destroy(void *priv)
{
	lc_kms_kmip_free(priv);
}

const struct lc_provider_ops lc_kms_kmip_ops = {
	.name		= LC_KMS_KMIP_NAME,
	.wrap		= kmip_wrap,
	.unwrap		= kmip_unwrap,
	.key_state	= kmip_key_state,
	.destroy	= kmip_destroy,
	.identity	= kmip_identity,	/* identity_match NULL: exact */
};

void lc_kms_kmip_provider_init(struct lc_provider *p, struct lc_kms_kmip *k)
{
	lc_provider_init(p, &lc_kms_kmip_ops, k);
}
