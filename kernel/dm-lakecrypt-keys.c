// SPDX-License-Identifier: GPL-2.0
/*
 * dm-lakecrypt key store: one DEK per segment, taken from logon keys in the
 * kernel keyring, and a bounded pool of crypto transforms shared by all
 * segments.
 *
 * A loaded key costs one small allocation (struct lc_key) and its xarray
 * slot; no keyring reference is kept.  A transform is keyed on demand
 * for the segment a bio belongs to and remembers which key it holds, so
 * I/O that stays in one segment pays setkey once.
 */
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

static struct crypto_skcipher *lc_alloc_tfm(struct lc_target *lc)
{
	/* As dm-crypt: no implementation that allocates memory per request. */
	return crypto_alloc_skcipher(lc->alg_name, 0, CRYPTO_ALG_ALLOCATES_MEMORY);
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

int lc_pool_init(struct lc_target *lc)
{
	unsigned int i;

	lc->pool_size = clamp(2 * num_possible_cpus(), 4U, (unsigned int)LC_MAX_POOL);
	lc->pool = kcalloc(lc->pool_size, sizeof(*lc->pool), GFP_KERNEL);
	if (!lc->pool)
		return -ENOMEM;
	spin_lock_init(&lc->pool_lock);
	INIT_LIST_HEAD(&lc->pool_free);
	init_waitqueue_head(&lc->pool_wait);

	for (i = 0; i < lc->pool_size; i++) {
		struct lc_tfm *t = &lc->pool[i];

		t->tfm = lc_alloc_tfm(lc);
		if (IS_ERR(t->tfm)) {
			int r = PTR_ERR(t->tfm);

			t->tfm = NULL;
			return r;
		}
		t->req = skcipher_request_alloc(t->tfm, GFP_KERNEL);
		if (!t->req)
			return -ENOMEM;
		list_add_tail(&t->list, &lc->pool_free);
	}
	return 0;
}

void lc_pool_destroy(struct lc_target *lc)
{
	unsigned int i;

	if (!lc->pool)
		return;
	for (i = 0; i < lc->pool_size; i++) {
		skcipher_request_free(lc->pool[i].req);		/* kfree_sensitive */
		if (lc->pool[i].tfm)
			crypto_free_skcipher(lc->pool[i].tfm);	/* kfree_sensitive */
	}
	kfree(lc->pool);
	lc->pool = NULL;
}

/* Take a free transform, preferring one that already holds key @id. */
static struct lc_tfm *lc_pool_take(struct lc_target *lc, u64 id)
{
	struct lc_tfm *t;

	for (;;) {
		spin_lock(&lc->pool_lock);
		if (!list_empty(&lc->pool_free))
			break;
		spin_unlock(&lc->pool_lock);
		wait_event(lc->pool_wait, !list_empty_careful(&lc->pool_free));
	}
	list_for_each_entry(t, &lc->pool_free, list)
		if (t->key_id == id)
			goto found;
	t = list_first_entry(&lc->pool_free, struct lc_tfm, list);
found:
	list_del(&t->list);
	spin_unlock(&lc->pool_lock);
	return t;
}

void lc_tfm_put(struct lc_target *lc, struct lc_tfm *t)
{
	spin_lock(&lc->pool_lock);
	list_add_tail(&t->list, &lc->pool_free);
	spin_unlock(&lc->pool_lock);
	if (wq_has_sleeper(&lc->pool_wait))
		wake_up(&lc->pool_wait);
}

/*
 * Return a transform keyed with the DEK of segment @seg, or
 * ERR_PTR(-ENOKEY) if that segment has no key.  May sleep.
 */
struct lc_tfm *lc_tfm_get(struct lc_target *lc, u32 seg)
{
	u8 buf[LAKECRYPT_MAX_KEY_SIZE];
	struct lc_key *k;
	struct lc_tfm *t;
	u64 id;
	int r;

	rcu_read_lock();
	k = xa_load(&lc->keys, seg);
	id = k ? k->id : 0;
	rcu_read_unlock();
	if (!id)
		return ERR_PTR(-ENOKEY);

	t = lc_pool_take(lc, id);
	if (t->key_id == id)
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

	r = crypto_skcipher_setkey(t->tfm, buf, lc->key_size);
	memzero_explicit(buf, sizeof(buf));
	if (r) {
		/* The previous schedule may still be in there: the scrub must see it. */
		t->key_id = LC_TFM_DIRTY;
		lc_tfm_put(lc, t);
		return ERR_PTR(r);
	}
	t->key_id = id;
	return t;
}

/* Make sure no transform still holds a key that was wiped or replaced. */
static void lc_pool_scrub(struct lc_target *lc)
{
	struct lc_tfm **held;
	unsigned int i;

	held = kcalloc(lc->pool_size, sizeof(*held), GFP_KERNEL | __GFP_NOFAIL);
	for (i = 0; i < lc->pool_size; i++) {
		held[i] = lc_pool_take(lc, 0);
		lc_tfm_scrub(lc, held[i]);
	}
	for (i = 0; i < lc->pool_size; i++)
		lc_tfm_put(lc, held[i]);
	kfree(held);
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
