// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-agent: one name, one volume, one workspace (issue 11).
 *
 * Device-mapper names are global to the host, and an open can take as
 * long as the KMS does.  Before volume.open or cache.open works (a->lock
 * held), agent_open_claim() decides what the name may do:
 *
 *  - a name lakecrypttab(5) lists belongs to the workspace of its line:
 *    another workspace's open under it is refused (crypttab.h); where the
 *    line says UUID=, a volume with another uuid is closed again and
 *    refused once the header is read (ops-volume.c);
 *  - a name /etc/crypttab ([agent] crypttab) lists is refused to everyone:
 *    it is systemd-cryptsetup's (crypttab.h);
 *  - a name already open as the very volume asked for (same workspace,
 *    kind, device and header) is success: the open is idempotent, so a
 *    lakecrypt@NAME.service started again finds the mapping it owns;
 *    any other holder is refused, naming it;
 *  - a name being opened right now: a request for the same volume waits
 *    for that open and then takes its result; any other is refused.  The
 *    wait is bounded: [agent] busy_wait_ms, then -EBUSY "busy: another
 *    operation on volume X is in progress ... retry"; and it ends as soon
 *    as the waiter's own client hangs up (-ECANCELED);
 *  - otherwise the caller's claim is listed until agent_open_release().
 *
 * A claimed open whose client went away (systemd killed the unit's start
 * job at TimeoutStartSec, a user pressed ^C) is undone by the caller
 * (ops-volume.c) unless another request whose client is still there waits
 * for the same volume.  A cache asked again with another segment size is
 * refused (-EEXIST), not reported as already open.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "crypttab.h"

bool agent_client_gone(const struct client *c)
{
	return atomic_load(&c->gone);
}

static bool claim_listed(const struct agent *a, uint64_t id)
{
	for (const struct open_claim *k = a->claims; k; k = k->next)
		if (k->id == id)
			return true;
	return false;
}

static struct open_claim *claim_of(struct agent *a, const char *name)
{
	for (struct open_claim *k = a->claims; k; k = k->next)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

const struct open_claim *open_claim_named(struct agent *a, const char *name)
{
	return claim_of(a, name);
}

unsigned int agent_claim_live_waiters(const struct open_claim *k)
{
	unsigned int n = 0;

	for (const struct claim_waiter *w = k->waiting; w; w = w->next)
		n += !agent_client_gone(w->c);
	return n;
}

/* A cache asked with another segment size than the one open or opening
 * under the name: the same device, but not what was asked for. */
static int other_options(const char *name, uint64_t have, uint64_t want, bool opening,
			 struct lc_error *err)
{
	return lc_err(err, -EEXIST, LC_ERRC_INVALID,
		      "cache %s is %s with segment size %" PRIu64 " bytes, not %" PRIu64
		      ": close it first to change its segment size", name,
		      opening ? "being opened right now" : "already open", have, want);
}

/* Same volume: kind, workspace, device and header (resolved paths). */
static bool same_volume(const struct open_claim *k, enum lc_volume_kind kind, const char *ws,
			const char *dev, const char *hdr)
{
	return k->kind == kind && !strcmp(k->workspace, ws) && !strcmp(k->device, dev) &&
	       !strcmp(k->header, hdr);
}

/* Resolved before a->lock was taken (paths.c). */
static void resolve(const struct client *c, const char *path, char *out)
{
	if (!path || !path[0] || !agent_realpath(c, path, out))
		snprintf(out, PATH_MAX, "%s", path ? path : "");
}

/* Take @w out of @o's waiters (@o still listed, a->lock held). */
static void unwait(struct open_claim *o, struct claim_waiter *w)
{
	for (struct claim_waiter **p = &o->waiting; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			o->waiters--;
			return;
		}
}

struct timespec agent_deadline(unsigned int ms)
{
	struct timespec dl;

	clock_gettime(CLOCK_MONOTONIC, &dl);	/* a->changed's clock */
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	return dl;
}

/*
 * Wait for the open of claim @o to end (a->lock held, dropped while
 * waiting): 0 once it is released, -ECANCELED as soon as @c's peer hung up
 * (agent_client_drop() wakes us), -EBUSY (TRANSIENT) after
 * [agent] busy_wait_ms.  Either way @c is no longer among @o's waiters.
 */
static int wait_claim(struct agent *a, struct client *c, struct open_claim *o,
		      struct lc_error *err)
{
	struct timespec dl = agent_deadline(a->cfg.busy_wait_ms);
	int64_t t0 = agent_now_ms();
	struct claim_waiter me = { .c = c, .next = o->waiting };
	uint64_t id = o->id;
	char name[LC_HDR_NAME_SIZE];
	bool timed_out = false;

	snprintf(name, sizeof(name), "%s", o->name);
	o->waiters++;
	o->waiting = &me;
	while (claim_listed(a, id) && !agent_client_gone(c) && !timed_out)
		timed_out = pthread_cond_timedwait(&a->changed, &a->lock, &dl) == ETIMEDOUT;
	if (!claim_listed(a, id)) {
		/* o is gone; its waiter list (and &me in it) with it. */
		if (agent_client_gone(c))
			return lc_err(err, -ECANCELED, LC_ERRC_TRANSIENT,
				      "the client went away while an open of %s ran", name);
		return 0;
	}
	unwait(o, &me);
	if (agent_client_gone(c))
		return lc_err(err, -ECANCELED, LC_ERRC_TRANSIENT,
			      "the client went away while an open of %s ran", name);
	return lc_err(err, -EBUSY, LC_ERRC_TRANSIENT,
		      "busy: another operation on volume %s is in progress (an open of it, waited for %" PRId64
		      " ms, [agent] busy_wait_ms): retry",
		      name, agent_now_ms() - t0);
}

int agent_open_claim(struct agent *a, struct client *c, struct open_claim *k,
		     struct vol_slot **slot, struct lc_error *err)
{
	struct lc_crypttab_entry e;
	int r;

