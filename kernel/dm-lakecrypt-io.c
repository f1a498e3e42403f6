// SPDX-License-Identifier: GPL-2.0
/*
 * dm-lakecrypt I/O path.
 *
 * dm core splits every bio at segment boundaries (max_io_len is the
 * segment size), so a bio here belongs to exactly one segment and is
 * encrypted with that segment's DEK, one crypto sector at a time, with a
 * plain64 IV counting 512-byte sectors from the start of the data area:
 * byte for byte what dm-crypt writes with the same cipher and key.
 *
 * Writes are encrypted into bounce pages and the clone is submitted;
 * reads are submitted as a clone and decrypted in place on completion.
 * Clones go out through dm_submit_bio_remap(), as dm-crypt's do.
 *
 * Where crypto runs is decided from what is known, not guessed:
 *  - a write is mapped by the task that submitted it (dm core calls ->map
 *    in process context; this target does not take REQ_NOWAIT bios, so
 *    never under rcu_read_lock), which may sleep;
 *  - a read completes in whatever context the backing device chooses:
 *    hard or soft interrupt, another driver's completion worker (loop,
 *    dm-delay, md), or, for a synchronous device such as brd, the task
 *    that submitted it.  Only that last case may decrypt inline; every
 *    other completion hands the read to the workqueue;
 *  - work items run in a workqueue, which may sleep.
 * So every crypto request may sleep (CRYPTO_TFM_REQ_MAY_SLEEP).
 *
 * Where crypto may run inline, the default is adaptive:
 *  - inline, for a lone stream of I/O (queue depth 1): no queueing, no
 *    context switch.  A bio of more than LC_MIN_CHUNK bytes is cut into up
 *    to LC_MAX_CHUNKS slices that other CPUs work on while the task does
 *    the first;
 *  - queued, when several bios are in flight (or the task holds a block
 *    plug, i.e. is submitting a batch): one work item per bio on an
 *    unbound workqueue, so the submitter goes on submitting and all CPUs
 *    encrypt.
 * The device stays queued for LC_QUEUED_HOLD after it last saw two bios in
 * flight; in inline mode one bio in LC_PROBE_EVERY is queued anyway, so
 * that a deeper queue shows up (inline, a synchronous device never has two
 * bios in flight).  Slices go to a per-CPU workqueue on explicitly chosen
 * CPUs: left to the scheduler, a worker woken by a busy task tends to
 * queue behind it on the same CPU.
 *
 * Optional table parameters pin this: no_read_workqueue/no_write_workqueue
 * (whole bio by the task, where allowed), no_inline_crypt (always queued),
 * same_cpu_crypt (never sliced; queued work stays on the queueing CPU).
 */
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/scatterlist.h>

#include "dm-lakecrypt.h"

static void lc_io_put(struct lc_target *lc)
{
	if (atomic_dec_and_test(&lc->inflight) && unlikely(test_bit(LC_REVOKED, &lc->flags)))
		wake_up(&lc->inflight_wait);
}

/* Wait until every bio this target accepted has completed. */
void lc_io_drain(struct lc_target *lc)
{
	wait_event(lc->inflight_wait, !atomic_read(&lc->inflight));
}

static void lc_io_end(struct lc_io *io, blk_status_t status)
{
	struct lc_target *lc = io->lc;
	struct bio *base = io->base_bio;

	if (unlikely(status)) {
		atomic64_inc(&lc->errors);
		base->bi_status = status;
	}
	lc_io_put(lc);
	bio_endio(base);
}

/*
 * A read completes here in the task that submitted it (a synchronous
 * device): that task may sleep, as it did when it called submit_bio().
 */
static inline bool lc_read_done_by_submitter(struct lc_io *io)
{
	return current == io->submitter && !in_interrupt() && !irqs_disabled();
}

/*
 * Run the slice @c through the cipher, one crypto sector at a time.  Reads
 * decrypt in place (iter_in and iter_out walk the same bio).
 */
