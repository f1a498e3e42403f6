// SPDX-License-Identifier: GPL-2.0
/*
 * dm-lakecrypt key store: one DEK per segment, taken from logon keys in the
 * kernel keyring, and a bounded pool of crypto transforms shared by all
 * segments.
 *
 * A loaded key costs one small allocation (struct lc_key) and its xarray
 * slot; no keyring reference is kept.  A bounded cache of keyed
 * transforms, looked up by segment, lets hot segments skip setkey: only a
 * miss keys a transform.
 */
#include <linux/hash.h>
#include <linux/key.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <crypto/algapi.h>
#include <linux/slab.h>
#include <keys/user-type.h>

#include "dm-lakecrypt.h"

static atomic64_t lc_key_ids = ATOMIC64_INIT(0);

static const char lc_replace_hint[] =
	"wipe it first (key wipe) or suspend the device to replace it";

static void lc_key_free(struct lc_key *k)
{
	kfree_sensitive(k);	/* zeroes the whole allocation */
}

static void lc_key_free_rcu(struct rcu_head *rcu)
{
	lc_key_free(container_of(rcu, struct lc_key, rcu));
}

unsigned int lc_key_cache = LC_CACHE_DEFAULT;

static struct crypto_skcipher *lc_alloc_tfm(struct lc_target *lc)
{
	/* As dm-crypt: no implementation that allocates memory per request. */
	return crypto_alloc_skcipher(lc->alg_name, 0, CRYPTO_ALG_ALLOCATES_MEMORY);
}

static void lc_tfm_free(struct lc_tfm *t)
{
	skcipher_request_free(t->req);		/* kfree_sensitive */
	if (!IS_ERR_OR_NULL(t->tfm))
		crypto_free_skcipher(t->tfm);	/* kfree_sensitive: the key schedule too */
	kfree(t);
}

/* A new transform, unkeyed and busy (its caller holds it). */
static struct lc_tfm *lc_tfm_alloc(struct lc_target *lc, bool reserve)
{
	struct lc_tfm *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&t->lru);
	INIT_HLIST_NODE(&t->hnode);
	t->busy = true;
	t->reserve = reserve;
	t->tfm = lc_alloc_tfm(lc);
	if (IS_ERR(t->tfm)) {
		int r = PTR_ERR(t->tfm);

		kfree(t);
		return ERR_PTR(r);
	}
	t->req = skcipher_request_alloc(t->tfm, GFP_KERNEL);
	if (!t->req) {
		lc_tfm_free(t);
		return ERR_PTR(-ENOMEM);
	}
	return t;
}

/*
 * Key a transform with throwaway bytes so it no longer holds a DEK.  If
 * that fails (adiantum's setkey allocates), replace the transform:
 * freeing it zeroes its key schedule.  If even that fails, the transform
 * stays LC_TFM_DIRTY and the next scrub tries again.
 */
static void lc_tfm_scrub(struct lc_target *lc, struct lc_tfm *t)
{
	struct skcipher_request *req;
	struct crypto_skcipher *tfm;
	u8 junk[LAKECRYPT_MAX_KEY_SIZE];
	int r;

	if (!t->key_id)
		return;
	get_random_bytes(junk, lc->key_size);
	r = crypto_skcipher_setkey(t->tfm, junk, lc->key_size);
	memzero_explicit(junk, sizeof(junk));
	if (!r) {
		t->key_id = 0;
		return;
	}

	tfm = lc_alloc_tfm(lc);
	if (IS_ERR(tfm))
		goto fail;
	req = skcipher_request_alloc(tfm, GFP_KERNEL);
	if (!req) {
		crypto_free_skcipher(tfm);
		goto fail;
	}
	skcipher_request_free(t->req);
	crypto_free_skcipher(t->tfm);
	t->tfm = tfm;
	t->req = req;
	t->key_id = 0;
	return;
fail:
	t->key_id = LC_TFM_DIRTY;
	DMERR_LIMIT("%s: cannot scrub a crypto transform (%d), retried at the next wipe",
		    lc->volume_id, r);
}

static struct hlist_head *lc_cache_bucket(struct lc_target *lc, u32 seg)
{
	return &lc->cache_hash[hash_32(seg, lc->cache_hash_bits)];
}

/*
 * The transform cache.  A bio slice takes an idle transform that holds its
 * segment's key (a hit) or, failing that, the least recently used idle one
 * (unkeyed ones first) and keys it (a miss; an eviction if it held another
 * key).  Reserve transforms (cache_min, allocated with the table)
 * guarantee progress; the others, up to cache_max, are allocated by a work
 * item that a miss queues, never in the I/O path: an allocation there
 * (even GFP_NOIO) can wait forever for memory that only this device's
 * writes (swap) would free.
 */
