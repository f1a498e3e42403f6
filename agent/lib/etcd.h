/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An etcd v3 client on etcd's HTTP/JSON gateway (grpc-gateway), for the
 * fleet registry of issue 13 (Documentation/etcd.md).  libcurl over OpenSSL
 * with mutual TLS, json-c; no C client of etcd v3 is packaged in Debian 12
 * (only Go sources, and Python's python3-etcd3 / python3-etcd3gw).
 *
 * Source of the protocol: etcd's api/etcdserverpb/rpc.proto and
 * api/mvccpb/kv.proto (message and field names below are theirs), served
 * as JSON by the gateway of etcd 3.4 (Debian 12: etcd-server 3.4.23) under
 * /v3/: POST /v3/kv/range, /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn,
 * /v3/kv/compaction, /v3/lease/grant, /v3/lease/revoke,
 * /v3/lease/keepalive and /v3/watch (the last two are gRPC streams: the
 * gateway answers with one JSON object per line, each wrapped as
 * {"result":{...}} or {"error":{...}}).  The gateway's JSON is protobuf's
 * canonical mapping: bytes are standard base64 (RFC 4648 section 4),
 * int64/uint64 are decimal strings, and fields at their zero value (false,
 * 0, "", enum 0 such as Event.type PUT) are left out.
 *
 * Transport: its own libcurl easy handles, not lc_http_request(), because
 * this client needs a client certificate, streamed bodies (watch) and to
 * know whether a failed request ever left (see failover).  HTTP/1.1, TLS
 * 1.2 or later, peer and host verification always on against the
 * configured CA, no redirects, no proxy.
 *
 * Failover: the endpoints are the cluster's members, tried in turn from
 * the one that last answered.  A request moves on to the next member on a
 * connection error, a TLS handshake failure, a timeout, an HTTP 5xx/429 or
 * gRPC Unavailable; but a write (put, delete, txn, lease grant/revoke)
 * moves on only when it surely never reached the member (connecting or
 * the TLS handshake failed): a write that timed out after it was sent may
 * have been applied, and is reported (TRANSIENT, -ETIMEDOUT, "outcome
 * unknown") for the caller to re-read rather than applied twice.
 *
 * Every reply is hostile until parsed: at most max_response bytes;
 * lc_json_parse() (duplicate or escaped member names refused, depth
 * bounded, one object, no trailing bytes); every known field type-checked
 * (int64 as a decimal string in [0, INT64_MAX]), keys and values at most
 * LC_ETCD_MAX_KEY / LC_ETCD_MAX_VALUE bytes after base64 decoding.
 * Unknown fields are ignored (newer etcd versions add some).
 *
 * Error classes (lc-error.h): transport failures, timeouts, HTTP 5xx,
 * gRPC Unavailable/DeadlineExceeded/ResourceExhausted/Aborted/Unknown/
 * Internal -> TRANSIENT; a malformed reply -> TRANSIENT too (-EBADMSG:
 * the next member may answer well; nothing is applied from it); gRPC
 * PermissionDenied/Unauthenticated, a member refusing our client
 * certificate (its TLS alert; when TLS 1.3's reset swallowed it, one TLS
 * 1.2 handshake sending nothing tells), and an unreadable certificate,
 * key or CA -> MISCONFIG
 * (-EACCES, -EINVAL): never DENIED, which is the KMS's
 * authoritative word and pulls the kill switch; gRPC InvalidArgument,
 * FailedPrecondition, OutOfRange -> INVALID (-EINVAL), except a revision
 * that has been compacted: -ERANGE (INVALID) so the caller re-reads;
 * NotFound (a lease) -> -ENOENT (INVALID); a lost compare-and-swap is not
 * an error: the transaction's result says so.
 */
#ifndef LC_ETCD_H
#define LC_ETCD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "lc-error.h"

#define LC_ETCD_MAX_ENDPOINTS		16
#define LC_ETCD_MAX_KEY			4096		/* bytes, decoded */
#define LC_ETCD_MAX_VALUE		(1024 * 1024)	/* bytes, decoded (etcd's default request limit is 1.5 MiB) */
#define LC_ETCD_MAX_KVS			10000		/* kvs in one range reply */
#define LC_ETCD_MAX_RANGE_ALL		1000000		/* kvs in a paged read (lc_etcd_range_prefix_all) */
#define LC_ETCD_MAX_RANGE_ALL_BYTES	(256 << 20)	/* keys and values in a paged read */
#define LC_ETCD_MAX_EVENTS		10000		/* events in one watch message */
#define LC_ETCD_DEFAULT_MAX_RESPONSE	(8 * 1024 * 1024)	/* bytes of one reply or one watch message */
#define LC_ETCD_DEFAULT_CONNECT_MS	2000
#define LC_ETCD_DEFAULT_TIMEOUT_MS	5000

struct lc_etcd_opts {
	const char *const *endpoints;	/* "https://host:port" (no path), 1..LC_ETCD_MAX_ENDPOINTS */
	size_t n_endpoints;
	const char *ca_file;		/* PEM: the CA that signed the members' certificates (required) */
	const char *cert_file;		/* PEM client certificate (etcd --client-cert-auth); NULL: none */
	const char *key_file;		/* PEM private key of cert_file */
	uint64_t connect_timeout_ms;	/* TCP + TLS, per member; 0: LC_ETCD_DEFAULT_CONNECT_MS */
	uint64_t timeout_ms;		/* a whole unary request, per member; 0: LC_ETCD_DEFAULT_TIMEOUT_MS */
	size_t max_response;		/* bytes; 0: LC_ETCD_DEFAULT_MAX_RESPONSE */
};

struct lc_etcd;

/* 0; -EINVAL (MISCONFIG: no or too many endpoints, an endpoint not
 * https://host[:port], an unreadable CA, certificate or key file, a
 * certificate without its key); -ENOMEM (INTERNAL). */
int lc_etcd_new(struct lc_etcd **e, const struct lc_etcd_opts *opts, struct lc_error *err);
void lc_etcd_free(struct lc_etcd *e);
/* Index of the member that answered last (for status and tests). */
size_t lc_etcd_current(const struct lc_etcd *e);

/* mvccpb.KeyValue: key and value are decoded bytes (NUL-terminated for
 * convenience; the length is what counts), malloc'ed.  Registry values
 * are no secrets (no plaintext key is ever stored in etcd). */
struct lc_etcd_kv {
	uint8_t *key;
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	int64_t create_revision;	/* revision of the key's creation; 0 in a DELETE event */
	int64_t mod_revision;		/* revision of its last change */
	int64_t version;		/* changes since creation; 0: deleted */
	int64_t lease;			/* lease ID, 0: none */
};
void lc_etcd_kv_free(struct lc_etcd_kv *kv);

/* RangeResponse: header.revision, kvs, more, count. */
struct lc_etcd_range_result {
	int64_t revision;		/* the store's revision the read saw */
	struct lc_etcd_kv *kvs;
	size_t n;
	int64_t count;			/* keys in the range (may exceed n with a limit) */
	bool more;
};
void lc_etcd_range_result_free(struct lc_etcd_range_result *r);

/* The range end that makes @key a prefix (rpc.proto RangeRequest.range_end:
 * the key with its last byte below 0xff incremented, trailing 0xff bytes
 * dropped; "\0" for an empty or all-0xff key, meaning "every key").
 * @out holds @key_len bytes (1 for an empty key); returns its length. */
size_t lc_etcd_prefix_end(const uint8_t *key, size_t key_len, uint8_t *out);

/*
 * RangeRequest: the key @key (@prefix false) or every key starting with
 * it (@prefix true), at @revision (0: the newest), at most @limit kvs
 * (0: LC_ETCD_MAX_KVS), in key order, serializable=false (linearizable:
 * a member cut off from the quorum answers Unavailable and the next one
 * is tried).  Idempotent: fails over on any transient failure.
 * 0 and @res filled (free with lc_etcd_range_result_free); -ERANGE
 * (revision compacted), else the errors above.
 */
int lc_etcd_range(struct lc_etcd *e, const void *key, size_t key_len, bool prefix,
		  int64_t revision, size_t limit, struct lc_etcd_range_result *res,
		  struct lc_error *err);

/*
 * Every key starting with @prefix, read in pages of @page kvs (0:
 * LC_ETCD_MAX_KVS), each page from the key after the last one read, all
 * at the first page's revision (one snapshot of the store), at most
 * @max_kvs kvs in all (0: LC_ETCD_MAX_RANGE_ALL) and
 * LC_ETCD_MAX_RANGE_ALL_BYTES of keys and values.  0 and @res filled
 * (res->more false, res->count = res->n); -E2BIG beyond either; -ERANGE
 * if the first page's revision was compacted meanwhile (read again);
 * -EBADMSG for a page that disagrees (another revision, "more" with no
 * kv); else lc_etcd_range()'s errors.
 */
int lc_etcd_range_prefix_all(struct lc_etcd *e, const void *prefix, size_t prefix_len, size_t page,
			     size_t max_kvs, struct lc_etcd_range_result *res, struct lc_error *err);

/* PutRequest: @value (@value_len bytes, at most LC_ETCD_MAX_VALUE) under
 * @key, attached to lease @lease (0: none).  @revision (may be NULL): the
 * revision of the put.  A write: see failover. */
int lc_etcd_put(struct lc_etcd *e, const void *key, size_t key_len, const void *value,
		size_t value_len, int64_t lease, int64_t *revision, struct lc_error *err);

/* DeleteRangeRequest: @key or (@prefix) every key under it.  @deleted,
 * @revision: may be NULL.  A write. */
int lc_etcd_delete(struct lc_etcd *e, const void *key, size_t key_len, bool prefix,
		   int64_t *deleted, int64_t *revision, struct lc_error *err);

/* Compare (rpc.proto): target VERSION, CREATE (create_revision), MOD
 * (mod_revision); a key that does not exist has all three at 0. */
enum lc_etcd_cmp_target { LC_ETCD_CMP_VERSION, LC_ETCD_CMP_CREATE, LC_ETCD_CMP_MOD };
enum lc_etcd_cmp_result { LC_ETCD_EQUAL, LC_ETCD_GREATER, LC_ETCD_LESS, LC_ETCD_NOT_EQUAL };
struct lc_etcd_cmp {
	const void *key;
	size_t key_len;
	enum lc_etcd_cmp_target target;
	enum lc_etcd_cmp_result result;
	int64_t value;			/* >= 0 */
	bool prefix;			/* every key under @key (Compare.range_end, etcd >= 3.3):
					 * holds when it holds for each existing key */
};
/* RequestOp: a put or a delete of one key (or prefix). */
enum lc_etcd_op_type { LC_ETCD_OP_PUT, LC_ETCD_OP_DELETE };
struct lc_etcd_op {
	enum lc_etcd_op_type type;
	const void *key;
	size_t key_len;
	const void *value;		/* PUT */
	size_t value_len;
	int64_t lease;			/* PUT; 0: none */
	bool prefix;			/* DELETE */
};
#define LC_ETCD_MAX_TXN_OPS	64	/* etcd's default --max-txn-ops is 128 */

/*
 * TxnRequest: if every compare holds, the @success ops, else the
 * @failure ops, atomically.  @succeeded: which branch ran (TxnResponse
 * .succeeded); @revision (may be NULL): the store's revision after it.
 * At most LC_ETCD_MAX_TXN_OPS compares and ops per branch.  A write.
 */
int lc_etcd_txn(struct lc_etcd *e, const struct lc_etcd_cmp *cmp, size_t ncmp,
		const struct lc_etcd_op *success, size_t nsuccess,
		const struct lc_etcd_op *failure, size_t nfailure,
		bool *succeeded, int64_t *revision, struct lc_error *err);

/*
 * Compare-and-swap: put @value under @key only if its mod_revision is
 * still @expect_mod (0: only if the key does not exist).  0 and
 * *@revision the new mod_revision; -ECANCELED (class NONE in @err: no
 * failure, someone else wrote first) if the key changed: re-read and
 * decide again; else the errors of lc_etcd_txn().
 */
int lc_etcd_cas(struct lc_etcd *e, const void *key, size_t key_len, int64_t expect_mod,
		const void *value, size_t value_len, int64_t lease, int64_t *revision,
		struct lc_error *err);

/* LeaseGrantRequest: a lease of @ttl_s seconds (1..9000000000; etcd
 * raises it to its minimum, about 1.5 x the election timeout).  @id and
 * @granted_ttl_s (may be NULL) from LeaseGrantResponse.  A write. */
int lc_etcd_lease_grant(struct lc_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted_ttl_s,
			struct lc_error *err);
/* LeaseKeepAliveRequest, one round on the /v3/lease/keepalive stream:
 * @ttl_s the lease's renewed TTL.  -ENOENT (INVALID) if the lease has
 * expired or was revoked (TTL 0 in the answer).  Idempotent. */
int lc_etcd_lease_keepalive(struct lc_etcd *e, int64_t id, int64_t *ttl_s, struct lc_error *err);
/* LeaseRevokeRequest: the lease and every key attached to it go.
 * -ENOENT if there is no such lease.  A write. */
int lc_etcd_lease_revoke(struct lc_etcd *e, int64_t id, struct lc_error *err);
/* CompactionRequest up to @revision (physical=false).  For tests and
 * operators; a write. */
int lc_etcd_compact(struct lc_etcd *e, int64_t revision, struct lc_error *err);

/* ---- watch ---------------------------------------------------------- */

enum lc_etcd_event_type { LC_ETCD_EV_PUT, LC_ETCD_EV_DELETE };
struct lc_etcd_event {
	enum lc_etcd_event_type type;
	struct lc_etcd_kv kv;		/* for a DELETE: key and mod_revision only */
};

/* One WatchResponse, classified. */
enum lc_etcd_watch_kind {
	LC_ETCD_W_CREATED,	/* the watch is set up (created=true; with canceled=true: CANCELED) */
	LC_ETCD_W_EVENTS,	/* one or more events, in revision order */
	LC_ETCD_W_PROGRESS,	/* no event: every change up to revision was sent */
	LC_ETCD_W_COMPACTED,	/* canceled: start revision below compact_revision: re-read all */
	LC_ETCD_W_CANCELED,	/* canceled for another reason (reason) */
};
struct lc_etcd_watch_msg {
	enum lc_etcd_watch_kind kind;
	int64_t revision;		/* header.revision (0 if absent, as on a cancel) */
	int64_t watch_id;
	int64_t compact_revision;	/* COMPACTED: the oldest revision still kept */
	const struct lc_etcd_event *events;
	size_t nevents;
	char reason[128];		/* CANCELED: cancel_reason, printable ASCII */
};

/* Return 0 to go on, non-zero to stop the watch (lc_etcd_watch_feed then
 * returns 1). */
typedef int (*lc_etcd_watch_cb)(void *arg, const struct lc_etcd_watch_msg *m);

/*
 * The watch-stream parser: bytes of the /v3/watch response body in, as
 * they come (any split), WatchResponse messages out through the callback.
 * The gateway writes one JSON object per line ("\n"; a "\r" before it is
 * tolerated; blank lines are skipped): {"result": WatchResponse} or
 * {"error": {"grpc_code", "message", ...}} (grpc-gateway v1's stream
 * error).  A line is at most max_msg bytes.  It checks what the caller
 * relies on: the first message is created=true; events carry a key and
 * a mod_revision >= the start revision; revisions never go back (events'
 * mod_revisions are non-decreasing within and across messages, and a
 * progress notification is not below the last event); a message with
 * events and created/canceled together is refused.  After a COMPACTED or
 * CANCELED message, or an error, it takes nothing more.
 */
struct lc_etcd_watch_parser {
	char *line;
	size_t len, cap, max_msg;
	int64_t start_revision;		/* > 0, or 0: "from now" */
	int64_t last_revision;		/* highest revision whose events were all delivered */
	bool created, done;
	enum lc_etcd_watch_kind end_kind;	/* when done: COMPACTED, CANCELED, or CREATED for "stopped by the callback" */
	int64_t compact_revision;
	char reason[128];
	lc_etcd_watch_cb cb;
	void *arg;
};
void lc_etcd_watch_parser_init(struct lc_etcd_watch_parser *p, int64_t start_revision,
			       size_t max_msg, lc_etcd_watch_cb cb, void *arg);
/* 0: more wanted; 1: the callback asked to stop, or a COMPACTED/CANCELED
 * message ended the watch (delivered first); <0: a malformed or hostile
 * stream (-EBADMSG, -E2BIG for a line over max_msg or too many events,
 * TRANSIENT), a gateway error message (-EIO TRANSIENT, or as its gRPC
 * code), -ENOMEM. */
int lc_etcd_watch_feed(struct lc_etcd_watch_parser *p, const char *data, size_t len,
		       struct lc_error *err);
/* The revision to resume from after the stream ends: last_revision + 1
 * (or the start revision if nothing came). */
int64_t lc_etcd_watch_next_revision(const struct lc_etcd_watch_parser *p);
void lc_etcd_watch_parser_free(struct lc_etcd_watch_parser *p);

/*
 * Watch @key (or, @prefix, every key under it) from @start_revision (0:
 * from now; events from there on, deletes included: prev_kv not asked),
 * with progress notifications (WatchCreateRequest.progress_notify: at
 * the server's --experimental-watch-progress-notify-interval, 10 min by
 * default).  Blocks, calling @cb per message, until:
 *   - @cb returns non-zero or *@stop becomes true (checked about once a
 *     second; may be NULL): 0;
 *   - a COMPACTED message (delivered to @cb first): -ERANGE (INVALID);
 *     the caller re-reads everything (range at the newest revision) and
 *     watches again from that revision + 1;
 *   - another cancel or a gateway error in the stream: -ECANCELED /
 *     -EIO with its class;
 *   - no byte for @idle_timeout_ms (0: none; give more than the server's
 *     progress interval), the stream breaking or ending, or no member
 *     reachable: TRANSIENT (-ETIMEDOUT, -EPIPE, -ECONNREFUSED...).
 * Connecting fails over to the next member; the stream itself is not
 * resumed here.  *@next_revision (may be NULL) is always set: the revision
 * to watch from next time (no event lost, none twice).
 */
int lc_etcd_watch(struct lc_etcd *e, const void *key, size_t key_len, bool prefix,
		  int64_t start_revision, uint64_t idle_timeout_ms, const atomic_bool *stop,
		  lc_etcd_watch_cb cb, void *arg, int64_t *next_revision, struct lc_error *err);

/* Strict readers of the gateway's JSON, exposed for tests and fuzzing:
 * an int64 field is a string of 1..19 decimal digits in [0, INT64_MAX]
 * (absent: 0).  0, or -EBADMSG. */
int lc_etcd_json_int64(json_object *obj, const char *name, int64_t *out);

#endif /* LC_ETCD_H */