static int lc_crypt(struct lc_chunk *c, struct lc_tfm *t, bool encrypt)
{
	struct lc_io *io = c->io;
	struct lc_target *lc = io->lc;
	struct bio *in = io->base_bio;
	struct bio *out = encrypt ? io->clone : io->base_bio;
	struct bvec_iter iter_in = c->iter_in, iter_out = c->iter_out;
	struct skcipher_request *req = t->req;
	unsigned int ss = lc->sector_size;
	sector_t sector = c->sector;
	struct scatterlist sg_in, sg_out;
	DECLARE_CRYPTO_WAIT(wait);
	int r;

	skcipher_request_set_callback(req, CRYPTO_TFM_REQ_MAY_SLEEP | CRYPTO_TFM_REQ_MAY_BACKLOG,
				      crypto_req_done, &wait);
	sg_init_table(&sg_in, 1);
	sg_init_table(&sg_out, 1);

	while (iter_in.bi_size) {
		struct bio_vec bv_in = bio_iter_iovec(in, iter_in);
		struct bio_vec bv_out = bio_iter_iovec(out, iter_out);

		/* A crypto sector must not straddle a page (dm-crypt has the same rule). */
		if (unlikely(bv_in.bv_len & (ss - 1) || bv_out.bv_len & (ss - 1)))
			return -EIO;

		sg_set_page(&sg_in, bv_in.bv_page, ss, bv_in.bv_offset);
		sg_set_page(&sg_out, bv_out.bv_page, ss, bv_out.bv_offset);

		memset(t->iv, 0, lc->iv_size);
		put_unaligned_le64(sector, t->iv);
		skcipher_request_set_crypt(req, &sg_in, &sg_out, ss, t->iv);
		r = crypto_wait_req(encrypt ? crypto_skcipher_encrypt(req) :
					      crypto_skcipher_decrypt(req), &wait);
		if (r)
			return r;

		bio_advance_iter(in, &iter_in, ss);
		bio_advance_iter(out, &iter_out, ss);
		sector += ss >> SECTOR_SHIFT;
		cond_resched();
	}
	return 0;
}

static void lc_write_done(struct lc_io *io);
static void lc_read_done(struct lc_io *io);

static void lc_chunk_run(struct lc_chunk *c)
{
	struct lc_io *io = c->io;
	struct lc_target *lc = io->lc;
	bool write = io->clone;
	struct lc_tfm *t;
	int r;

	t = lc_tfm_get(lc, io->seg);
	if (IS_ERR(t)) {
		r = PTR_ERR(t);
	} else {
		r = lc_crypt(c, t, write);
		lc_tfm_put(lc, t);
	}
	if (unlikely(r))
		cmpxchg(&io->error, 0, r);

	if (io->nr_chunks > 1 && !atomic_dec_and_test(&io->pending))
		return;
	if (write)
		lc_write_done(io);
	else
		lc_read_done(io);
}

static void lc_chunk_work(struct work_struct *work)
{
	lc_chunk_run(container_of(work, struct lc_chunk, work));
}

#define LC_QUEUED_HOLD	(HZ / 10)
#define LC_PROBE_EVERY	16		/* a power of two */

/* Should this bio's crypto be queued rather than done by this task? */
static bool lc_queue_crypto(struct lc_target *lc)
{
	if (current->plug || atomic_read(&lc->inflight) > 1) {
		WRITE_ONCE(lc->queued_until, jiffies + LC_QUEUED_HOLD);
		return true;
	}
	if (time_before(jiffies, READ_ONCE(lc->queued_until)))
		return true;
	return !(atomic_inc_return(&lc->probe) & (LC_PROBE_EVERY - 1));
}

/* The @k-th online CPU after @cpu, wrapping around. */
static int lc_cpu_after(int cpu, unsigned int k)
{
	while (k--) {
		cpu = cpumask_next(cpu, cpu_online_mask);
		if (cpu >= nr_cpu_ids)
			cpu = cpumask_first(cpu_online_mask);
	}
	return cpu;
}

/**
 * lc_crypt_bio() - encrypt (write) or decrypt (read) a bio.
 * @io: the bio's per-bio data; a write has its clone with bounce pages.
 * @inline_ok: the current task may do crypto itself (see the file header).
 *
 * Chooses inline, sliced or queued work per the optional parameters and
 * the adaptive rule; the last slice to finish completes the bio.
 */
