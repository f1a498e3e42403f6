/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-lakecrypt internals shared by the table/message code, the key store
 * and the I/O path.  The user-visible vocabulary lives in
 * include/uapi/linux/dm-lakecrypt.h.
 */
#ifndef DM_LAKECRYPT_H
#define DM_LAKECRYPT_H

#include <linux/device-mapper.h>
#include <linux/bio.h>
#include <linux/mempool.h>
#include <linux/xarray.h>
#include <linux/workqueue.h>
#include <crypto/skcipher.h>
#include <linux/dm-lakecrypt.h>

#include "dm-lakecrypt-compat.h"

#define DM_MSG_PREFIX "lakecrypt"

#define LC_MAX_IV_SIZE		32	/* adiantum has the largest IV */
#define LC_MAX_POOL		64	/* reserved crypto transforms per device, at most */
#define LC_CACHE_DEFAULT	1024	/* keyed transforms cached per device (key_cache) */
#define LC_CACHE_LIMIT		65536	/* key_cache, at most */
#define LC_MAX_CHUNKS		4	/* a large bio is encrypted by up to 4 CPUs */
#define LC_MIN_CHUNK		(64 << 10)	/* bytes */

/* lc_target.flags */
enum {
	LC_ALLOW_DISCARDS,
	LC_EPHEMERAL,
	LC_NO_READ_WQ,		/* no_read_workqueue */
	LC_NO_WRITE_WQ,		/* no_write_workqueue */
	LC_NO_INLINE,		/* no_inline_crypt */
	LC_SAME_CPU,		/* same_cpu_crypt */
	LC_REVOKED,
	LC_LIVE,		/* has been resumed: its keys are the volume's */
	LC_SUSPENDED,		/* between postsuspend and resume */
	LC_NEED_KEYS,		/* keys could not be carried over: resume refused */
};

enum lc_discard_state {
	LC_DISCARD_NONE,
	LC_DISCARD_PENDING,
	LC_DISCARD_DONE,
	LC_DISCARD_UNSUPPORTED,
	LC_DISCARD_FAILED,
};

/*
 * One loaded DEK.  Readers find it under RCU; it is zeroed before it is
 * freed.  @id is unique for the module's lifetime, so a transform that
 * already holds this key can skip setkey.
 */
struct lc_key {
	struct rcu_head rcu;
	u64 id;
	u8 bytes[];
};

/*
 * A crypto transform of the device's cache, its request, and the key it
 * holds: key_id 0 holds no DEK, LC_TFM_DIRTY may hold any (a setkey
 * failed).  A transform is used by one bio slice at a time (@busy); while
 * idle it is on the LRU list and, if keyed, in the hash of its segment.
 * Reserve transforms are allocated with the table and never freed before
 * it, so I/O never depends on an allocation to make progress; the others
 * are allocated by a work item a miss queues, up to key_cache, and freed
 * by a wipe.
 */
#define LC_TFM_DIRTY	U64_MAX

struct lc_tfm {
	struct list_head all;		/* lc->cache_all: every transform */
	struct list_head lru;		/* lc->cache_lru while idle */
	struct hlist_node hnode;	/* lc->cache_hash while idle and keyed */
	struct crypto_skcipher *tfm;
	struct skcipher_request *req;
	u64 key_id;
	u32 seg;			/* segment of key_id */
	bool busy;
	bool reserve;
	u8 iv[LC_MAX_IV_SIZE] __aligned(__alignof__(u64));
};

struct lc_target {
	struct dm_target *ti;
	struct mapped_device *md;	/* compared, never dereferenced */
	struct list_head node;		/* lc_targets: find the live table on reload */
	struct dm_dev *dev;
	sector_t start;			/* data area on dev */

	char *cipher_string;		/* as given in the table */
	char *alg_name;			/* crypto API name */
	char *key_prefix;
	char volume_id[LAKECRYPT_MAX_VOLUME_ID + 1];
	unsigned int key_size;
	unsigned int iv_size;
	unsigned int sector_size;	/* bytes */
	unsigned int seg_shift;		/* log2(segment sectors) */
	u32 nr_segments;
	unsigned long flags;

