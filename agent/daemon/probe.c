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
 * Each answer is an observation for the CMK's lc_revconf tracker (OK,
 * DENIED, UNKNOWN): the watcher's probes, `check`, and the unwraps and
 * wraps of opens feed it; only its REVOKE (confirmed denials) or
 * FAIL_CLOSED (the operator's outage limit) verdict pulls the kill switch.
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
	struct lc_revconf rc;
	uint64_t probes;		/* watcher and check probes */
	uint64_t state_calls;		/* KMS calls made for them (attempts) */
	uint64_t canary_calls;		/* canary unwraps (attempts) */
	uint64_t canary_wraps;		/* canaries made lazily (attempts) */
	uint64_t opens_ok, opens_denied; /* observations from opens */
	enum lc_probe_outcome last;
	enum lc_revconf_verdict verdict;
	char last_detail[256];
	int64_t last_at;		/* epoch seconds of the last observation */
};

static void policy_of(const struct agent *a, struct lc_revconf_policy *p)
{
	p->confirm_denials = a->cfg.confirm_denials;
	p->confirm_window_ms = (uint64_t)a->cfg.confirm_window_s * 1000;
	p->fail_closed_after_ms = (uint64_t)a->cfg.fail_closed_after_s * 1000;
}

static struct cmk_watch *watch_of(struct agent *a, const char *provider, const char *key_ref,
				  const char *cmk_id, bool create)
{
	struct cmk_watch **t, *w;

	for (size_t i = 0; i < a->nwatches; i++) {
		w = a->watches[i];
		if (!strcmp(w->provider, provider) && !strcmp(w->key_ref, key_ref))
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
	lc_revconf_reset(&w->rc);
	a->watches[a->nwatches++] = w;
	return w;
}

/* Record @o for the CMK and act on the verdict (a->lock held; may drop it). */
static enum lc_revconf_verdict observe(struct agent *a, const char *provider, const char *key_ref,
				       const char *cmk_id, enum lc_probe_outcome o, const char *detail)
{
	struct cmk_watch *w = watch_of(a, provider, key_ref, cmk_id, true);
	struct lc_revconf_policy pol;
	enum lc_revconf_verdict v;
	struct lc_audit_event ev;
	char cause[512], det[160], ref[LC_HDR_PROVIDER_REF_SIZE], id[LC_HDR_CMK_ID_SIZE];
	char prov[LC_HDR_PROVIDER_SIZE];
	struct lc_error e2;

	if (!w) {
		lc_error_log("CMK %s: out of memory: an observation (%s) is lost", key_ref,
			     lc_probe_outcome_name(o));
		return LC_VERDICT_KEEP;
	}
	policy_of(a, &pol);
	/* A revoked CMK that works again (re-enabled, an open succeeded)
	 * starts over. */
	if (w->rc.spent && o == LC_PROBE_OK) {
		lc_revconf_reset(&w->rc);
		w->verdict = LC_VERDICT_KEEP;
	}
	v = lc_revconf_observe(&w->rc, &pol, o, NULL);
	w->last = o;
	w->last_at = (int64_t)time(NULL);
	snprintf(w->last_detail, sizeof(w->last_detail), "%s", detail ? detail : "");
	if (w->verdict == v && (v == LC_VERDICT_REVOKE || v == LC_VERDICT_FAIL_CLOSED))
		return v;	/* acted on already */
	w->verdict = v;
	if (v == LC_VERDICT_PENDING && o == LC_PROBE_DENIED)
		lc_warn("CMK %s: denial %u of the %u that confirm a revocation (%s); not revoking yet",
			key_ref, w->rc.ndenials, pol.confirm_denials, detail ? detail : "");
	if (v != LC_VERDICT_REVOKE && v != LC_VERDICT_FAIL_CLOSED)
		return v;
	if (v == LC_VERDICT_REVOKE)
		snprintf(cause, sizeof(cause),
			 "KMS denied CMK %.200s %u time(s) within %u s (confirmed): %.200s", key_ref,
			 w->rc.ndenials, a->cfg.confirm_window_s, detail ? detail : "");
	else
		snprintf(cause, sizeof(cause),
			 "no answer from the KMS about CMK %.200s for %u s: fail_closed_after_s reached",
			 key_ref, a->cfg.fail_closed_after_s);
	snprintf(det, sizeof(det), "%s: denials=%u confirm_denials=%u confirm_window_s=%u fail_closed_after_s=%u",
		 lc_revconf_verdict_name(v), w->rc.ndenials, pol.confirm_denials,
		 a->cfg.confirm_window_s, a->cfg.fail_closed_after_s);
	snprintf(ref, sizeof(ref), "%s", key_ref);
	snprintf(id, sizeof(id), "%s", cmk_id ? cmk_id : "");
	snprintf(prov, sizeof(prov), "%s", provider);
	lc_warn("watcher: %s: revoking every volume under it", cause);
	lc_audit_event_init(&ev, "cmk.revocation", LC_AUDIT_SUCCESS);
	ev.provider = prov;
	ev.cmk_id = id[0] ? id : ref;
	ev.error_class = v == LC_VERDICT_REVOKE ? LC_ERRC_DENIED : LC_ERRC_TRANSIENT;
	ev.detail = det;
	agent_unlock(a);
	(void)lc_audit_write(&a->audit, &ev, NULL);
	agent_relock(a);
	(void)agent_revoke_matching(a, id, prov, ref, cause, v == LC_VERDICT_REVOKE, -1, 0, NULL,
				    NULL, &e2);
	return v;
}

void agent_observe(struct agent *a, const char *provider, const char *key_ref, const char *cmk_id,
		   int r, const struct lc_error *e, const char *what)
{
	char detail[256];
	enum lc_probe_outcome o;
	struct cmk_watch *w;

	if (!provider || !key_ref || !key_ref[0])
		return;
	if (!r)
		o = LC_PROBE_OK;
	else if (e && e->cls == LC_ERRC_DENIED)
		o = LC_PROBE_DENIED;
	else if (e && (e->cls == LC_ERRC_TRANSIENT || e->cls == LC_ERRC_MISCONFIG))
		o = LC_PROBE_UNKNOWN;
	else
		return;		/* not the KMS's answer (bad header, busy device, ...) */
	snprintf(detail, sizeof(detail), "%s: %.200s", what, r ? e->msg : "ok");
	(void)observe(a, provider, key_ref, cmk_id, o, detail);
	w = watch_of(a, provider, key_ref, cmk_id, false);
	if (w && o == LC_PROBE_OK)
		w->opens_ok++;
	else if (w && o == LC_PROBE_DENIED)
		w->opens_denied++;
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

static int canary_wrap(struct lc_provider *p, const char *key_ref, const char *kcname,
		       char b64[LC_CANARY_B64_SIZE], char hex[65], unsigned int *calls,
		       struct lc_provider_reply *rep, struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret pt = { 0 };
	struct lc_buf blob = { 0 };
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
	lc_base64_encode(blob.p, blob.len, b64);
	free(blob.p);
	sha256_hex(pt.p, pt.len, hex);
	return 0;
}

int agent_canary_make(struct agent *a, int64_t peer_uid, struct lc_provider *p,
		      const char *key_ref, const char *kcname, char b64[LC_CANARY_B64_SIZE],
		      char hex[65], unsigned int *calls, struct lc_error *err)
{
	struct lc_provider_reply rep = { 0 };
	struct lc_audit_event ev;
	int r = canary_wrap(p, key_ref, kcname, b64, hex, calls, &rep, err);

	/* Every canary wrap is a KMS call under the CMK: audited as such. */
	lc_audit_event_init(&ev, "cmk.canary_wrap", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
	ev.peer_uid = peer_uid;
	ev.keyconfig = kcname;
	ev.provider = p->ops->name;
	ev.cmk_id = rep.key_id[0] ? rep.key_id : key_ref;
	ev.cmk_version = rep.key_version[0] ? rep.key_version : NULL;
	ev.request_id = rep.request_id[0] ? rep.request_id : NULL;
	ev.latency_ms = (int64_t)(rep.latency_us / 1000);
	ev.error_class = r ? err->cls : LC_ERRC_NONE;
	(void)lc_audit_write(&a->audit, &ev, NULL);
	return r;
}

/* A key configuration for this CMK, preferring one that has a canary. */
static const struct lc_keyconfig *canary_kc(struct agent *a, const char *provider,
					    const char *key_ref, const char *cmk_id)
{
	const struct lc_keyconfig *any = NULL;

	for (size_t i = 0; i < a->reg.nkc; i++) {
		const struct lc_keyconfig *kc = &a->reg.kc[i];

		if (strcmp(kc->provider, provider) ||
		    (strcmp(kc->key_ref, key_ref) && (!cmk_id || !cmk_id[0] || strcmp(kc->cmk_id, cmk_id))))
			continue;
		if (kc->canary[0])
			return kc;
		if (!any)
			any = kc;
	}
	return any;
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

int agent_probe_cmk(struct agent *a, const struct lc_volume *v, json_object *report)
{
	struct lc_provider *p = agent_provider(a, v->provider);
	struct lc_provider_reply rep = { 0 };
	struct lc_error e = { 0 };
	char detail[LC_ERROR_MSG_MAX + 64] = "", kcname[LC_HDR_NAME_SIZE] = "";
	char b64[LC_CANARY_B64_SIZE] = "", hex[65] = "";
	unsigned int scalls = 0, ccalls = 0, wcalls = 0;
	enum lc_probe_outcome o;
	enum lc_revconf_verdict verdict;
	const char *canary = "not used";
	struct cmk_watch *w;
	int r;

	if (!p) {
		lc_warn("volume %s uses provider %s, which this agent does not have: its CMK cannot be watched",
			v->name, v->provider);
		return -ENOPROTOOPT;
	}
	r = lc_provider_key_state(p, v->provider_ref, &rep, &e);
	scalls += rep.attempts;
	if (r || rep.state != LC_KEY_ENABLED)
		audit_state(a, v, &rep, r, &e);
	if (r < 0) {
		o = e.cls == LC_ERRC_DENIED ? LC_PROBE_DENIED : LC_PROBE_UNKNOWN;
		snprintf(detail, sizeof(detail), "key state: %s: %.400s", lc_err_class_name(e.cls), e.msg);
		if (o == LC_PROBE_UNKNOWN)
			lc_warn("watcher: state of CMK %s unknown (%s); volumes keep running, not a revocation",
				v->provider_ref, detail);
	} else if (rep.state == LC_KEY_DISABLED || rep.state == LC_KEY_PENDING_DELETION ||
		   rep.state == LC_KEY_DESTROYED) {
		o = LC_PROBE_DENIED;
		snprintf(detail, sizeof(detail), "CMK is %s", lc_key_state_name(rep.state));
	} else if (rep.state != LC_KEY_ENABLED) {
		o = LC_PROBE_UNKNOWN;
		snprintf(detail, sizeof(detail), "key state %s is not a revocation",
			 lc_key_state_name(rep.state));
	} else {
		o = LC_PROBE_OK;
		snprintf(detail, sizeof(detail), "enabled");
	}

	/* Enabled: the versions open volumes use must be enabled too. */
	if (o == LC_PROBE_OK)
		o = probe_versions(a, p, v, rep.key_version, &scalls, detail, sizeof(detail));

	/* Enabled: the authoritative probe, a real unwrap of the canary. */
	if (o == LC_PROBE_OK && a->cfg.canary) {
		const struct lc_keyconfig *kc;

		agent_relock(a);
		kc = canary_kc(a, v->provider, v->provider_ref, v->cmk_id);
		if (kc) {
			snprintf(kcname, sizeof(kcname), "%s", kc->name);
			snprintf(b64, sizeof(b64), "%s", kc->canary);
			snprintf(hex, sizeof(hex), "%s", kc->canary_sha256);
		}
		agent_unlock(a);
		if (kcname[0] && !b64[0]) {
			/* A key configuration of before canaries: make its own. */
			struct lc_error ce;

			if (agent_canary_make(a, -1, p, v->provider_ref, kcname, b64, hex, &wcalls, &ce) < 0) {
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
		if (b64[0]) {
			o = canary_probe(a, p, v->provider_ref, kcname, b64, hex, v, &ccalls, detail,
					 sizeof(detail));
			canary = lc_probe_outcome_name(o);
		} else {
			canary = "none";
		}
	}

	agent_relock(a);
	verdict = observe(a, v->provider, v->provider_ref, v->cmk_id, o, detail);
	w = watch_of(a, v->provider, v->provider_ref, v->cmk_id, false);
	if (w) {
		w->probes++;
		w->state_calls += scalls;
		w->canary_calls += ccalls;
		w->canary_wraps += wcalls;
	}
	if (report) {
		json_object_object_add(report, "cmk", json_object_new_string(v->provider_ref));
		json_object_object_add(report, "provider", json_object_new_string(v->provider));
		json_object_object_add(report, "state",
				       json_object_new_string(r ? "unknown" : lc_key_state_name(rep.state)));
		json_object_object_add(report, "canary", json_object_new_string(canary));
		json_object_object_add(report, "outcome", json_object_new_string(lc_probe_outcome_name(o)));
		json_object_object_add(report, "detail", json_object_new_string(detail));
		json_object_object_add(report, "verdict",
				       json_object_new_string(lc_revconf_verdict_name(verdict)));
		json_object_object_add(report, "denials",
				       json_object_new_int64(w ? w->rc.ndenials : 0));
		json_object_object_add(report, "kms_calls", json_object_new_int64(scalls + ccalls + wcalls));
	}
	agent_unlock(a);
	lc_debug("watcher: CMK %s: %s (%s), %u KMS call(s)", v->provider_ref,
		 lc_probe_outcome_name(o), detail, scalls + ccalls + wcalls);
	return 0;
}


/* Whole seconds since @rc's outage began, 0 if none.  Its start is in
 * nanoseconds and now in milliseconds: within the millisecond it began,
 * now can read earlier than the start, which must give 0, not 2^64 ns. */
static int64_t outage_s(const struct lc_revconf *rc)
{
	uint64_t now_ns = (uint64_t)agent_now_ms() * 1000000ULL;

	if (!rc->outage_since_ns || now_ns <= rc->outage_since_ns)
		return 0;
	return (int64_t)((now_ns - rc->outage_since_ns) / 1000000000ULL);
}

json_object *agent_watches_json(struct agent *a)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < a->nwatches; i++) {
		const struct cmk_watch *w = a->watches[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "cmk", json_object_new_string(w->key_ref));
		json_object_object_add(o, "provider", json_object_new_string(w->provider));
		json_object_object_add(o, "last", json_object_new_string(lc_probe_outcome_name(w->last)));
		json_object_object_add(o, "last_detail", json_object_new_string(w->last_detail));
		json_object_object_add(o, "last_at", json_object_new_int64(w->last_at));
		json_object_object_add(o, "verdict",
				       json_object_new_string(lc_revconf_verdict_name(w->verdict)));
		json_object_object_add(o, "denials", json_object_new_int64(w->rc.ndenials));
		json_object_object_add(o, "outage_s", json_object_new_int64(outage_s(&w->rc)));
		json_object_object_add(o, "probes", json_object_new_uint64(w->probes));
		json_object_object_add(o, "state_calls", json_object_new_uint64(w->state_calls));
		json_object_object_add(o, "canary_calls", json_object_new_uint64(w->canary_calls));
		json_object_object_add(o, "canary_wraps", json_object_new_uint64(w->canary_wraps));
		json_object_object_add(o, "opens_ok", json_object_new_uint64(w->opens_ok));
		json_object_object_add(o, "opens_denied", json_object_new_uint64(w->opens_denied));
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