static void lc_crypt_bio(struct lc_io *io, bool inline_ok)
{
	struct lc_target *lc = io->lc;
	struct bio *base = io->base_bio;
	unsigned int size = base->bi_iter.bi_size, off, len, i, n;
	bool pinned = test_bit(io->clone ? LC_NO_WRITE_WQ : LC_NO_READ_WQ, &lc->flags);
	bool same_cpu = test_bit(LC_SAME_CPU, &lc->flags);
	int cpu = raw_smp_processor_id();
	bool queued;

	if (!inline_ok)
		queued = true;
	else if (pinned)
		queued = false;
	else if (test_bit(LC_NO_INLINE, &lc->flags))
		queued = true;
	else
		queued = num_online_cpus() > 1 && lc_queue_crypto(lc);

	/* Queued: other bios keep the CPUs busy, so one work item per bio. */
	if (queued || pinned || same_cpu)
		n = 1;
	else
		n = min3(DIV_ROUND_UP(size, LC_MIN_CHUNK), num_online_cpus(),
			 (unsigned int)LC_MAX_CHUNKS);
	len = round_up(DIV_ROUND_UP(size, n), lc->sector_size);
	n = DIV_ROUND_UP(size, len);
	io->nr_chunks = n;
	atomic_set(&io->pending, n);

	for (i = 0, off = 0; i < n; i++, off += len) {
		struct lc_chunk *c = &io->chunks[i];
		unsigned int clen = min(len, size - off);

		c->io = io;
		c->sector = io->sector + (off >> SECTOR_SHIFT);
		c->iter_in = base->bi_iter;
		bio_advance_iter(base, &c->iter_in, off);
		c->iter_in.bi_size = clen;
		if (io->clone) {
			c->iter_out = io->clone->bi_iter;
			bio_advance_iter(io->clone, &c->iter_out, off);
			c->iter_out.bi_size = clen;
		} else {
			c->iter_out = c->iter_in;
		}
	}

	/* Queue the others first so they run while this task does slice 0. */
	for (i = queued ? 0 : 1; i < n; i++) {
		INIT_WORK(&io->chunks[i].work, lc_chunk_work);
		if (queued && same_cpu)
			queue_work_on(cpu, lc->wq, &io->chunks[i].work);
		else if (queued)
			queue_work(lc->uwq, &io->chunks[i].work);
		else
			queue_work_on(lc_cpu_after(cpu, i), lc->wq, &io->chunks[i].work);
	}
	if (!queued)
		lc_chunk_run(&io->chunks[0]);
}

static void lc_report_crypt_error(struct lc_io *io, bool write)
{
	struct lc_target *lc = io->lc;

	if (io->error == -ENOKEY)
		DMERR_LIMIT("%s: %s segment %u failed: its key was wiped", lc->volume_id,
			    write ? "write to" : "read of", io->seg);
	else
		DMERR_LIMIT("%s: %s of segment %u failed (%d)", lc->volume_id,
			    write ? "encryption" : "decryption", io->seg, io->error);
}

/* ---- reads ---- */

static void lc_read_done(struct lc_io *io)
{
	if (unlikely(io->error)) {
		/* Never hand ciphertext or half-decrypted data to the reader. */
		zero_fill_bio(io->base_bio);
		lc_report_crypt_error(io, false);
		lc_io_end(io, BLK_STS_IOERR);
		return;
	}
	lc_io_end(io, BLK_STS_OK);
}

static void lc_read_endio(struct bio *clone)
{
	struct lc_io *io = clone->bi_private;
	blk_status_t status = clone->bi_status;

	bio_put(clone);
	if (unlikely(status)) {
		zero_fill_bio(io->base_bio);
		lc_io_end(io, status);
		return;
	}
	lc_crypt_bio(io, lc_read_done_by_submitter(io));
}

static void lc_read(struct lc_io *io)
{
	struct lc_target *lc = io->lc;
	struct bio *clone;

	clone = bio_alloc_clone(lc->dev->bdev, io->base_bio, GFP_NOIO, &lc->bs);
	clone->bi_iter.bi_sector = lc->start + io->sector;
	clone->bi_private = io;
	clone->bi_end_io = lc_read_endio;
	dm_submit_bio_remap(io->base_bio, clone);
}

/* ---- writes ---- */

