// SPDX-License-Identifier: GPL-2.0
/*
 * The revocation probe of one CMK and what its answers amount to.
 *
 * A probe is a key_state call (the fast path) and, when the key says it is
 * enabled, a real unwrap of the key configuration's canary: a state call
 * alone misses a denial by key policy or grant (AWS: DescribeKey says
 * Enabled while Decrypt is AccessDenied).  The canary is 32 random bytes
 * wrapped under the CMK with context "lakecrypt:v2;canary;keyconfig=<k>"
 * at keyconfig.create, or at the first probe of a configuration that has
 * none; it lives in the registry (no volume header, no volume key is
 * touched), its plaintext is compared with the stored SHA-256 and wiped at
 * once.
 *
 * Each answer is an observation (OK, DENIED, UNKNOWN) for an lc_revconf
 * tracker: the key state's for the CMK's own (its REVOKE revokes every
 * volume under the CMK), the canary's for the key configuration's (its
 * REVOKE revokes only that configuration's volumes: AWS key policies
 * grant each configuration's context on its own).  The watcher's probes,
 * `check`, and the probes an open's denial triggers feed them, spaced by
 * agent_min_gap_ms() (a denial closer to the last counted one is shown,
 * not counted); an open's success is an OK, its denial never counts by
 * itself (the header chose the blob and the key version).  Only REVOKE
 * (confirmed denials) or FAIL_CLOSED (the operator's outage limit) pulls
 * the kill switch.
 * KMS calls are counted per CMK and shown in status and check.
 *
 * Locking: a->lock guards a->watches; the KMS calls run without it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "agent.h"
#include "http.h"
#include "revconf.h"

struct cmk_watch {
	char provider[LC_HDR_PROVIDER_SIZE];
	char key_ref[LC_HDR_PROVIDER_REF_SIZE];
	char cmk_id[LC_HDR_CMK_ID_SIZE];
	char keyconfig[LC_HDR_NAME_SIZE];	/* "": the key itself (its state) */
	struct lc_revconf rc;
	uint64_t probes;		/* watcher and check probes */
	uint64_t state_calls;		/* KMS calls made for them (attempts) */
	uint64_t canary_calls;		/* canary unwraps (attempts) */
	uint64_t canary_wraps;		/* canaries made lazily (attempts) */
	uint64_t opens_ok, opens_denied; /* what opens saw */
	uint64_t triggered;		/* probes an open's denial triggered */
	uint64_t trigger_skipped;	/* ... and denials that came too soon after one */
	uint64_t trigger_ns;		/* when the last one started (a->clock) */
	enum lc_probe_outcome last;
	enum lc_revconf_verdict verdict;
	char last_detail[256];
	int64_t last_at;		/* epoch seconds of the last observation */
};