#define LC_GROW_BATCH	32

static void lc_cache_grow(struct work_struct *work)
{
	struct lc_target *lc = container_of(work, struct lc_target, cache_grow);
	unsigned int i;

	for (i = 0; i < LC_GROW_BATCH; i++) {
		struct lc_tfm *t;

		spin_lock(&lc->cache_lock);
		if (lc->cache_nr >= lc->cache_max) {
			spin_unlock(&lc->cache_lock);
			return;
		}
		spin_unlock(&lc->cache_lock);
		t = lc_tfm_alloc(lc, false);
		if (IS_ERR(t)) {
			DMERR_LIMIT("%s: cannot grow the transform cache beyond %u (%ld)",
				    lc->volume_id, lc->cache_nr, PTR_ERR(t));
			return;
		}
		spin_lock(&lc->cache_lock);
		t->busy = false;
		list_add_tail(&t->all, &lc->cache_all);
		list_add(&t->lru, &lc->cache_lru);	/* unkeyed: the next miss takes it */
		lc->cache_nr++;
		spin_unlock(&lc->cache_lock);
		if (wq_has_sleeper(&lc->cache_wait))
			wake_up(&lc->cache_wait);
	}
}

int lc_pool_init(struct lc_target *lc)
{
	unsigned int i, buckets;

	spin_lock_init(&lc->cache_lock);
	INIT_LIST_HEAD(&lc->cache_all);
	INIT_LIST_HEAD(&lc->cache_lru);
	init_waitqueue_head(&lc->cache_wait);
	INIT_WORK(&lc->cache_grow, lc_cache_grow);
	lc->cache_min = clamp(2 * num_possible_cpus(), 4U, (unsigned int)LC_MAX_POOL);
	lc->cache_max = clamp(READ_ONCE(lc_key_cache), lc->cache_min, (unsigned int)LC_CACHE_LIMIT);
	buckets = roundup_pow_of_two(lc->cache_max);
	lc->cache_hash_bits = ilog2(buckets);
	lc->cache_hash = kvcalloc(buckets, sizeof(*lc->cache_hash), GFP_KERNEL);
	if (!lc->cache_hash)
		return -ENOMEM;

	for (i = 0; i < lc->cache_min; i++) {
		struct lc_tfm *t = lc_tfm_alloc(lc, true);

		if (IS_ERR(t))
			return PTR_ERR(t);
		t->busy = false;
		list_add_tail(&t->all, &lc->cache_all);
		list_add_tail(&t->lru, &lc->cache_lru);
		lc->cache_nr++;
	}
	return 0;
}

/* Destructor: no I/O is possible any more. */
void lc_pool_destroy(struct lc_target *lc)
{
	struct lc_tfm *t, *n;

	if (!lc->cache_hash)
		return;
	cancel_work_sync(&lc->cache_grow);
	list_for_each_entry_safe(t, n, &lc->cache_all, all)
		lc_tfm_free(t);
	INIT_LIST_HEAD(&lc->cache_all);
	kvfree(lc->cache_hash);
	lc->cache_hash = NULL;
}

void lc_pool_stats(struct lc_target *lc, unsigned int *nr, u64 *hits, u64 *misses,
		   u64 *evictions)
{
	spin_lock(&lc->cache_lock);
	*nr = lc->cache_nr;
	*hits = lc->cache_hits;
	*misses = lc->cache_misses;
	*evictions = lc->cache_evictions;
	spin_unlock(&lc->cache_lock);
}

/* Take @t off the idle lists.  cache_lock held. */
static void lc_cache_take_locked(struct lc_target *lc, struct lc_tfm *t)
{
	list_del_init(&t->lru);
	if (!hlist_unhashed(&t->hnode))
		hlist_del_init(&t->hnode);
	t->busy = true;
}

void lc_tfm_put(struct lc_target *lc, struct lc_tfm *t)
{
	spin_lock(&lc->cache_lock);
	t->busy = false;
	if (t->key_id && t->key_id != LC_TFM_DIRTY) {
		list_add_tail(&t->lru, &lc->cache_lru);
		hlist_add_head(&t->hnode, lc_cache_bucket(lc, t->seg));
	} else {
		list_add(&t->lru, &lc->cache_lru);	/* the first to be reused */
	}
	spin_unlock(&lc->cache_lock);
	if (wq_has_sleeper(&lc->cache_wait))
		wake_up(&lc->cache_wait);
}