static void lc_free_pages(struct lc_target *lc, struct bio *clone)
{
	struct bio_vec *bv;
	struct bvec_iter_all iter_all;
	int n = 0;

	bio_for_each_segment_all(bv, clone, iter_all) {
		mempool_free(bv->bv_page, &lc->page_pool);
		n++;
	}
	atomic_sub(n, &lc->bounce_pages);
	if (wq_has_sleeper(&lc->bounce_wait))
		wake_up(&lc->bounce_wait);
}

static void lc_write_endio(struct bio *clone)
{
	struct lc_io *io = clone->bi_private;
	blk_status_t status = clone->bi_status;

	lc_free_pages(io->lc, clone);
	bio_put(clone);
	lc_io_end(io, status);
}

static void lc_write_done(struct lc_io *io)
{
	struct bio *clone = io->clone;

	if (unlikely(io->error)) {
		lc_report_crypt_error(io, true);
		lc_free_pages(io->lc, clone);
		bio_put(clone);
		lc_io_end(io, BLK_STS_IOERR);
		return;
	}
	dm_submit_bio_remap(io->base_bio, clone);
}

/* Count @nr more bounce pages if that stays within bounce_max. */
static bool lc_bounce_reserve(struct lc_target *lc, unsigned int nr)
{
	int old = atomic_read(&lc->bounce_pages);

	do {
		if (old + nr > lc->bounce_max)
			return false;
	} while (!atomic_try_cmpxchg(&lc->bounce_pages, &old, old + nr));
	return true;
}

/*
 * Bounce pages for a write, at most bounce_max per device in flight.  Try
 * without blocking first; if the device is at its bound or memory is
 * short, wait for pages to come back and retry with blocking allocations
 * while holding a mutex, so that two large writes never each hold half of
 * the pool's reserve.  Pages come back when writes complete, which never
 * waits for this mutex.
 */
static struct bio *lc_alloc_write_clone(struct lc_target *lc, struct bio *base)
{
	unsigned int size = base->bi_iter.bi_size;
	unsigned int nr_pages = DIV_ROUND_UP(size, PAGE_SIZE);
	gfp_t gfp = GFP_NOWAIT | __GFP_NOWARN;
	bool locked = false;
	struct bio *clone;
	unsigned int i;

	if (!lc_bounce_reserve(lc, nr_pages))
		goto slow;
again:
	clone = bio_alloc_bioset(lc->dev->bdev, nr_pages, base->bi_opf, GFP_NOIO, &lc->bs);
	for (i = 0; i < nr_pages; i++) {
		unsigned int len = min_t(unsigned int, size - i * PAGE_SIZE, PAGE_SIZE);
		struct page *page = mempool_alloc(&lc->page_pool, gfp);

		if (!page) {
			lc_free_pages(lc, clone);	/* and their count */
			atomic_sub(nr_pages - i, &lc->bounce_pages);
			bio_put(clone);
			goto slow;
		}
		__bio_add_page(clone, page, len, 0);
	}
	if (locked)
		mutex_unlock(&lc->page_alloc_lock);
	return clone;

slow:
	gfp = GFP_NOIO;
	mutex_lock(&lc->page_alloc_lock);
	locked = true;
	wait_event(lc->bounce_wait, lc_bounce_reserve(lc, nr_pages));
	goto again;
}

/* Called by ->map, in the task that submitted the bio: may sleep. */
static void lc_write(struct lc_io *io)
{
	struct lc_target *lc = io->lc;
	struct bio *base = io->base_bio;
	struct bio *clone;

	clone = lc_alloc_write_clone(lc, base);
	clone->bi_iter.bi_sector = lc->start + io->sector;
	clone->bi_ioprio = base->bi_ioprio;
	clone->bi_private = io;
	clone->bi_end_io = lc_write_endio;
	io->clone = clone;
	lc_crypt_bio(io, true);
}

/* ---- map ---- */