static uint64_t clock_ns(const struct agent *a)
{
	struct timespec ts;

	if (a->clock)
		return a->clock->now_ns(a->clock->arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t agent_min_gap_ms(const struct agent *a)
{
	return lc_revconf_min_gap_ms(a->cfg.watch_interval_s, a->cfg.confirm_denials,
				     a->cfg.confirm_window_s);
}

static void policy_of(const struct agent *a, struct lc_revconf_policy *p)
{
	p->confirm_denials = a->cfg.confirm_denials;
	p->confirm_window_ms = (uint64_t)a->cfg.confirm_window_s * 1000;
	p->fail_closed_after_ms = (uint64_t)a->cfg.fail_closed_after_s * 1000;
	p->min_gap_ms = agent_min_gap_ms(a);
}

/* The tracker of CMK @key_ref (@kc NULL or "": the key's own, else key
 * configuration @kc's on it). */
static struct cmk_watch *watch_of(struct agent *a, const char *provider, const char *key_ref,
				  const char *cmk_id, const char *kc, bool create)
{
	struct cmk_watch **t, *w;

	if (!kc)
		kc = "";
	for (size_t i = 0; i < a->nwatches; i++) {
		w = a->watches[i];
		if (!strcmp(w->provider, provider) && !strcmp(w->key_ref, key_ref) &&
		    !strcmp(w->keyconfig, kc))
			return w;
	}
	if (!create)
		return NULL;
	w = calloc(1, sizeof(*w));
	t = w ? realloc(a->watches, (a->nwatches + 1) * sizeof(*t)) : NULL;
	if (!t) {
		free(w);
		return NULL;
	}
	a->watches = t;
	snprintf(w->provider, sizeof(w->provider), "%s", provider);
	snprintf(w->key_ref, sizeof(w->key_ref), "%s", key_ref);
	snprintf(w->cmk_id, sizeof(w->cmk_id), "%s", cmk_id ? cmk_id : "");
	snprintf(w->keyconfig, sizeof(w->keyconfig), "%s", kc);
	lc_revconf_reset(&w->rc);
	a->watches[a->nwatches++] = w;
	return w;
}

/* A clock stopped at *(uint64_t *)@arg: a probe's observation is dated
 * when the probe began, so that the time its rechecks take (they are
 * spaced, LC_PROBE_RECHECK_MS) does not stretch the span the watcher's
 * denials cover (its intervals run from one probe's start to the next). */
static uint64_t at_ns(void *arg)
{
	return *(const uint64_t *)arg;
}

/*
 * Record @o, made at @when_ns (a->clock), for the CMK (@kc "" or NULL:
 * the key's own tracker, whose confirmed denial revokes every volume
 * under the CMK; else key configuration @kc's, which revokes only its
 * volumes) and act on the verdict (a->lock held; may drop it).
 */
static enum lc_revconf_verdict observe(struct agent *a, const char *provider, const char *key_ref,
				       const char *cmk_id, const char *kc, enum lc_probe_outcome o,
				       const char *detail, uint64_t when_ns)
{
	const struct lc_clock at = { at_ns, NULL, &when_ns };
	struct cmk_watch *w = watch_of(a, provider, key_ref, cmk_id, kc, true);
	struct lc_revconf_policy pol;
	enum lc_revconf_verdict v;
	struct lc_audit_event ev;
	char cause[640], det[200], ref[LC_HDR_PROVIDER_REF_SIZE], id[LC_HDR_CMK_ID_SIZE];
	char prov[LC_HDR_PROVIDER_SIZE], kcn[LC_HDR_NAME_SIZE], what[LC_HDR_NAME_SIZE + 40];
	struct lc_error e2;
	uint64_t before;

	if (!w) {
		lc_error_log("CMK %s: out of memory: an observation (%s) is lost", key_ref,
			     lc_probe_outcome_name(o));
		return LC_VERDICT_KEEP;
	}
	snprintf(kcn, sizeof(kcn), "%s", w->keyconfig);
	if (kcn[0])
		snprintf(what, sizeof(what), "key configuration %s's canary", kcn);
	else
		snprintf(what, sizeof(what), "the key");
	policy_of(a, &pol);
	/* A revoked CMK that works again (re-enabled, an open succeeded)
	 * starts over. */
	if (w->rc.spent && o == LC_PROBE_OK) {
		lc_revconf_reset(&w->rc);
		w->verdict = LC_VERDICT_KEEP;
	}
	before = w->rc.uncounted;
	v = lc_revconf_observe(&w->rc, &pol, o, &at);
	w->last = o;
	w->last_at = (int64_t)time(NULL);
	snprintf(w->last_detail, sizeof(w->last_detail), "%s", detail ? detail : "");
	if (w->verdict == v && (v == LC_VERDICT_REVOKE || v == LC_VERDICT_FAIL_CLOSED))
		return v;	/* acted on already */
	w->verdict = v;
	if (v == LC_VERDICT_PENDING && o == LC_PROBE_DENIED && w->rc.uncounted != before)
		lc_warn("CMK %s (%s): a denial %" PRIu64 " ms after the last counted one is not counted: denials that confirm are at least %" PRIu64 " ms apart (%s)",
			key_ref, what, (when_ns - w->rc.denials_ns[w->rc.ndenials - 1]) / 1000000,
			pol.min_gap_ms, detail ? detail : "");
	else if (v == LC_VERDICT_PENDING && o == LC_PROBE_DENIED)
		lc_warn("CMK %s (%s): denial %u of the %u that confirm a revocation (%s); not revoking yet",
			key_ref, what, w->rc.ndenials, pol.confirm_denials, detail ? detail : "");
	if (v != LC_VERDICT_REVOKE && v != LC_VERDICT_FAIL_CLOSED)
		return v;
	if (v == LC_VERDICT_REVOKE)
		snprintf(cause, sizeof(cause),
			 "KMS denied CMK %.200s (%.100s) %u time(s) within %u s (confirmed): %.200s",
			 key_ref, what, w->rc.ndenials, a->cfg.confirm_window_s, detail ? detail : "");
	else
		snprintf(cause, sizeof(cause),
			 "no answer from the KMS about CMK %.200s (%.100s) for %u s: fail_closed_after_s reached",
			 key_ref, what, a->cfg.fail_closed_after_s);
	snprintf(det, sizeof(det), "%s: denials=%u confirm_denials=%u confirm_window_s=%u fail_closed_after_s=%u",
		 lc_revconf_verdict_name(v), w->rc.ndenials, pol.confirm_denials,
		 a->cfg.confirm_window_s, a->cfg.fail_closed_after_s);
	snprintf(ref, sizeof(ref), "%s", key_ref);
	snprintf(id, sizeof(id), "%s", cmk_id ? cmk_id : "");
	snprintf(prov, sizeof(prov), "%s", provider);
	if (kcn[0])
		lc_warn("watcher: %s: revoking the volumes of key configuration %s", cause, kcn);
	else
		lc_warn("watcher: %s: revoking every volume under it", cause);
	lc_audit_event_init(&ev, "cmk.revocation", LC_AUDIT_SUCCESS);
	ev.provider = prov;
	ev.cmk_id = id[0] ? id : ref;
	ev.keyconfig = kcn[0] ? kcn : NULL;
	ev.error_class = v == LC_VERDICT_REVOKE ? LC_ERRC_DENIED : LC_ERRC_TRANSIENT;
	ev.detail = det;
	agent_unlock(a);
	(void)lc_audit_write(&a->audit, &ev, NULL);
	agent_relock(a);
	(void)agent_revoke_matching_kc(a, id, prov, ref, kcn, cause, v == LC_VERDICT_REVOKE, -1, 0,
				       NULL, NULL, &e2);
	/* A confirmed denial goes to the fleet (etcd): every agent kills its
	 * volumes under the CMK at once.  An outage (fail-closed) does not:
	 * it is this node's view of the KMS, not the KMS's word. */
	if (v == LC_VERDICT_REVOKE)
		(void)agent_fleet_publish(a, prov, id, ref, kcn, cause, NULL, 0, &e2);
	return v;
}

/* ---- the canary ---- */

static void context_of(char *out, size_t size, const char *kc)
{
	snprintf(out, size, "%s%s", LC_KEK_CANARY_PREFIX, kc);
}

static void sha256_hex(const uint8_t *p, size_t len, char hex[65])
{
	uint8_t md[32];
	unsigned int n = 0;

	EVP_Digest(p, len, md, &n, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	lc_wipe(md, sizeof(md));
}

/*
 * Make a canary for @kcname under CMK @key_ref: 32 random bytes wrapped
 * with the canary context, then read back (unwrapped again and compared
 * in constant time, the second call's reply in @vrep, *@verified set when
 * it was made) before it is kept: a KMS that answers the wrap with a blob
 * it will not unwrap (a lying or broken KMS, or a policy that allows the
 * canary's Encrypt but not its Decrypt) would otherwise leave a canary
 * whose every probe reads as a denial.  A failed read-back keeps no
 * canary and is MISCONFIG (transient and denied keep their class): the
 * watcher then probes by key state and tries again at its next probe.
 */
static int canary_wrap(struct lc_provider *p, const char *key_ref, const char *kcname,
		       char b64[LC_CANARY_B64_SIZE], char hex[65], unsigned int *calls,
		       struct lc_provider_reply *rep, struct lc_provider_reply *vrep,
		       bool *verified, struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret pt = { 0 };
	_cleanup_secret_ struct lc_secret back = { 0 };
	struct lc_buf blob = { 0 };
	struct lc_error ve = { 0 };
	char ctx[LC_HDR_NAME_SIZE + 64];
	int r;

	context_of(ctx, sizeof(ctx), kcname);
	if ((r = lc_secret_alloc(&pt, LC_CANARY_LEN)) < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	if ((r = lc_rand_bytes(pt.p, pt.len, true, "canary", err)) < 0)
		return r;
	r = lc_provider_wrap(p, key_ref, &pt, ctx, &blob, rep, err);
	if (calls)
		*calls += rep->attempts;
	if (r < 0)
		return r;
	if (!blob.len || blob.len > LC_CANARY_BLOB_MAX) {
		free(blob.p);
		return lc_err(err, -EMSGSIZE, LC_ERRC_MISCONFIG,
			      "the wrapped canary is %zu bytes: expected 1 to %d", blob.len,
			      LC_CANARY_BLOB_MAX);
	}
	*verified = true;
	r = lc_provider_unwrap(p, key_ref, &blob, ctx, &back, vrep, &ve);
	if (calls)
		*calls += vrep->attempts;
	if (r < 0) {
		free(blob.p);
		return lc_err(err, r, ve.cls == LC_ERRC_TRANSIENT || ve.cls == LC_ERRC_DENIED ?
			      ve.cls : LC_ERRC_MISCONFIG,
			      "the KMS wrapped the canary but reading it back failed (%s: %.200s): no canary kept; check that the key policy allows Decrypt with the canary context as well as Encrypt",
			      lc_err_class_name(ve.cls), ve.msg);
	}
	if (back.len != pt.len || CRYPTO_memcmp(back.p, pt.p, pt.len)) {
		free(blob.p);
		return lc_err(err, -EBADMSG, LC_ERRC_MISCONFIG,
			      "the KMS unwrapped the canary it just wrapped to other bytes: no canary kept");
	}
	lc_base64_encode(blob.p, blob.len, b64);
	free(blob.p);
	sha256_hex(pt.p, pt.len, hex);
	return 0;
}

int agent_canary_make(struct agent *a, int64_t peer_uid, struct lc_provider *p,
		      const char *key_ref, const char *kcname, char b64[LC_CANARY_B64_SIZE],
		      char hex[65], unsigned int *calls, struct lc_error *err)
{
	struct lc_provider_reply rep = { 0 }, vrep = { 0 };
	struct lc_audit_event ev;
	bool verified = false;
	int r = canary_wrap(p, key_ref, kcname, b64, hex, calls, &rep, &vrep, &verified, err);

	/* Every canary wrap and its read-back is a KMS call under the CMK:
	 * audited as such (the read-back as "cmk.verify", as a KEK's is). */
	for (int i = 0; i < 1 + verified; i++) {
		const struct lc_provider_reply *x = i ? &vrep : &rep;
		bool failed = i ? r != 0 : r && !verified;

		lc_audit_event_init(&ev, i ? "cmk.verify" : "cmk.canary_wrap",
				    failed ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
		ev.peer_uid = peer_uid;
		ev.keyconfig = kcname;
		ev.provider = p->ops->name;
		ev.cmk_id = x->key_id[0] ? x->key_id : key_ref;
		ev.cmk_version = x->key_version[0] ? x->key_version : NULL;
		ev.request_id = x->request_id[0] ? x->request_id : NULL;
		ev.latency_ms = (int64_t)(x->latency_us / 1000);
		ev.error_class = failed ? err->cls : LC_ERRC_NONE;
		(void)lc_audit_write(&a->audit, &ev, NULL);
	}
	return r;
}

/*
 * The key configuration @v was wrapped under, if it is on @v's CMK: its
 * canary is the one to probe with.  Never another configuration's (AWS
 * key policies grant each configuration's context on its own: another's
 * canary says nothing about this one's, and its denial is not this one's).
 */
static const struct lc_keyconfig *canary_kc(struct agent *a, const struct lc_volume *v)
{
	const struct lc_keyconfig *kc = v->keyconfig[0] ? lc_registry_keyconfig(&a->reg, v->keyconfig) : NULL;

	if (!kc || strcmp(kc->provider, v->provider) ||
	    (strcmp(kc->key_ref, v->provider_ref) &&
	     (!v->cmk_id[0] || strcmp(kc->cmk_id, v->cmk_id))))
		return NULL;
	return kc;
}

/* Unwrap the canary (@b64 of key configuration @kcname) and compare. */
static enum lc_probe_outcome canary_probe(struct agent *a, struct lc_provider *p,
					  const char *key_ref, const char *kcname, const char *b64,
					  const char *hex, const struct lc_volume *v,
					  unsigned int *calls, char *detail, size_t dsize)
{
	_cleanup_secret_ struct lc_secret pt = { 0 };
	struct lc_provider_reply rep = { 0 };
	struct lc_audit_event ev;
	struct lc_buf blob = { 0 };
	struct lc_error e = { 0 };
	char ctx[LC_HDR_NAME_SIZE + 64], got[65];
	size_t n = strlen(b64), len = 0;
	enum lc_probe_outcome o;
	int r;

	blob.p = malloc(n / 4 * 3 + 3);
	if (!blob.p || lc_base64_decode(b64, n, blob.p, &len) < 0) {
		free(blob.p);
		snprintf(detail, dsize, "the canary of key configuration %s does not decode", kcname);
		return LC_PROBE_UNKNOWN;
	}
	blob.len = len;
	context_of(ctx, sizeof(ctx), kcname);
	r = lc_provider_unwrap(p, key_ref, &blob, ctx, &pt, &rep, &e);
	free(blob.p);
	*calls += rep.attempts;
	if (!r) {
		sha256_hex(pt.p, pt.len, got);
		if (CRYPTO_memcmp(got, hex, 64)) {
			r = lc_err(&e, -EBADMSG, LC_ERRC_INVALID,
				   "the canary unwrapped to other bytes than it was made of");
		}
		lc_wipe(got, sizeof(got));
	}
	lc_secret_free(&pt);	/* wiped at once */
	if (!r)
		o = LC_PROBE_OK;
	else if (e.cls == LC_ERRC_DENIED)
		o = LC_PROBE_DENIED;
	else
		o = LC_PROBE_UNKNOWN;
	if (r)
		snprintf(detail, dsize, "canary unwrap: %s: %.200s", lc_err_class_name(e.cls), e.msg);
	else
		snprintf(detail, dsize, "canary unwrap: ok");
	if (r && o == LC_PROBE_UNKNOWN && e.cls != LC_ERRC_TRANSIENT)
		lc_warn("CMK %s: %s (key configuration %s): not a revocation; recreate the key configuration if it persists",
			key_ref, detail, kcname);
	lc_audit_event_init(&ev, "cmk.canary", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
	ev.keyconfig = kcname;
	ev.provider = v->provider;
	ev.cmk_id = v->cmk_id[0] ? v->cmk_id : key_ref;
	ev.cmk_version = rep.key_version[0] ? rep.key_version : NULL;
	ev.request_id = rep.request_id[0] ? rep.request_id : NULL;
	ev.latency_ms = (int64_t)(rep.latency_us / 1000);
	ev.error_class = r ? e.cls : LC_ERRC_NONE;
	(void)lc_audit_write(&a->audit, &ev, NULL);
	return o;
}

/*
 * The key versions open volumes under this CMK were wrapped by, other
 * than the primary the key state just read: a provider whose versions
 * are resources below the key (Cloud KMS: "<key>/cryptoKeyVersions/N",
 * the encrypt reply's "name" the header records as cmk_version) decrypts
 * without being told the version, so disabling an old version breaks the
 * volumes it wrapped while the primary stays enabled, and the canary
 * (wrapped by the primary of its day) does not see it.  Each such version
 * is asked for its own state: DISABLED, DESTROY_SCHEDULED or DESTROYED is
 * a denial.  A failed version query is never one (a missing
 * cloudkms.cryptoKeyVersions.get would otherwise kill: the key's own GET
 * and the canary already answer for the IAM binding), nor an outage
 * (fail_closed_after_s would count it): a warning, the outcome stays what
 * the key state says.  Only providers whose ops say version_state; at
 * most LC_PROBE_VERSIONS versions per probe, @v's first.
 */
#define LC_PROBE_VERSIONS 8

static void audit_state(struct agent *a, const struct lc_volume *v,
			const struct lc_provider_reply *rep, int r, const struct lc_error *e);

static size_t versions_in_use(struct agent *a, const struct lc_volume *v, const char *primary,
			      char out[LC_PROBE_VERSIONS][LC_HDR_CMK_VERSION_SIZE])
{
	size_t n = 0, kl = strlen(v->provider_ref);

	agent_relock(a);
	for (size_t i = 0; i <= a->nvols && n < LC_PROBE_VERSIONS; i++) {
		const struct lc_volume *x = i ? a->vols[i - 1]->v : v;
		bool dup = false;

		if (!x || strcmp(x->provider, v->provider) || strcmp(x->provider_ref, v->provider_ref) ||
		    strncmp(x->cmk_version, v->provider_ref, kl) || x->cmk_version[kl] != '/' ||
		    !strcmp(x->cmk_version, primary))
			continue;
		for (size_t k = 0; k < n && !dup; k++)
			dup = !strcmp(out[k], x->cmk_version);
		if (!dup)
			snprintf(out[n++], LC_HDR_CMK_VERSION_SIZE, "%s", x->cmk_version);
	}
	agent_unlock(a);
	return n;
}

static enum lc_probe_outcome probe_versions(struct agent *a, struct lc_provider *p,
					    const struct lc_volume *v, const char *primary,
					    unsigned int *calls, char *detail, size_t dsize)
{
	char vers[LC_PROBE_VERSIONS][LC_HDR_CMK_VERSION_SIZE];
	size_t n;

	(void)detail;
	if (!p->ops->version_state)
		return LC_PROBE_OK;
	n = versions_in_use(a, v, primary, vers);

	for (size_t i = 0; i < n; i++) {
		struct lc_provider_reply rep = { 0 };
		struct lc_error e = { 0 };
		int r = lc_provider_key_state(p, vers[i], &rep, &e);

		*calls += rep.attempts;
		if (r || rep.state != LC_KEY_ENABLED)
			audit_state(a, v, &rep, r, &e);	/* cmk_version: the version's */
		if (!r && (rep.state == LC_KEY_DISABLED || rep.state == LC_KEY_PENDING_DELETION ||
			   rep.state == LC_KEY_DESTROYED)) {
			snprintf(detail, dsize, "key version %.250s, which wrapped an open volume's KEK, is %s",
				 vers[i], lc_key_state_name(rep.state));
			return LC_PROBE_DENIED;
		}
		if (r || rep.state != LC_KEY_ENABLED)
			lc_warn("watcher: state of key version %.250s, which wrapped an open volume's KEK, unknown (%.200s): not a revocation; grant cloudkms.cryptoKeyVersions.get if it says permission",
				vers[i], r ? e.msg : lc_key_state_name(rep.state));
	}
	return LC_PROBE_OK;
}

static void audit_state(struct agent *a, const struct lc_volume *v,
			const struct lc_provider_reply *rep, int r, const struct lc_error *e)
{
	struct lc_audit_event ev;

	lc_audit_event_init(&ev, "cmk.key_state", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
	ev.keyconfig = v->keyconfig[0] ? v->keyconfig : NULL;
	ev.provider = v->provider;
	ev.cmk_id = v->cmk_id[0] ? v->cmk_id : v->provider_ref;
	ev.cmk_version = rep->key_version[0] ? rep->key_version : NULL;
	ev.request_id = rep->request_id[0] ? rep->request_id : NULL;
	ev.latency_ms = (int64_t)(rep->latency_us / 1000);
	if (r)
		ev.error_class = e->cls;
	else if (rep->state != LC_KEY_ENABLED)
		ev.error_class = LC_ERRC_DENIED;
	(void)lc_audit_write(&a->audit, &ev, NULL);
}

/*
 * The canary of @kcname (@b64) was denied while the key answers enabled.
 * A canary is wrapped by the primary key version of its day, and a
 * provider whose blobs name their version (Cloud KMS, Azure) refuses it
 * once that version is disabled, although no volume may use the version
 * any more: that alone is no revocation.  So a denied canary is made
 * again under today's primary (wrap and read-back, both audited): if that
 * works the old one was stale, it is replaced (if the registry still
 * holds it) and the outcome is OK; if the new canary's wrap or read-back
 * is denied, the denial stands; any other failure: UNKNOWN.  Versions
 * open volumes use are probed on their own (probe_versions()).
 */
static enum lc_probe_outcome canary_recheck(struct agent *a, struct lc_provider *p,
					    const struct lc_volume *v, const char *kcname,
					    const char *b64, unsigned int *calls, char *detail,
					    size_t dsize)
{
	char nb64[LC_CANARY_B64_SIZE], nhex[65];
	const struct lc_keyconfig *kc;
	struct lc_error ce = { 0 }, re = { 0 };
	size_t dl = strlen(detail);

	if (agent_canary_make(a, -1, p, v->provider_ref, kcname, nb64, nhex, calls, &ce) < 0) {
		if (dl < dsize)
			snprintf(detail + dl, dsize - dl, "; a new canary: %s: %.150s",
				 lc_err_class_name(ce.cls), ce.msg);
		return ce.cls == LC_ERRC_DENIED ? LC_PROBE_DENIED : LC_PROBE_UNKNOWN;
	}
	agent_relock(a);
	kc = lc_registry_keyconfig(&a->reg, kcname);
	if (kc && !strcmp(kc->canary, b64) &&
	    lc_registry_set_canary(&a->reg, kcname, nb64, nhex, &re) < 0)
		lc_warn("key configuration %s: the new canary is not saved (%s); it is made again at the next denial",
			kcname, re.msg);
	agent_unlock(a);
	lc_warn("CMK %s: key configuration %s's canary was denied (%s); a new one made under today's primary unwraps: the old one was stale (made under a key version since disabled?), replaced; not a denial",
		v->provider_ref, kcname, detail);
	snprintf(detail, dsize, "canary unwrap: ok (a stale canary was denied; a new one unwraps and replaced it)");
	lc_wipe(nhex, sizeof(nhex));
	return LC_PROBE_OK;
}

/*
 * A denial is asked again before the probe reports it: LC_PROBE_RECHECKS
 * more times, each LC_PROBE_RECHECK_MS after the last (on a->clock, whose
 * sleep a test skips), and only a denial every one of them repeats is the
 * probe's.  A KMS that refuses a random call now and then (one backend
 * with a stale policy cache, a 403 from a proxy) is then almost never
 * read as a revocation: at a 5 % rate of independent stray denials, a
 * probe reads one with probability 0.05^3 (Documentation/lakecrypt-agent.md,
 * "What kills", has the arithmetic), while a real revocation, which
 * denies every call, costs LC_PROBE_RECHECKS * LC_PROBE_RECHECK_MS more
 * per probe (2 s) and LC_PROBE_RECHECKS more calls (and, for a key-state
 * denial, the canary's unwrap as its witness), only while it denies.
 */
#define LC_PROBE_RECHECKS	2
#define LC_PROBE_RECHECK_MS	1000

static void recheck_pause(const struct agent *a)
{
	uint64_t ns = (uint64_t)LC_PROBE_RECHECK_MS * 1000000ULL;

	if (a->clock && a->clock->sleep_ns) {
		a->clock->sleep_ns(a->clock->arg, ns);
		return;
	}
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL),
			       .tv_nsec = (long)(ns % 1000000000ULL) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One call of a probe step: its outcome, @detail what it said. */
typedef enum lc_probe_outcome (*probe_call_fn)(void *ctx, char *detail, size_t dsize);

/*
 * @call, then, while it denies, asked again LC_PROBE_RECHECKS times,
 * spaced: DENIED only when every call denies.  A recheck that answers
 * otherwise is the outcome (the first was a stray denial), with a warning
 * naming @what (of @v's CMK).  @rechecks: the calls asked again.
 */
static enum lc_probe_outcome with_rechecks(struct agent *a, const struct lc_volume *v,
					   const char *what, probe_call_fn call, void *ctx,
					   unsigned int *rechecks, char *detail, size_t dsize)
{
	enum lc_probe_outcome o = call(ctx, detail, dsize);
	char first[LC_ERROR_MSG_MAX + 64];

	if (o != LC_PROBE_DENIED)
		return o;
	snprintf(first, sizeof(first), "%s", detail);
	for (unsigned int i = 0; i < LC_PROBE_RECHECKS && o == LC_PROBE_DENIED; i++) {
		recheck_pause(a);
		(*rechecks)++;
		o = call(ctx, detail, dsize);
	}
	if (o != LC_PROBE_DENIED)
		lc_warn("CMK %s: %s was denied (%.300s) but asked again %u s later it says %s (%.300s): not counted as a denial",
			v->provider_ref, what, first, LC_PROBE_RECHECK_MS / 1000,
			lc_probe_outcome_name(o), detail);
	return o;
}

/* One key-state call for @v's CMK: its outcome, *@r and @rep as the
 * provider returned, @detail what it said. */
static enum lc_probe_outcome state_once(struct agent *a, struct lc_provider *p,
					const struct lc_volume *v, struct lc_provider_reply *rep,
					int *r, unsigned int *calls, char *detail, size_t dsize)
{
	struct lc_error e = { 0 };
	enum lc_probe_outcome o;

	memset(rep, 0, sizeof(*rep));
	*r = lc_provider_key_state(p, v->provider_ref, rep, &e);
	*calls += rep->attempts;
	if (*r || rep->state != LC_KEY_ENABLED)
		audit_state(a, v, rep, *r, &e);
	if (*r < 0) {
		o = e.cls == LC_ERRC_DENIED ? LC_PROBE_DENIED : LC_PROBE_UNKNOWN;
		snprintf(detail, dsize, "key state: %s: %.400s", lc_err_class_name(e.cls), e.msg);
	} else if (rep->state == LC_KEY_DISABLED || rep->state == LC_KEY_PENDING_DELETION ||
		   rep->state == LC_KEY_DESTROYED) {
		o = LC_PROBE_DENIED;
		snprintf(detail, dsize, "CMK is %s", lc_key_state_name(rep->state));
	} else if (rep->state != LC_KEY_ENABLED) {
		o = LC_PROBE_UNKNOWN;
		snprintf(detail, dsize, "key state %s is not a revocation",
			 lc_key_state_name(rep->state));
	} else {
		o = LC_PROBE_OK;
		snprintf(detail, dsize, "enabled");
	}
	return o;
}

struct state_call {
	struct agent *a;
	struct lc_provider *p;
	const struct lc_volume *v;
	struct lc_provider_reply *rep;
	int *r;
	unsigned int *calls;
};

static enum lc_probe_outcome state_call(void *ctx, char *detail, size_t dsize)
{
	struct state_call *k = ctx;

	return state_once(k->a, k->p, k->v, k->rep, k->r, k->calls, detail, dsize);
}

/*
 * The key state, a denial asked again (with_rechecks()).  A recheck that
 * answers enabled makes the probe go on as enabled; one that gets no
 * answer makes it UNKNOWN.  @rechecks: the calls asked again.
 */
static enum lc_probe_outcome state_probe(struct agent *a, struct lc_provider *p,
					 const struct lc_volume *v, struct lc_provider_reply *rep,
					 int *r, unsigned int *calls, unsigned int *rechecks,
					 char *detail, size_t dsize)
{
	struct state_call k = { a, p, v, rep, r, calls };

	return with_rechecks(a, v, "the key state", state_call, &k, rechecks, detail, dsize);
}

/* The canary to probe @v with, into @kcname/@b64/@hex ("" each when
 * none): @v's own key configuration's, made first if it has none yet
 * (then @wcalls counts the calls). */
static void canary_of(struct agent *a, struct lc_provider *p, const struct lc_volume *v,
		      char kcname[LC_HDR_NAME_SIZE], char b64[LC_CANARY_B64_SIZE], char hex[65],
		      unsigned int *wcalls)
{
	const struct lc_keyconfig *kc;

	agent_relock(a);
	kc = canary_kc(a, v);
	if (kc) {
		snprintf(kcname, LC_HDR_NAME_SIZE, "%s", kc->name);
		snprintf(b64, LC_CANARY_B64_SIZE, "%s", kc->canary);
		snprintf(hex, 65, "%s", kc->canary_sha256);
	}
	agent_unlock(a);
	if (kcname[0] && !b64[0]) {
		/* A key configuration of before canaries: make its own. */
		struct lc_error ce;

		if (agent_canary_make(a, -1, p, v->provider_ref, kcname, b64, hex, wcalls, &ce) < 0) {
			lc_warn("CMK %s: cannot make a canary for key configuration %s (%s); probing by key state only this time",
				v->provider_ref, kcname, ce.msg);
			b64[0] = '\0';
		} else {
			agent_relock(a);
			if (lc_registry_keyconfig(&a->reg, kcname) &&
			    !lc_registry_keyconfig(&a->reg, kcname)->canary[0] &&
			    lc_registry_set_canary(&a->reg, kcname, b64, hex, &ce) < 0)
				lc_warn("key configuration %s: canary not saved: %s", kcname, ce.msg);
			else
				lc_info("key configuration %s: canary made under CMK %s", kcname,
					v->provider_ref);
			agent_unlock(a);
		}
	}
}

struct canary_call {
	struct agent *a;
	struct lc_provider *p;
	const struct lc_volume *v;
	const char *kcname, *b64, *hex;
	unsigned int *ccalls;
};

static enum lc_probe_outcome canary_call(void *ctx, char *detail, size_t dsize)
{
	struct canary_call *k = ctx;

	return canary_probe(k->a, k->p, k->v->provider_ref, k->kcname, k->b64, k->hex, k->v,
			    k->ccalls, detail, dsize);
}

/* The canary's unwrap, a denial asked again (with_rechecks()), then, if
 * every unwrap is denied, canary_recheck() (a stale canary is no
 * revocation either). */
static enum lc_probe_outcome canary_run(struct agent *a, struct lc_provider *p,
					const struct lc_volume *v, const char *kcname,
					const char *b64, const char *hex, unsigned int *ccalls,
					unsigned int *wcalls, unsigned int *rechecks, char *detail,
					size_t dsize)
{
	struct canary_call k = { a, p, v, kcname, b64, hex, ccalls };
	char what[LC_HDR_NAME_SIZE + 40];
	enum lc_probe_outcome co;

	snprintf(what, sizeof(what), "key configuration %s's canary", kcname);
	co = with_rechecks(a, v, what, canary_call, &k, rechecks, detail, dsize);
	if (co != LC_PROBE_DENIED)
		return co;
	return canary_recheck(a, p, v, kcname, b64, wcalls, detail, dsize);
}

int agent_probe_cmk(struct agent *a, const struct lc_volume *v, json_object *report)
{
	struct lc_provider *p = agent_provider(a, v->provider);
	struct lc_provider_reply rep = { 0 };
	char detail[LC_ERROR_MSG_MAX + 64] = "", cdetail[LC_ERROR_MSG_MAX + 64] = "";
	char kcname[LC_HDR_NAME_SIZE] = "", b64[LC_CANARY_B64_SIZE] = "", hex[65] = "";
	unsigned int scalls = 0, ccalls = 0, wcalls = 0, rechecks = 0;
	uint64_t t0;
	enum lc_probe_outcome o, so, co = LC_PROBE_UNKNOWN;
	enum lc_revconf_verdict verdict;
	const char *canary = "not used";
	bool canary_ran = false;
	enum agent_ident_check ident = AGENT_IDENT_NOT_CHECKED;	/* only a denial is checked */
	bool refused, crefused;
	struct cmk_watch *w, *wk;
	int r;

	if (!p) {
		lc_warn("volume %s uses provider %s, which this agent does not have: its CMK cannot be watched",
			v->name, v->provider);
		return -ENOPROTOOPT;
	}
	t0 = clock_ns(a);
	o = so = state_probe(a, p, v, &rep, &r, &scalls, &rechecks, detail, sizeof(detail));
	if (o == LC_PROBE_UNKNOWN && r < 0)
		lc_warn("watcher: state of CMK %s unknown (%s); volumes keep running, not a revocation",
			v->provider_ref, detail);

	/* Enabled: the versions open volumes use must be enabled too. */
	if (o == LC_PROBE_OK)
		o = probe_versions(a, p, v, rep.key_version, &scalls, detail, sizeof(detail));

	/* Enabled: the authoritative probe, a real unwrap of the canary of
	 * @v's own key configuration.  The state call itself denied (an
	 * error of class DENIED, not a state the KMS reported): the canary
	 * is its witness (a disabled, pending-deletion or destroyed key
	 * unwraps nothing): a denial that the canary's unwrap does not bear
	 * out is none (the state call's own permission taken away, or a
	 * stray 403 three times over).  As a witness one unwrap does: its
	 * denial after three of the state's is no stray, and a revocation's
	 * probes, fleet-wide at once, must stay cheap.  A state the KMS
	 * reports (disabled, ...), three times, needs no witness: a flaky
	 * KMS refuses calls, it does not invent key states, and the canary
	 * may have been made under another key version than the one the
	 * state is of (Cloud KMS: the primary, disabled, while the canary's
	 * older version is enabled). */
	if ((o == LC_PROBE_OK || (so == LC_PROBE_DENIED && r < 0)) && a->cfg.canary) {
		bool witness = o == LC_PROBE_DENIED;

		canary_of(a, p, v, kcname, b64, hex, &wcalls);
		if (b64[0]) {
			co = witness ?
			     canary_probe(a, p, v->provider_ref, kcname, b64, hex, v, &ccalls,
					  cdetail, sizeof(cdetail)) :
			     canary_run(a, p, v, kcname, b64, hex, &ccalls, &wcalls, &rechecks,
					cdetail, sizeof(cdetail));
			canary = lc_probe_outcome_name(co);
			canary_ran = !witness || co == LC_PROBE_OK;
		} else {
			canary = "none";
		}
		if (witness && co == LC_PROBE_OK) {
			lc_warn("CMK %s: the key state is denied (%.300s) but key configuration %s's canary unwraps: the key is usable; not a denial (is the state call itself, e.g. kms:DescribeKey, no longer allowed?)",
				v->provider_ref, detail, kcname);
			o = LC_PROBE_OK;
			snprintf(cdetail + strlen(cdetail), sizeof(cdetail) - strlen(cdetail),
				 "; the key state was denied (%.200s) and is not counted", detail);
			snprintf(detail, sizeof(detail), "key state denied, the canary unwraps: not a denial");
		} else if (witness && b64[0]) {
			size_t dl = strlen(detail);

			snprintf(detail + dl, sizeof(detail) - dl, "; the canary: %.200s", cdetail);
		}
	}

	/* A refusal to a principal other than the one the key configuration
	 * was made with is a misconfiguration, never a revocation
	 * (kms-ident.c): not counted (an UNKNOWN, as an outage).  A key state
	 * the KMS reports (disabled, pending deletion, a version's) is its
	 * word about the key whoever asked: it stands. */
	refused = o == LC_PROBE_DENIED && r < 0;
	crefused = canary_ran && co == LC_PROBE_DENIED;
	if ((refused || crefused) && v->keyconfig[0]) {
		char idet[520] = "";	/* kms-ident.c's detail: two principals, each cut at 240 */

		ident = agent_kms_identity_check(a, p, v->keyconfig, v->provider, v->provider_ref,
						 idet, sizeof(idet));
		if (ident == AGENT_IDENT_OTHER) {
			if (refused) {
				o = LC_PROBE_UNKNOWN;
				snprintf(detail, sizeof(detail), "%s (the KMS said: denied)", idet);
			}
			if (crefused) {
				co = LC_PROBE_UNKNOWN;
				snprintf(cdetail, sizeof(cdetail), "%s (the KMS said: canary denied)", idet);
			}
		}
	}

	agent_relock(a);
	/* The key's own observation: its state (and its versions'). */
	verdict = observe(a, v->provider, v->provider_ref, v->cmk_id, NULL, o, detail, t0);
	wk = w = watch_of(a, v->provider, v->provider_ref, v->cmk_id, NULL, false);
	if (wk) {
		wk->probes++;
		wk->state_calls += scalls;
	}
	/* The key configuration's: its canary. */
	if (canary_ran) {
		verdict = observe(a, v->provider, v->provider_ref, v->cmk_id, kcname, co, cdetail, t0);
		w = watch_of(a, v->provider, v->provider_ref, v->cmk_id, kcname, false);
		if (w) {
			w->probes++;
			w->canary_calls += ccalls;
			w->canary_wraps += wcalls;
		}
		o = co;
		snprintf(detail, sizeof(detail), "%s", cdetail);
	} else {
		struct cmk_watch *wc = v->keyconfig[0] ?
			watch_of(a, v->provider, v->provider_ref, v->cmk_id, v->keyconfig, false) : NULL;

		if (wcalls && wk)
			wk->canary_wraps += wcalls;
		if (ccalls && wk)
			wk->canary_calls += ccalls;	/* the canary as the state's witness */
		/* The key answered no better than its configuration's last
		 * word: report what stands (a pending canary denial stays). */
		if (wc && wc->verdict > verdict) {
			verdict = wc->verdict;
			w = wc;
		}
	}
	if (report) {
		json_object_object_add(report, "cmk", json_object_new_string(v->provider_ref));
		json_object_object_add(report, "provider", json_object_new_string(v->provider));
		json_object_object_add(report, "keyconfig", json_object_new_string(canary_ran ? kcname : ""));
		json_object_object_add(report, "state",
				       json_object_new_string(r ? "unknown" : lc_key_state_name(rep.state)));
		json_object_object_add(report, "canary", json_object_new_string(canary));
		/* "misconfigured": denied, but to another principal than the
		 * bound one (kms-ident.c) */
		json_object_object_add(report, "outcome",
				       json_object_new_string(ident == AGENT_IDENT_OTHER ? "misconfigured" :
							      lc_probe_outcome_name(o)));
		json_object_object_add(report, "identity",
				       json_object_new_string(agent_ident_check_name(ident)));
		json_object_object_add(report, "detail", json_object_new_string(detail));
		json_object_object_add(report, "verdict",
				       json_object_new_string(lc_revconf_verdict_name(verdict)));
		json_object_object_add(report, "denials",
				       json_object_new_int64(w ? w->rc.ndenials : 0));
		/* A denial seen too soon after the last counted one: shown, not counted. */
		json_object_object_add(report, "counted",
				       json_object_new_boolean(o == LC_PROBE_DENIED && w && w->rc.last_counted));
		json_object_object_add(report, "kms_calls", json_object_new_int64(scalls + ccalls + wcalls));
		/* denials asked again before the probe took them as its answer */
		json_object_object_add(report, "rechecks", json_object_new_int64(rechecks));
	}
	agent_unlock(a);
	lc_debug("watcher: CMK %s%s%s: %s (%s), %u KMS call(s)", v->provider_ref,
		 canary_ran ? ", key configuration " : "", canary_ran ? kcname : "",
		 lc_probe_outcome_name(o), detail, scalls + ccalls + wcalls);
	return 0;
}

/* ---- opens ---- */

int agent_open_observed(struct agent *a, const struct lc_keyconfig *kc, int r,
			struct lc_error *err, const char *what)
{
	char orig[LC_ERROR_MSG_MAX], state[32] = "", outcome[16] = "", det[LC_ERROR_MSG_MAX] = "";
	char canary[16] = "", by[LC_HDR_NAME_SIZE + 64];
	uint64_t gap_ms = agent_min_gap_ms(a), now = clock_ns(a);
	struct lc_volume *v;
	struct cmk_watch *w;
	json_object *rep, *x;

	if (!kc || !kc->provider[0] || !kc->key_ref[0])
		return r;
	if (!r) {
		/* The KMS unwrapped this header's blob: an answer (an outage is
		 * over, a spent tracker starts over), not an OK that forgets
		 * the denials probes counted (lc_revconf_answered()). */
		for (int i = 0; i < 2; i++) {
			w = watch_of(a, kc->provider, kc->key_ref, kc->cmk_id, i ? kc->name : NULL, true);
			if (!w)
				continue;
			if (w->rc.spent)
				w->verdict = LC_VERDICT_KEEP;
			lc_revconf_answered(&w->rc);
			if (i)
				w->opens_ok++;
		}
		return 0;
	}
	if (!err || err->cls != LC_ERRC_DENIED)
		return r;	/* not the KMS's word about the CMK (bad header, outage, ...) */
	snprintf(orig, sizeof(orig), "%s", err->msg);
	w = watch_of(a, kc->provider, kc->key_ref, kc->cmk_id, kc->name, true);
	if (!w)
		return r;
	w->opens_denied++;
	/* At most one probe per CMK and key configuration every gap: a loop
	 * of forged opens is not a flood of KMS calls. */
	if (w->triggered && now - w->trigger_ns < gap_ms * 1000000ULL) {
		w->trigger_skipped++;
		return lc_err(err, r, LC_ERRC_DENIED,
			      "%.300s; not counted as a revocation: an open's denial is not one by itself, and CMK %.100s was probed for one %" PRIu64 " s ago (at most one such probe every %" PRIu64 " s)",
			      orig, kc->key_ref, (uint64_t)((now - w->trigger_ns) / 1000000000ULL), gap_ms / 1000);
	}
	w->triggered++;
	w->trigger_ns = now;
	v = agent_keyconfig_volume(kc);
	rep = json_object_new_object();
	if (!v || !rep) {
		free(v);
		json_object_put(rep);
		return r;
	}
	lc_warn("%s under CMK %s (key configuration %s) was denied (%s): probing the CMK itself",
		what, kc->key_ref, kc->name, orig);
	agent_unlock(a);
	if (agent_probe_cmk(a, v, rep) == 0) {
		if (json_object_object_get_ex(rep, "state", &x))
			snprintf(state, sizeof(state), "%s", json_object_get_string(x));
		if (json_object_object_get_ex(rep, "outcome", &x))
			snprintf(outcome, sizeof(outcome), "%s", json_object_get_string(x));
		if (json_object_object_get_ex(rep, "detail", &x))
			snprintf(det, sizeof(det), "%s", json_object_get_string(x));
		if (json_object_object_get_ex(rep, "canary", &x))
			snprintf(canary, sizeof(canary), "%s", json_object_get_string(x));
	}
	json_object_put(rep);
	lc_volume_free(v);
	agent_relock(a);
	/* Say what answered: a key configuration without a canary (its
	 * policy never allowed one, or canary = no) is probed by state only. */
	if (!strcmp(canary, "ok"))
		snprintf(by, sizeof(by), "key state and key configuration %.60s's canary", kc->name);
	else
		snprintf(by, sizeof(by), "key state only: no canary of key configuration %.60s was unwrapped", kc->name);
	if (!strcmp(outcome, "ok"))
		return lc_err(err, r, LC_ERRC_INVALID,
			      "the KMS denied the unwrap of this header's KEK (%.260s); the CMK itself answers %s (%s): the header may be stale (made under a key version since disabled or destroyed) or forged, or the key policy no longer allows this volume's context; not counted as a revocation",
			      orig, state[0] ? state : "enabled", by);
	if (!strcmp(outcome, "misconfigured"))
		return lc_err(err, r, LC_ERRC_MISCONFIG,
			      "%.150s; not a revocation: %.350s", orig, det);
	if (!strcmp(outcome, "denied"))
		return lc_err(err, r, LC_ERRC_DENIED,
			      "%.300s; the CMK's own probe is denied too (%.150s): counted toward the revocation",
			      orig, det);
	return lc_err(err, r, LC_ERRC_DENIED,
		      "%.300s; the CMK's own probe got no authoritative answer (%.150s): not counted as a revocation",
		      orig, det[0] ? det : "no probe");
}

/* Whole seconds since @rc's outage began, 0 if none.  Its start is in
 * nanoseconds and now in milliseconds: within the millisecond it began,
 * now can read earlier than the start, which must give 0, not 2^64 ns. */
static int64_t outage_s(const struct agent *a, const struct lc_revconf *rc)
{
	uint64_t now_ns = clock_ns(a);

	if (!rc->outage_since_ns || now_ns <= rc->outage_since_ns)
		return 0;
	return (int64_t)((now_ns - rc->outage_since_ns) / 1000000000ULL);
}

struct lc_volume *agent_keyconfig_volume(const struct lc_keyconfig *kc)
{
	struct lc_volume *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	snprintf(v->name, sizeof(v->name), "keyconfig-%.50s", kc->name);
	snprintf(v->keyconfig, sizeof(v->keyconfig), "%s", kc->name);
	snprintf(v->provider, sizeof(v->provider), "%s", kc->provider);
	snprintf(v->provider_ref, sizeof(v->provider_ref), "%s", kc->key_ref);
	snprintf(v->cmk_id, sizeof(v->cmk_id), "%s", kc->cmk_id);
	return v;
}

json_object *agent_watches_json(struct agent *a)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < a->nwatches; i++) {
		const struct cmk_watch *w = a->watches[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "cmk", json_object_new_string(w->key_ref));
		json_object_object_add(o, "provider", json_object_new_string(w->provider));
		/* "": the key's own state; else that key configuration's canary */
		json_object_object_add(o, "keyconfig", json_object_new_string(w->keyconfig));
		json_object_object_add(o, "last", json_object_new_string(lc_probe_outcome_name(w->last)));
		json_object_object_add(o, "last_detail", json_object_new_string(w->last_detail));
		json_object_object_add(o, "last_at", json_object_new_int64(w->last_at));
		json_object_object_add(o, "verdict",
				       json_object_new_string(lc_revconf_verdict_name(w->verdict)));
		json_object_object_add(o, "denials", json_object_new_int64(w->rc.ndenials));
		json_object_object_add(o, "outage_s", json_object_new_int64(outage_s(a, &w->rc)));
		json_object_object_add(o, "probes", json_object_new_uint64(w->probes));
		json_object_object_add(o, "state_calls", json_object_new_uint64(w->state_calls));
		json_object_object_add(o, "canary_calls", json_object_new_uint64(w->canary_calls));
		json_object_object_add(o, "canary_wraps", json_object_new_uint64(w->canary_wraps));
		json_object_object_add(o, "opens_ok", json_object_new_uint64(w->opens_ok));
		json_object_object_add(o, "opens_denied", json_object_new_uint64(w->opens_denied));
		json_object_object_add(o, "uncounted", json_object_new_uint64(w->rc.uncounted));
		json_object_object_add(o, "triggered", json_object_new_uint64(w->triggered));
		json_object_object_add(o, "trigger_skipped", json_object_new_uint64(w->trigger_skipped));
		json_object_array_add(arr, o);
	}
	return arr;
}

void agent_watches_free(struct agent *a)
{
	for (size_t i = 0; i < a->nwatches; i++)
		free(a->watches[i]);
	free(a->watches);
	a->watches = NULL;
	a->nwatches = 0;
}

void agent_revocation_policy_audit(struct agent *a)
{
	struct lc_audit_event ev;
	char det[200];

	snprintf(det, sizeof(det),
		 "watch_interval_s=%u jitter_pct=%u confirm_denials=%u confirm_window_s=%u fail_closed_after_s=%u%s canary=%s",
		 a->cfg.watch_interval_s, a->cfg.jitter_pct, a->cfg.confirm_denials,
		 a->cfg.confirm_window_s, a->cfg.fail_closed_after_s,
		 a->cfg.fail_closed_after_s ? " (fail-closed ON)" : " (fail-closed off)",
		 a->cfg.canary ? "yes" : "no");
	if (a->cfg.fail_closed_after_s)
		lc_warn("[revocation] fail_closed_after_s = %u: a KMS outage that long revokes every volume under the CMKs it hides",
			a->cfg.fail_closed_after_s);
	lc_audit_event_init(&ev, "revocation.policy", LC_AUDIT_SUCCESS);
	ev.detail = det;
	(void)lc_audit_write(&a->audit, &ev, NULL);
}