/*
 * An idle transform holding key @id of segment @seg, or one to key: *hit
 * says which.  Waits while every transform is busy.
 */
static struct lc_tfm *lc_cache_take(struct lc_target *lc, u32 seg, u64 id, bool *hit)
{
	struct lc_tfm *t;

	for (;;) {
		spin_lock(&lc->cache_lock);
		hlist_for_each_entry(t, lc_cache_bucket(lc, seg), hnode)
			if (t->key_id == id)
				goto hit;
		if (lc->cache_nr < lc->cache_max)
			queue_work(system_unbound_wq, &lc->cache_grow);	/* no-op if queued */
		if (!list_empty(&lc->cache_lru))
			goto evict;
		spin_unlock(&lc->cache_lock);
		wait_event(lc->cache_wait, !list_empty_careful(&lc->cache_lru));
	}
hit:
	lc_cache_take_locked(lc, t);
	lc->cache_hits++;
	spin_unlock(&lc->cache_lock);
	*hit = true;
	return t;

evict:
	t = list_first_entry(&lc->cache_lru, struct lc_tfm, lru);
	if (t->key_id && t->key_id != LC_TFM_DIRTY)
		lc->cache_evictions++;
	lc_cache_take_locked(lc, t);
	lc->cache_misses++;
	spin_unlock(&lc->cache_lock);
	*hit = false;
	return t;
}

/*
 * Return a transform keyed with the DEK of segment @seg, or
 * ERR_PTR(-ENOKEY) if that segment has no key.  Process context: may
 * sleep (setkey runs under memalloc_noio: adiantum's allocates).
 */
struct lc_tfm *lc_tfm_get(struct lc_target *lc, u32 seg)
{
	u8 buf[LAKECRYPT_MAX_KEY_SIZE];
	unsigned int noio;
	struct lc_key *k;
	struct lc_tfm *t;
	bool hit;
	u64 id;
	int r;

	rcu_read_lock();
	k = xa_load(&lc->keys, seg);
	id = k ? k->id : 0;
	rcu_read_unlock();
	if (!id)
		return ERR_PTR(-ENOKEY);

	t = lc_cache_take(lc, seg, id, &hit);
	if (hit)
		return t;

	rcu_read_lock();
	k = xa_load(&lc->keys, seg);
	if (k) {
		id = k->id;
		memcpy(buf, k->bytes, lc->key_size);
	}
	rcu_read_unlock();
	if (!k) {
		lc_tfm_put(lc, t);
		return ERR_PTR(-ENOKEY);
	}

	noio = memalloc_noio_save();
	r = crypto_skcipher_setkey(t->tfm, buf, lc->key_size);
	memalloc_noio_restore(noio);
	memzero_explicit(buf, sizeof(buf));
	if (r) {
		/* The previous schedule may still be in there: the scrub must see it. */
		t->key_id = LC_TFM_DIRTY;
		lc_tfm_put(lc, t);
		return ERR_PTR(r);
	}
	t->key_id = id;
	t->seg = seg;

	/*
	 * A wipe erases the key, then scrubs every transform it finds holding
	 * a wiped key, waiting for busy ones.  If this transform was idle and
	 * clean when the scrub passed it, the erase came before this check
	 * (cache_lock orders the two): see it and unkey.
	 */
	rcu_read_lock();
	k = xa_load(&lc->keys, seg);
	r = k && k->id == id ? 0 : -ENOKEY;
	rcu_read_unlock();
	if (r) {
		noio = memalloc_noio_save();
		lc_tfm_scrub(lc, t);
		memalloc_noio_restore(noio);
		lc_tfm_put(lc, t);
		return ERR_PTR(r);
	}
	return t;
}

/* Does @t hold a key that is no longer loaded for its segment?  RCU or cache_lock. */
static bool lc_tfm_stale(struct lc_target *lc, struct lc_tfm *t)
{
	struct lc_key *k;
	bool stale;

	if (!t->key_id)
		return false;
	if (t->key_id == LC_TFM_DIRTY)
		return true;
	rcu_read_lock();
	k = xa_load(&lc->keys, t->seg);
	stale = !k || k->id != t->key_id;
	rcu_read_unlock();
	return stale;
}

/*
 * Make sure no transform still holds a key that was wiped or replaced:
 * called after the keys left the xarray, with msg_lock held (so only this
 * function frees transforms).  A stale transform in use is waited for (it
 * is finishing one bio slice's crypto, not waiting for a device); an
 * extra one is freed (which zeroes it), a reserve one re-keyed with junk.
 */