int lc_map(struct dm_target *ti, struct bio *bio)
{
	struct lc_target *lc = ti->private;
	struct lc_io *io;
	sector_t sector;

	atomic_inc(&lc->inflight);
	smp_mb__after_atomic();		/* pairs with revoke: set LC_REVOKED, then drain */
	if (unlikely(test_bit(LC_REVOKED, &lc->flags))) {
		DMERR_LIMIT("%s: I/O refused: the volume is revoked", lc->volume_id);
		goto kill;
	}

	/*
	 * Flushes, discards and empty bios (e.g. a FUA write without data)
	 * carry no data to encrypt.
	 */
	if (unlikely(bio->bi_opf & REQ_PREFLUSH || bio_op(bio) == REQ_OP_DISCARD ||
		     !bio_sectors(bio))) {
		lc_io_put(lc);
		bio_set_dev(bio, lc->dev->bdev);
		if (bio_sectors(bio))
			bio->bi_iter.bi_sector = lc->start +
						 dm_target_offset(ti, bio->bi_iter.bi_sector);
		return DM_MAPIO_REMAPPED;
	}
	if (unlikely(bio_op(bio) != REQ_OP_READ && bio_op(bio) != REQ_OP_WRITE))
		goto kill;

	if (unlikely(bio->bi_iter.bi_size > (BIO_MAX_VECS << PAGE_SHIFT)) &&
	    bio_data_dir(bio) == WRITE)
		dm_accept_partial_bio(bio, (BIO_MAX_VECS << PAGE_SHIFT) >> SECTOR_SHIFT);

	sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	if (unlikely(sector & ((lc->sector_size >> SECTOR_SHIFT) - 1) ||
		     bio->bi_iter.bi_size & (lc->sector_size - 1)))
		goto kill;

	io = dm_per_bio_data(bio, sizeof(struct lc_io));
	io->lc = lc;
	io->submitter = current;
	io->base_bio = bio;
	io->clone = NULL;
	io->sector = sector;
	io->seg = lc_segment(lc, sector);
	io->error = 0;

	if (unlikely(!lc_key_loaded(lc, io->seg))) {
		DMERR_LIMIT("%s: I/O to segment %u refused: no key loaded",
			    lc->volume_id, io->seg);
		goto kill;
	}

	if (bio_data_dir(bio) == READ) {
		atomic64_inc(&lc->reads);
		lc_read(io);
	} else {
		atomic64_inc(&lc->writes);
		lc_write(io);
	}
	return DM_MAPIO_SUBMITTED;

kill:
	atomic64_inc(&lc->errors);
	lc_io_put(lc);
	return DM_MAPIO_KILL;
}

int lc_io_init(struct lc_target *lc)
{
	struct dm_target *ti = lc->ti;
	int r;

	ti->per_io_data_size = sizeof(struct lc_io);

	r = bioset_init(&lc->bs, BIO_POOL_SIZE, 0, BIOSET_NEED_BVECS);
	if (r) {
		ti->error = "Cannot allocate bio set";
		return r;
	}
	r = mempool_init_page_pool(&lc->page_pool, BIO_MAX_VECS, 0);
	if (r) {
		ti->error = "Cannot allocate page pool";
		return r;
	}
	mutex_init(&lc->page_alloc_lock);
	atomic_set(&lc->bounce_pages, 0);
	init_waitqueue_head(&lc->bounce_wait);
	/*
	 * Bounce pages in flight: 2% of RAM, as dm-crypt allows all its
	 * devices together, but at least two of the largest writes.
	 */
	lc->bounce_max = max_t(unsigned long, 2 * BIO_MAX_VECS, totalram_pages() / 50);
	atomic_set(&lc->inflight, 0);
	init_waitqueue_head(&lc->inflight_wait);

	/* Named after the mapped device ("dm-3"): volume ids would be truncated. */
	lc->wq = alloc_workqueue("lakecrypt/%s", WQ_CPU_INTENSIVE | WQ_MEM_RECLAIM, 0,
				 dm_table_device_name(ti->table));
	lc->uwq = alloc_workqueue("lakecrypt-q/%s", WQ_CPU_INTENSIVE | WQ_MEM_RECLAIM | WQ_UNBOUND,
				  num_online_cpus(), dm_table_device_name(ti->table));
	if (!lc->wq || !lc->uwq) {
		ti->error = "Cannot allocate workqueue";
		return -ENOMEM;
	}
	return 0;
}

void lc_io_destroy(struct lc_target *lc)
{
	if (lc->wq)
		destroy_workqueue(lc->wq);
	if (lc->uwq)
		destroy_workqueue(lc->uwq);
	mempool_exit(&lc->page_pool);
	bioset_exit(&lc->bs);
}