	/* Keys: xarray of struct lc_key, indexed by segment. */
	struct xarray keys;
	atomic_t keys_loaded;
	struct mutex msg_lock;		/* serialises key and revoke messages */

	/*
	 * Transform cache: keyed transforms by segment, bounded by cache_max,
	 * at least cache_min of them reserved (dm-lakecrypt-keys.c).
	 */
	spinlock_t cache_lock;
	struct list_head cache_all;
	struct list_head cache_lru;	/* idle: unkeyed first, then least recently used */
	struct hlist_head *cache_hash;
	unsigned int cache_hash_bits;
	wait_queue_head_t cache_wait;
	unsigned int cache_min;
	unsigned int cache_max;
	unsigned int cache_nr;		/* allocated */
	struct work_struct cache_grow;	/* allocates transforms: never in the I/O path */
	u64 cache_hits;
	u64 cache_misses;
	u64 cache_evictions;		/* misses that re-keyed a keyed transform */

	/* I/O */
	struct bio_set bs;
	mempool_t page_pool;
	struct mutex page_alloc_lock;	/* one blocking bounce allocation at a time */
	atomic_t bounce_pages;		/* bounce pages held by writes */
	unsigned int bounce_max;	/* ... at most */
	wait_queue_head_t bounce_wait;
	struct workqueue_struct *wq;	/* per-CPU: slices placed on chosen CPUs */
	struct workqueue_struct *uwq;	/* unbound: queued mode */
	struct work_struct revoke_work;	/* waits for bios in flight, discards */
	atomic_t inflight;
	wait_queue_head_t inflight_wait;
	atomic_t probe;			/* counts bios in inline mode */
	unsigned long queued_until;	/* jiffies: queued mode until then */

	atomic64_t reads;
	atomic64_t writes;
	atomic64_t errors;
	enum lc_discard_state discard_state;
};

struct lc_io;

/* A slice of a bio that one CPU encrypts or decrypts. */
struct lc_chunk {
	struct lc_io *io;
	struct work_struct work;
	struct bvec_iter iter_in;
	struct bvec_iter iter_out;
	sector_t sector;		/* first sector of the slice, data-area relative */
};

/* Per-bio data. */
struct lc_io {
	struct lc_target *lc;
	struct task_struct *submitter;	/* the task that mapped the bio */
	struct bio *base_bio;
	struct bio *clone;		/* writes: the ciphertext bio */
	sector_t sector;		/* relative to the data area */
	u32 seg;
	unsigned int nr_chunks;
	atomic_t pending;		/* chunks not finished yet */
	int error;			/* first error of any chunk */
	struct lc_chunk chunks[LC_MAX_CHUNKS];
};

static inline u32 lc_segment(struct lc_target *lc, sector_t sector)
{
	return sector >> lc->seg_shift;
}

/* dm-lakecrypt-keys.c */
extern unsigned int lc_key_cache;
int lc_pool_init(struct lc_target *lc);
void lc_pool_destroy(struct lc_target *lc);
void lc_pool_stats(struct lc_target *lc, unsigned int *nr, u64 *hits, u64 *misses,
		   u64 *evictions);
struct lc_tfm *lc_tfm_get(struct lc_target *lc, u32 seg);
void lc_tfm_put(struct lc_target *lc, struct lc_tfm *t);
bool lc_key_loaded(struct lc_target *lc, u32 seg);
int lc_keys_load(struct lc_target *lc, u32 first, u32 last);
void lc_keys_wipe(struct lc_target *lc, u32 first, u32 last);
int lc_keys_copy(struct lc_target *to, struct lc_target *from);
void lc_keys_destroy(struct lc_target *lc);

/* dm-lakecrypt-io.c */
int lc_io_init(struct lc_target *lc);
void lc_io_destroy(struct lc_target *lc);
int lc_map(struct dm_target *ti, struct bio *bio);
void lc_io_drain(struct lc_target *lc);

#endif /* DM_LAKECRYPT_H */