	*slot = NULL;
	/* A name /etc/crypttab lists is systemd-cryptsetup's: a lakecrypt
	 * mapping under it would make that volume fail to open and put this
	 * one where its fstab line mounts (lakecrypttab.md, "Names"). */
	r = lc_crypttab_sys_find(a->cfg.crypttab, k->name, err);
	if (r < 0)
		return r;
	/* Class invalid, as the lakecrypttab conflict below: no role allows
	 * it, root's included (issue 11 review, finding 7). */
	if (r > 0) {
		r = lc_err(err, -EPERM, LC_ERRC_INVALID,
			   "the name \"%s\" is listed in %s line %d (a dm-crypt volume systemd-cryptsetup opens under it): no lakecrypt volume may be opened under it; choose another name",
			   k->name, a->cfg.crypttab, r);
		agent_audit_locked(a, k->kind == LC_VOLUME_CACHE ? "cache.open" : "volume.open",
				   LC_AUDIT_REFUSED, c->peer.uid, k->workspace, NULL, NULL, NULL, err);
		return r;
	}
	r = lc_crypttab_find(a->cfg.lakecrypttab, k->name, &e, err);
	if (r < 0)
		return r;
	/* Class invalid, not refused: no role would allow it (lakecryptctl
	 * says "your role does not allow this operation" for refused), but
	 * audited as a refusal, as before. */
	if (r > 0 && strcmp(e.workspace, k->workspace)) {
		r = lc_err(err, -EPERM, LC_ERRC_INVALID,
			   "the name \"%s\" belongs to workspace \"%s\" (%s line %u): workspace \"%s\" cannot open a volume under it; choose another name",
			   k->name, e.workspace, a->cfg.lakecrypttab, e.line, k->workspace);
		agent_audit_locked(a, k->kind == LC_VOLUME_CACHE ? "cache.open" : "volume.open",
				   LC_AUDIT_REFUSED, c->peer.uid, k->workspace, NULL, NULL, NULL, err);
		return r;
	}
	/* UUID= (checked and lower-cased by lc_crypttab_find()): the open
	 * refuses another volume before anything is mapped (ops-volume.c). */
	snprintf(k->tab_uuid, sizeof(k->tab_uuid), "%s", r > 0 ? e.uuid : "");
	if (r > 0)
		k->tab_line = e.line;
	resolve(c, k->device_arg, k->device);
	resolve(c, k->header_arg, k->header);
	for (;;) {
		struct vol_slot *s = agent_volume(a, k->name);
		struct open_claim *o;

		if (s) {
			struct open_claim have = { .kind = s->v->kind, .workspace = s->v->workspace };

			snprintf(have.device, sizeof(have.device), "%s", s->v->device);
			snprintf(have.header, sizeof(have.header), "%s", s->v->header);
			if (!same_volume(&have, k->kind, k->workspace, k->device, k->header) &&
			    !agent_ws_visible(a, c, s->v->workspace))
				return lc_err(err, -EEXIST, LC_ERRC_INVALID,
					      "a volume called \"%s\" is already open (/dev/mapper/%s) in a workspace you cannot see; choose another name",
					      k->name, k->name);
			if (!same_volume(&have, k->kind, k->workspace, k->device, k->header))
				return lc_err(err, -EEXIST, LC_ERRC_INVALID,
					      "a volume called \"%s\" is already open (/dev/mapper/%s): workspace \"%s\", device %s%s%s; close it or choose another name",
					      k->name, k->name, s->v->workspace, s->v->device,
					      s->v->header[0] ? ", header " : "", s->v->header);
			if (k->kind == LC_VOLUME_CACHE && k->segment_size &&
			    s->v->segment_sectors * 512 != k->segment_size)
				return other_options(k->name, s->v->segment_sectors * 512,
						     k->segment_size, false, err);
			if (s->v->revoked || s->rs != SLOT_LIVE)
				return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
					      "volume %s is open but revoked (status shows why): close it before opening it again",
					      k->name);
			*slot = s;
			return 1;
		}
		o = claim_of(a, k->name);
		if (!o)
			break;
		if (!same_volume(o, k->kind, k->workspace, k->device, k->header))
			return agent_ws_visible(a, c, o->workspace) ?
				lc_err(err, -EEXIST, LC_ERRC_INVALID,
				       "a volume called \"%s\" is being opened right now: workspace \"%s\", device %s; choose another name",
				       k->name, o->workspace, o->device) :
				lc_err(err, -EEXIST, LC_ERRC_INVALID,
				       "a volume called \"%s\" is being opened right now in a workspace you cannot see; choose another name",
				       k->name);
		if (k->kind == LC_VOLUME_CACHE && k->segment_size && o->segment_size &&
		    o->segment_size != k->segment_size)
			return other_options(k->name, o->segment_size, k->segment_size, true, err);
		/* The same volume is opening (an earlier start of the same
		 * unit, say): wait for it, then take what it made. */
		r = wait_claim(a, c, o, err);
		if (r < 0)
			return r;
	}
	k->id = ++a->claim_seq;
	k->waiters = 0;
	k->waiting = NULL;
	k->next = a->claims;
	a->claims = k;
	return 0;
}

void agent_open_release(struct agent *a, struct open_claim *k)
{
	for (struct open_claim **p = &a->claims; *p; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	pthread_cond_broadcast(&a->changed);
}