static void lc_pool_scrub(struct lc_target *lc)
{
	struct lc_tfm *t, *next;

	spin_lock(&lc->cache_lock);
	t = list_first_entry(&lc->cache_all, struct lc_tfm, all);
	while (&t->all != &lc->cache_all) {
		/* idle unkeyed extras go too: a wipe gives the memory back */
		if (!lc_tfm_stale(lc, t) && (t->key_id || t->reserve || t->busy)) {
			t = list_next_entry(t, all);
			continue;
		}
		if (t->busy) {	/* stale, in use: wait for it */
			spin_unlock(&lc->cache_lock);
			wait_event(lc->cache_wait, !READ_ONCE(t->busy));
			spin_lock(&lc->cache_lock);
			continue;	/* look at it again */
		}
		lc_cache_take_locked(lc, t);
		next = list_next_entry(t, all);
		if (!t->reserve) {
			list_del(&t->all);
			lc->cache_nr--;
			spin_unlock(&lc->cache_lock);
			lc_tfm_free(t);
			spin_lock(&lc->cache_lock);
		} else {
			spin_unlock(&lc->cache_lock);
			lc_tfm_scrub(lc, t);
			lc_tfm_put(lc, t);
			spin_lock(&lc->cache_lock);
		}
		t = next;
		cond_resched_lock(&lc->cache_lock);
	}
	spin_unlock(&lc->cache_lock);
}

bool lc_key_loaded(struct lc_target *lc, u32 seg)
{
	bool loaded;

	rcu_read_lock();
	loaded = xa_load(&lc->keys, seg);
	rcu_read_unlock();
	return loaded;
}

/*
 * Copy the payload of logon key <prefix><seg> into a new lc_key.  The
 * keyring reference is dropped before returning.
 */
static int lc_key_fetch(struct lc_target *lc, u32 seg, struct lc_key **out)
{
	const struct user_key_payload *ukp;
	struct lc_key *k;
	struct key *key;
	char *desc;
	int r;

	desc = kasprintf(GFP_KERNEL, "%s%u", lc->key_prefix, seg);
	if (!desc)
		return -ENOMEM;

	/* No callout info: search the caller's keyrings, never upcall. */
	key = request_key(&key_type_logon, desc, NULL);
	if (IS_ERR(key)) {
		r = PTR_ERR(key);
		if (r == -ENOKEY)
			DMERR_LIMIT("%s: key load: no logon key \"%s\" for segment %u",
				    lc->volume_id, desc, seg);
		else if (r == -EKEYREVOKED)
			DMERR_LIMIT("%s: key load: logon key \"%s\" for segment %u is revoked",
				    lc->volume_id, desc, seg);
		else if (r == -EKEYEXPIRED)
			DMERR_LIMIT("%s: key load: logon key \"%s\" for segment %u has expired",
				    lc->volume_id, desc, seg);
		else
			DMERR_LIMIT("%s: key load: cannot read key \"%s\" for segment %u (%d)",
				    lc->volume_id, desc, seg, r);
		goto out;
	}

	k = kmalloc(struct_size(k, bytes, lc->key_size), GFP_KERNEL);
	if (!k) {
		r = -ENOMEM;
		goto put;
	}

	down_read(&key->sem);
	ukp = user_key_payload_locked(key);
	if (!ukp) {
		r = -EKEYREVOKED;
		DMERR_LIMIT("%s: key load: logon key \"%s\" for segment %u is revoked",
			    lc->volume_id, desc, seg);
	} else if (ukp->datalen != lc->key_size) {
		r = -EINVAL;
		DMERR_LIMIT("%s: key load: key \"%s\" has %u bytes, the table says %u",
			    lc->volume_id, desc, ukp->datalen, lc->key_size);
	} else {
		memcpy(k->bytes, ukp->data, lc->key_size);
		k->id = atomic64_inc_return(&lc_key_ids);
		r = 0;
	}
	up_read(&key->sem);

	if (r)
		lc_key_free(k);
	else
		*out = k;
put:
	key_put(key);
out:
	kfree(desc);
	return r;
}

/*
 * Load the DEKs of segments @first..@last, all or nothing: every key is
 * fetched and checked before any is installed, so a failure leaves the
 * device exactly as it was.  A segment whose loaded key has the same bytes
 * keeps it; different bytes over a loaded key would turn the segment's
 * data into garbage without an error, so they are refused unless the
 * device is suspended.  Called with msg_lock held: nothing else changes
 * the xarray meanwhile.
 */
