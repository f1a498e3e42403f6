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
#include <linux/slab.h>
#include <keys/user-type.h>

#include "dm-lakecrypt.h"

static atomic64_t lc_key_ids = ATOMIC64_INIT(0);

static void lc_key_free(struct lc_key *k)
{
	kfree_sensitive(k);	/* zeroes the whole allocation */
}

static void lc_key_free_rcu(struct rcu_head *rcu)
{
	lc_key_free(container_of(rcu, struct lc_key, rcu));
}

/* Key a transform with throwaway bytes so it no longer holds a DEK. */
static void lc_tfm_scrub(struct lc_target *lc, struct lc_tfm *t)
{
	u8 junk[LAKECRYPT_MAX_KEY_SIZE];

	if (!t->key_id)
		return;
	get_random_bytes(junk, lc->key_size);
	/* Can only fail for a bad key size, which the constructor ruled out. */
	crypto_skcipher_setkey(t->tfm, junk, lc->key_size);
	memzero_explicit(junk, sizeof(junk));
	t->key_id = 0;
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

		t->tfm = crypto_alloc_skcipher(lc->alg_name, 0, 0);
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
		t->key_id = 0;
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
 * device exactly as it was.
 */
int lc_keys_load(struct lc_target *lc, u32 first, u32 last)
{
	u32 n = last - first + 1, i, added = 0;
	struct lc_key **staged;
	int r = 0;

	staged = kvcalloc(n, sizeof(*staged), GFP_KERNEL);
	if (!staged)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		r = lc_key_fetch(lc, first + i, &staged[i]);
		if (r)
			goto free_staged;
		cond_resched();
	}

	/* Swap in; staged[] now collects the keys being replaced. */
	for (i = 0; i < n; i++) {
		void *old = xa_store(&lc->keys, first + i, staged[i], GFP_KERNEL);

		if (xa_is_err(old)) {
			r = xa_err(old);
			DMERR_LIMIT("%s: key load: out of memory at segment %u, nothing loaded",
				    lc->volume_id, first + i);
			/* Put back what was there; those slots exist, so this cannot fail. */
			while (i--) {
				struct lc_key *mine = xa_store(&lc->keys, first + i, staged[i],
							       GFP_KERNEL);
				lc_key_free(mine);
				staged[i] = NULL;
			}
			goto free_staged;
		}
		if (!old)
			added++;
		staged[i] = old;
	}
	atomic_add(added, &lc->keys_loaded);

	/* Replaced keys: free after readers are done, and unkey the pool. */
	if (added != n) {
		for (i = 0; i < n; i++)
			if (staged[i])
				call_rcu(&staged[i]->rcu, lc_key_free_rcu);
		lc_pool_scrub(lc);
	}
	kvfree(staged);
	return 0;

free_staged:
	for (i = 0; i < n; i++)
		if (staged[i])
			lc_key_free(staged[i]);
	kvfree(staged);
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