int lc_keys_load(struct lc_target *lc, u32 first, u32 last)
{
	bool replace = test_bit(LC_SUSPENDED, &lc->flags);
	u32 n = last - first + 1, i, added = 0, replaced = 0;
	struct lc_key **staged, **prev;
	int r = 0;

	staged = kvcalloc(2 * (size_t)n, sizeof(*staged), GFP_KERNEL);
	if (!staged)
		return -ENOMEM;
	prev = staged + n;

	for (i = 0; i < n; i++) {
		r = lc_key_fetch(lc, first + i, &staged[i]);
		if (r)
			goto free_staged;
		prev[i] = xa_load(&lc->keys, first + i);
		if (prev[i] && !crypto_memneq(prev[i]->bytes, staged[i]->bytes, lc->key_size)) {
			lc_key_free(staged[i]);		/* the same key: keep the loaded one */
			staged[i] = NULL;
		} else if (prev[i] && !replace) {
			DMERR_LIMIT("%s: key load: segment %u has another key: %s",
				    lc->volume_id, first + i, lc_replace_hint);
			r = -EBUSY;
			goto free_staged;
		}
		cond_resched();
	}

	for (i = 0; i < n; i++) {
		void *old;

		if (!staged[i])
			continue;
		old = xa_store(&lc->keys, first + i, staged[i], GFP_KERNEL);
		if (xa_is_err(old)) {
			r = xa_err(old);
			DMERR_LIMIT("%s: key load: out of memory at segment %u, nothing loaded",
				    lc->volume_id, first + i);
			goto rollback;
		}
	}
	for (i = 0; i < n; i++) {
		if (!staged[i])
			continue;
		if (prev[i]) {
			call_rcu(&prev[i]->rcu, lc_key_free_rcu);
			replaced++;
		} else {
			added++;
		}
	}
	atomic_add(added, &lc->keys_loaded);
	if (replaced)
		lc_pool_scrub(lc);	/* unkey transforms that hold a replaced key */
	kvfree(staged);
	return 0;

rollback:
	/*
	 * Put back what was there (those slots exist, so this cannot fail).
	 * Readers may already have found the new keys and keyed a transform
	 * with them: free after a grace period and scrub the pool.
	 */
	while (i--) {
		if (!staged[i])
			continue;
		xa_store(&lc->keys, first + i, prev[i], GFP_KERNEL);
		call_rcu(&staged[i]->rcu, lc_key_free_rcu);
		staged[i] = NULL;
	}
	lc_pool_scrub(lc);
free_staged:
	for (i = 0; i < n; i++)
		if (staged[i])
			lc_key_free(staged[i]);
	kvfree(staged);
	return r;
}

/*
 * Reload: copy the keys of the table @from (the live one, suspended) into
 * the new table @to for the segments both have.  Both msg_locks are held.
 * Runs while the device is suspended: no allocation may wait for its I/O.
 */
int lc_keys_copy(struct lc_target *to, struct lc_target *from)
{
	unsigned int noio = memalloc_noio_save();
	struct lc_key *k, *c;
	unsigned long idx;
	u32 added = 0;
	int r = 0;

	xa_for_each_range(&from->keys, idx, k, 0, to->nr_segments - 1) {
		if (xa_load(&to->keys, idx))
			continue;
		c = kmalloc(struct_size(c, bytes, to->key_size), GFP_KERNEL);
		if (!c) {
			r = -ENOMEM;
			break;
		}
		memcpy(c->bytes, k->bytes, to->key_size);
		c->id = atomic64_inc_return(&lc_key_ids);
		r = xa_err(xa_store(&to->keys, idx, c, GFP_KERNEL));
		if (r) {
			lc_key_free(c);
			break;
		}
		added++;
	}
	atomic_add(added, &to->keys_loaded);
	memalloc_noio_restore(noio);
	return r;
}

void lc_keys_wipe(struct lc_target *lc, u32 first, u32 last)
{
	struct lc_key *k;
	unsigned long idx;

	xa_for_each_range(&lc->keys, idx, k, first, last) {
		xa_erase(&lc->keys, idx);
		atomic_dec(&lc->keys_loaded);
		call_rcu(&k->rcu, lc_key_free_rcu);
		cond_resched();
	}
	lc_pool_scrub(lc);
}

/* Destructor: no I/O is possible any more. */
void lc_keys_destroy(struct lc_target *lc)
{
	struct lc_key *k;
	unsigned long idx;

	xa_for_each(&lc->keys, idx, k) {
		xa_erase(&lc->keys, idx);
		lc_key_free(k);
	}
	xa_destroy(&lc->keys);
	atomic_set(&lc->keys_loaded, 0);
}
