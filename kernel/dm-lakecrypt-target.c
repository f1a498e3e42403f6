// SPDX-License-Identifier: GPL-2.0
/*
 * dm-lakecrypt: per-segment encryption with keys from the kernel keyring,
 * and a revoke kill switch.  Documentation/admin-guide/dm-lakecrypt.rst
 * describes the table line, messages and status; the words used here are
 * defined once in include/uapi/linux/dm-lakecrypt.h.
 *
 * This file: table line, messages, status, revoke, module glue.
 */
#include <linux/ctype.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>

#include "dm-lakecrypt.h"

/*
 * A plain decimal number no larger than @max.  kstrtoull() alone would
 * also take a leading '+' and a trailing newline; sscanf() wraps.
 */
static int lc_parse_number(const char *s, u64 max, u64 *v)
{
	const char *p;
	int r;

	if (!*s)
		return -EINVAL;
	for (p = s; *p; p++)
		if (!isdigit(*p))
			return -EINVAL;
	r = kstrtoull(s, 10, v);
	if (r)
		return r;
	return *v > max ? -ERANGE : 0;
}

/* Every lakecrypt target, so that a new table can find the live one. */
static LIST_HEAD(lc_targets);
static DEFINE_MUTEX(lc_targets_lock);

static void lc_revoke_work(struct work_struct *work);

static bool lc_valid_volume_id(const char *id)
{
	size_t len = strlen(id), i;

	if (!len || len > LAKECRYPT_MAX_VOLUME_ID)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum(id[i]) && id[i] != '.' && id[i] != '_' && id[i] != '-')
			return false;
	return true;
}

/*
 * <cipher>: "<cipher>-<chainmode>-plain64" (dm-crypt syntax) or
 * "capi:<crypto API name>-plain64".  Sets lc->alg_name.
 */
static int lc_parse_cipher(struct lc_target *lc, const char *spec, char **error)
{
	const char *iv;
	char *copy, *tmp, *cipher, *chain;

	lc->cipher_string = kstrdup(spec, GFP_KERNEL);
	if (!lc->cipher_string)
		goto nomem;

	if (!strncmp(spec, "capi:", 5)) {
		const char *alg = spec + 5, *dash = strrchr(alg, '-');

		if (!dash || dash == alg) {
			*error = "Invalid cipher: expected capi:<algorithm>-plain64";
			return -EINVAL;
		}
		lc->alg_name = kstrndup(alg, dash - alg, GFP_KERNEL);
		if (!lc->alg_name)
			goto nomem;
		iv = dash + 1;
	} else {
		copy = kstrdup(spec, GFP_KERNEL);
		if (!copy)
			goto nomem;
		tmp = copy;
		cipher = strsep(&tmp, "-");
		chain = strsep(&tmp, "-");
		if (!chain || !tmp || !*cipher || !*chain) {
			kfree(copy);
			*error = "Invalid cipher: expected <cipher>-<chainmode>-plain64";
			return -EINVAL;
		}
		if (strchr(cipher, ':')) {
			kfree(copy);
			*error = "Invalid cipher: <cipher>:<keycount> is not supported";
			return -EINVAL;
		}
		lc->alg_name = kasprintf(GFP_KERNEL, "%s(%s)", chain, cipher);
		iv = spec + (tmp - copy);
		kfree(copy);
		if (!lc->alg_name)
			goto nomem;
	}

	if (strcmp(iv, LAKECRYPT_CIPHER_IV)) {
		*error = strchr(iv, ':') ?
			"Invalid cipher: IV options are not supported, use plain64" :
			"Invalid cipher: the IV mode must be plain64";
		return -EINVAL;
	}
	return 0;
nomem:
	*error = "Cannot allocate cipher name";
	return -ENOMEM;
}

/* <key>: ":<key_size>:logon:<key_prefix>" (dm-crypt's keyring syntax). */
static int lc_parse_key(struct lc_target *lc, const char *spec, char **error)
{
	char *copy, *tmp, *size, *type, *prefix;
	int r = -EINVAL;
	u64 key_size;

	if (spec[0] != ':') {
		*error = "Invalid key: expected :<key_size>:logon:<key_prefix>";
		return -EINVAL;
	}
	copy = kstrdup(spec + 1, GFP_KERNEL);
	if (!copy) {
		*error = "Cannot allocate key description";
		return -ENOMEM;
	}
	tmp = copy;
	size = strsep(&tmp, ":");
	type = strsep(&tmp, ":");
	prefix = tmp;

	if (!type || !prefix) {
		*error = "Invalid key: expected :<key_size>:logon:<key_prefix>";
	} else if (lc_parse_number(size, LAKECRYPT_MAX_KEY_SIZE, &key_size) || !key_size) {
		*error = "Invalid key size: expected a decimal number from 1 to 128 (bytes)";
	} else if (strcmp(type, LAKECRYPT_KEY_TYPE)) {
		*error = "Invalid key type: segment keys must be logon keys";
	} else if (!*prefix) {
		*error = "Invalid key prefix: empty";
	} else if (strlen(prefix) > LAKECRYPT_MAX_KEY_PREFIX) {
		*error = "Invalid key prefix: longer than 128 characters";
	} else if (!strchr(prefix, ':') || prefix[0] == ':') {
		*error = "Invalid key prefix: logon key descriptions need a <service>: prefix";
	} else if (prefix[strlen(prefix) - 1] != ':') {
		/* else "p:1" + "10" and "p:11" + "0" would name the same key */
		*error = "Invalid key prefix: must end with ':'";
	} else {
		lc->key_size = key_size;
		lc->key_prefix = kstrdup(prefix, GFP_KERNEL);
		if (lc->key_prefix) {
			r = 0;
		} else {
			*error = "Cannot allocate key prefix";
			r = -ENOMEM;
		}
	}
	kfree(copy);
	return r;
}

static int lc_parse_features(struct lc_target *lc, struct dm_arg_set *as, char **error)
{
	static const struct {
		const char *name;
		int bit;
	} flags[] = {
		{ LAKECRYPT_OPT_ALLOW_DISCARDS, LC_ALLOW_DISCARDS },
		{ LAKECRYPT_OPT_EPHEMERAL, LC_EPHEMERAL },
		{ LAKECRYPT_OPT_NO_READ_WORKQUEUE, LC_NO_READ_WQ },
		{ LAKECRYPT_OPT_NO_WRITE_WORKQUEUE, LC_NO_WRITE_WQ },
		{ LAKECRYPT_OPT_NO_INLINE_CRYPT, LC_NO_INLINE },
		{ LAKECRYPT_OPT_SAME_CPU_CRYPT, LC_SAME_CPU },
	};
	bool have_ss = false;
	u64 argc, ss;
	unsigned int i;

	if (!as->argc)
		return 0;
	if (lc_parse_number(dm_shift_arg(as), LAKECRYPT_MAX_OPT_PARAMS, &argc)) {
		*error = "Invalid <#opt_params>: expected a decimal number from 0 to 7";
		return -EINVAL;
	}
	if (argc > as->argc) {
		*error = "Invalid <#opt_params>: more than the optional parameters that follow";
		return -EINVAL;
	}

	while (argc--) {
		const char *arg = dm_shift_arg(as);

		for (i = 0; i < ARRAY_SIZE(flags); i++)
			if (!strcasecmp(arg, flags[i].name))
				break;
		if (i < ARRAY_SIZE(flags)) {
			if (test_and_set_bit(flags[i].bit, &lc->flags)) {
				*error = "Duplicate optional parameter (each may be given once)";
				return -EINVAL;
			}
		} else if (!strncasecmp(arg, LAKECRYPT_OPT_SECTOR_SIZE ":",
					sizeof(LAKECRYPT_OPT_SECTOR_SIZE))) {
			if (have_ss) {
				*error = "Duplicate optional parameter: sector_size";
				return -EINVAL;
			}
			arg += sizeof(LAKECRYPT_OPT_SECTOR_SIZE);
			if (lc_parse_number(arg, LAKECRYPT_MAX_SECTOR_SIZE, &ss) ||
			    ss < LAKECRYPT_MIN_SECTOR_SIZE || !is_power_of_2(ss)) {
				*error = "Invalid sector_size: expected 512, 1024, 2048 or 4096";
				return -EINVAL;
			}
			lc->sector_size = ss;
			have_ss = true;
		} else {
			*error = "Unknown optional parameter (see dm-lakecrypt.rst)";
			return -EINVAL;
		}
	}
	if (test_bit(LC_NO_INLINE, &lc->flags) &&
	    (test_bit(LC_NO_READ_WQ, &lc->flags) || test_bit(LC_NO_WRITE_WQ, &lc->flags))) {
		*error = "Conflicting optional parameters: no_inline_crypt and no_*_workqueue";
		return -EINVAL;
	}
	return 0;
}

/* Check that the cipher exists, takes a plain64 IV and the key size. */
static int lc_check_cipher(struct lc_target *lc, char **error)
{
	struct crypto_skcipher *tfm = list_first_entry(&lc->cache_all, struct lc_tfm, all)->tfm;
	u8 key[LAKECRYPT_MAX_KEY_SIZE];
	int r;

	lc->iv_size = crypto_skcipher_ivsize(tfm);
	if (lc->iv_size < sizeof(u64)) {
		*error = "Invalid cipher: plain64 needs a mode with an IV of 8 bytes or more";
		return -EINVAL;
	}
	if (lc->iv_size > LC_MAX_IV_SIZE) {
		*error = "Invalid cipher: IV larger than 32 bytes";
		return -EINVAL;
	}
	if (crypto_skcipher_blocksize(tfm) == 1) {
		/* ctr, ofb, cfb, chacha20: rewriting a sector reuses its keystream */
		*error = "Invalid cipher: stream modes (ctr, ofb, cfb, chacha20) are refused";
		return -EINVAL;
	}
	if (lc->sector_size % crypto_skcipher_blocksize(tfm)) {
		*error = "Invalid sector_size: not a multiple of the cipher block size";
		return -EINVAL;
	}
	get_random_bytes(key, lc->key_size);
	r = crypto_skcipher_setkey(tfm, key, lc->key_size);
	memzero_explicit(key, sizeof(key));
	if (r) {
		*error = "Invalid key size for this cipher";
		return -EINVAL;
	}
	return 0;
}

static void lc_dtr(struct dm_target *ti)
{
	struct lc_target *lc = ti->private;

	if (!lc)
		return;
	mutex_lock(&lc_targets_lock);
	if (lc->md)
		list_del(&lc->node);
	mutex_unlock(&lc_targets_lock);
	flush_work(&lc->revoke_work);	/* waits for the backing device */
	lc_io_destroy(lc);
	lc_pool_destroy(lc);
	lc_keys_destroy(lc);
	if (lc->dev)
		dm_put_device(ti, lc->dev);
	kfree(lc->cipher_string);
	kfree(lc->alg_name);
	kfree(lc->key_prefix);
	kfree(lc);
}

static const char lc_load_then_resume[] = "load them with key load, then resume";

/* Why @b cannot take over the keys of @a, or NULL if it can. */
static const char *lc_mismatch(struct lc_target *a, struct lc_target *b)
{
	static const char * const why[] = {
		"Table differs from the live table of this volume in key prefix: wipe its keys first",
		"Table differs from the live table of this volume in cipher: wipe its keys first",
		"Table differs from the live table of this volume in key size: wipe its keys first",
		"Table differs from the live table of this volume in segment size: wipe its keys first",
		"Table differs from the live table of this volume in sector_size: wipe its keys first",
	};

	if (strcmp(a->key_prefix, b->key_prefix))
		return why[0];
	if (strcmp(a->alg_name, b->alg_name))
		return why[1];
	if (a->key_size != b->key_size)
		return why[2];
	if (a->seg_shift != b->seg_shift)
		return why[3];
	if (a->sector_size != b->sector_size)
		return why[4];
	return NULL;
}

/*
 * The live table's target of the same volume on the same mapped device,
 * if any: one that was resumed, or whose resume was refused for want of
 * keys (the device is then suspended with it).  Called with
 * lc_targets_lock held.
 */
static struct lc_target *lc_find_live(struct lc_target *lc, struct mapped_device *md)
{
	struct lc_target *o;

	list_for_each_entry(o, &lc_targets, node)
		if (o != lc && o->md == md && o->ti->table != lc->ti->table &&
		    (test_bit(LC_LIVE, &o->flags) || test_bit(LC_NEED_KEYS, &o->flags)) &&
		    !strcmp(o->volume_id, lc->volume_id))
			return o;
	return NULL;
}

/*
 * At table load: refuse a table of the same volume that could not take
 * over the live table's keys, while the live table still serves.
 */
static int lc_check_live_table(struct lc_target *lc)
{
	const char *why = NULL;
	struct lc_target *o;

	mutex_lock(&lc_targets_lock);
	o = lc_find_live(lc, dm_table_get_md(lc->ti->table));
	if (o && atomic_read(&o->keys_loaded))
		why = lc_mismatch(o, lc);
	mutex_unlock(&lc_targets_lock);
	if (why) {
		DMERR("%s: reload refused: the live table holds keys of this volume",
		      lc->volume_id);
		lc->ti->error = (char *)why;
		return -EINVAL;
	}
	return 0;
}

/*
 * A table being resumed for the first time takes over the keys of the live
 * table of the same volume (suspended by now, destroyed after this resume),
 * so that I/O never meets a table without keys.  If that is impossible the
 * resume is refused; dm core then keeps the device suspended with this
 * table, and "key load" followed by resume brings it back.
 */
static int lc_preresume(struct dm_target *ti)
{
	struct lc_target *lc = ti->private;
	const char *why;
	struct lc_target *o;
	int r = 0;

	if (test_bit(LC_LIVE, &lc->flags))
		return 0;
	/*
	 * The table found is the one this resume swapped out: only this
	 * resume destroys it, after preresume, so it stays valid unlocked.
	 */
	mutex_lock(&lc_targets_lock);
	o = lc_find_live(lc, lc->md);
	mutex_unlock(&lc_targets_lock);
	if (o) {
		/* Its revoke (and discard) must be over before this table writes. */
		flush_work(&o->revoke_work);
		mutex_lock(&o->msg_lock);
		mutex_lock(&lc->msg_lock);
		if (test_bit(LC_NEED_KEYS, &o->flags))
			set_bit(LC_NEED_KEYS, &lc->flags);	/* still waiting for keys */
		why = atomic_read(&o->keys_loaded) ? lc_mismatch(o, lc) : NULL;
		if (why) {
			DMERR("%s: resume refused: keys cannot be carried over: %s",
			      lc->volume_id, why);
			r = -EINVAL;
		} else {
			r = lc_keys_copy(lc, o);
			if (r)
				DMERR("%s: resume refused: cannot copy the keys (%d): %s",
				      lc->volume_id, r, lc_load_then_resume);
		}
		if (r)
			set_bit(LC_NEED_KEYS, &lc->flags);
		mutex_unlock(&lc->msg_lock);
		mutex_unlock(&o->msg_lock);
	}
	if (!r && test_bit(LC_NEED_KEYS, &lc->flags)) {
		if (!atomic_read(&lc->keys_loaded)) {
			DMERR("%s: resume refused: keys not carried over from the old table: %s",
			      lc->volume_id, lc_load_then_resume);
			return -ENOKEY;
		}
		clear_bit(LC_NEED_KEYS, &lc->flags);
	}
	return r;
}

static void lc_postsuspend(struct dm_target *ti)
{
	struct lc_target *lc = ti->private;

	set_bit(LC_SUSPENDED, &lc->flags);
}

static void lc_resume(struct dm_target *ti)
{
	struct lc_target *lc = ti->private;

	set_bit(LC_LIVE, &lc->flags);
	clear_bit(LC_SUSPENDED, &lc->flags);
}

/*
 * Construct a lakecrypt mapping:
 *   <cipher> <key> <segment_sectors> <device> <offset> <volume_id>
 *   [<#opt_params> <opt_params>...]
 * e.g.
 *   aes-xts-plain64 :64:logon:lakecrypt:vol1: 2048 /dev/sdb 8192 vol1 1 allow_discards
 * No key is loaded here: "key load" messages do that.
 */
static int lc_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	const char *cipher, *key, *seg, *path, *off, *volume_id;
	u64 seg_sectors, offset, nr_segments;
	struct lc_target *lc;
	int r;

	if (argc < 6) {
		ti->error = "Not enough arguments (see dm-lakecrypt.rst for the table line)";
		return -EINVAL;
	}
	cipher = dm_shift_arg(&as);
	key = dm_shift_arg(&as);
	seg = dm_shift_arg(&as);
	path = dm_shift_arg(&as);
	off = dm_shift_arg(&as);
	volume_id = dm_shift_arg(&as);

	lc = kzalloc(sizeof(*lc), GFP_KERNEL);
	if (!lc) {
		ti->error = "Cannot allocate lakecrypt context";
		return -ENOMEM;
	}
	ti->private = lc;
	lc->ti = ti;
	lc->sector_size = LAKECRYPT_MIN_SECTOR_SIZE;
	xa_init(&lc->keys);
	mutex_init(&lc->msg_lock);
	INIT_WORK(&lc->revoke_work, lc_revoke_work);

	r = lc_parse_cipher(lc, cipher, &ti->error);
	if (r)
		goto bad;
	r = lc_parse_key(lc, key, &ti->error);
	if (r)
		goto bad;

	r = -EINVAL;
	if (lc_parse_number(seg, 1ULL << 31, &seg_sectors) ||
	    seg_sectors < LAKECRYPT_MIN_SEGMENT_SECTORS || !is_power_of_2(seg_sectors)) {
		ti->error = "Invalid <segment_sectors>: expected a decimal power of two, 8 to 2^31";
		goto bad;
	}
	lc->seg_shift = __ffs64(seg_sectors);

	if (lc_parse_number(off, (sector_t)-1 - ti->len, &offset)) {
		ti->error = "Invalid <offset>: expected decimal sectors, offset + length < 2^64";
		goto bad;
	}
	lc->start = offset;

	if (!lc_valid_volume_id(volume_id)) {
		ti->error = "Invalid volume id: expected 1 to 64 characters from A-Z a-z 0-9 . _ -";
		goto bad;
	}
	strscpy(lc->volume_id, volume_id, sizeof(lc->volume_id));

	r = lc_parse_features(lc, &as, &ti->error);
	if (r)
		goto bad;
	r = -EINVAL;
	if (as.argc) {
		ti->error = "Too many arguments after the feature arguments";
		goto bad;
	}

	if (ti->len & ((lc->sector_size >> SECTOR_SHIFT) - 1)) {
		ti->error = "Device length is not a multiple of sector_size";
		goto bad;
	}
	if (lc->start & ((lc->sector_size >> SECTOR_SHIFT) - 1)) {
		ti->error = "Data offset is not a multiple of sector_size";
		goto bad;
	}
	nr_segments = DIV_ROUND_UP_ULL(ti->len, seg_sectors);
	if (nr_segments > LAKECRYPT_MAX_SEGMENTS) {
		ti->error = "Too many segments: at most 1048576 per device, use larger segments";
		goto bad;
	}
	lc->nr_segments = nr_segments;

	r = dm_get_device(ti, path, dm_table_get_mode(ti->table), &lc->dev);
	if (r) {
		ti->error = "Device lookup failed";
		goto bad;
	}

	r = lc_pool_init(lc);
	if (r) {
		ti->error = r == -ENOENT ?
			"Cipher not available in this kernel (check the name or load its module)" :
			"Cannot allocate crypto transforms";
		goto bad;
	}
	r = lc_check_cipher(lc, &ti->error);
	if (r)
		goto bad;

	r = lc_io_init(lc);
	if (r)
		goto bad;

	r = lc_check_live_table(lc);
	if (r)
		goto bad;

	r = dm_set_target_max_io_len(ti, seg_sectors);
	if (r)
		goto bad;

	ti->num_flush_bios = 1;
	ti->num_discard_bios = test_bit(LC_ALLOW_DISCARDS, &lc->flags) ? 1 : 0;
	ti->limit_swap_bios = true;		/* as dm-crypt: bounce pages for swap */
	ti->accounts_remapped_io = true;	/* clones go out by dm_submit_bio_remap() */

	mutex_lock(&lc_targets_lock);
	lc->md = dm_table_get_md(ti->table);
	list_add(&lc->node, &lc_targets);
	mutex_unlock(&lc_targets_lock);
	return 0;
bad:
	lc_dtr(ti);
	ti->private = NULL;
	return r;
}

/* "all", "<n>" or "<first>-<last>" */
static int lc_parse_range(struct lc_target *lc, const char *arg, u32 *first, u32 *last)
{
	u64 a, b = 0;
	const char *dash;
	char buf[24];

	if (!strcasecmp(arg, LAKECRYPT_MSG_RANGE_ALL)) {
		*first = 0;
		*last = lc->nr_segments - 1;
		return 0;
	}
	dash = strchr(arg, '-');
	if (dash) {
		if (dash - arg >= sizeof(buf))
			goto bad;
		memcpy(buf, arg, dash - arg);
		buf[dash - arg] = '\0';
		if (lc_parse_number(buf, U32_MAX, &a) || lc_parse_number(dash + 1, U32_MAX, &b))
			goto bad;
	} else {
		if (lc_parse_number(arg, U32_MAX, &a))
			goto bad;
		b = a;
	}
	*first = a;
	*last = b;
	if (*first > *last) {
		DMERR_LIMIT("%s: message: range %u-%u is reversed", lc->volume_id, *first, *last);
		return -EINVAL;
	}
	if (*last >= lc->nr_segments) {
		DMERR_LIMIT("%s: message: segment %u is beyond the last segment %u",
			    lc->volume_id, *last, lc->nr_segments - 1);
		return -EINVAL;
	}
	return 0;
bad:
	DMERR_LIMIT("%s: message: invalid range \"%s\": expected all, <n> or <first>-<last>",
		    lc->volume_id, arg);
	return -EINVAL;
}

static const char *lc_discard_name(enum lc_discard_state s)
{
	switch (s) {
	case LC_DISCARD_PENDING:
		return LAKECRYPT_DISCARD_PENDING;
	case LC_DISCARD_DONE:
		return LAKECRYPT_DISCARD_DONE;
	case LC_DISCARD_UNSUPPORTED:
		return LAKECRYPT_DISCARD_UNSUPPORTED;
	case LC_DISCARD_FAILED:
		return LAKECRYPT_DISCARD_FAILED;
	default:
		return LAKECRYPT_DISCARD_NONE;
	}
}

static void lc_revoke_uevent(struct lc_target *lc, enum lc_discard_state ds)
{
	struct mapped_device *md = dm_table_get_md(lc->ti->table);
	char *envp[4] = { NULL };

	envp[0] = kasprintf(GFP_KERNEL, "%s=%s", LAKECRYPT_UEVENT_EVENT, LAKECRYPT_UEVENT_REVOKED);
	envp[1] = kasprintf(GFP_KERNEL, "%s=%s", LAKECRYPT_UEVENT_VOLUME, lc->volume_id);
	envp[2] = kasprintf(GFP_KERNEL, "%s=%s", LAKECRYPT_UEVENT_DISCARD, lc_discard_name(ds));
	if (envp[0] && envp[1] && envp[2])
		kobject_uevent_env(&disk_to_dev(dm_disk(md))->kobj, KOBJ_CHANGE, envp);
	else
		DMERR("%s: revoked, but no memory to send the uevent", lc->volume_id);
	kfree(envp[0]);
	kfree(envp[1]);
	kfree(envp[2]);
}

/*
 * The part of revoke that may wait for the backing device: bios in flight
 * complete (or fail), then the data area is discarded if asked to; the
 * outcome goes out in the uevent and a table event.
 */
static void lc_revoke_work(struct work_struct *work)
{
	struct lc_target *lc = container_of(work, struct lc_target, revoke_work);
	struct block_device *bdev = lc->dev->bdev;
	enum lc_discard_state ds = READ_ONCE(lc->discard_state);
	int r;

	if (ds == LC_DISCARD_PENDING) {
		lc_io_drain(lc);
		if (!bdev_max_discard_sectors(bdev)) {
			ds = LC_DISCARD_UNSUPPORTED;
		} else {
			r = blkdev_issue_discard(bdev, lc->start, lc->ti->len, GFP_KERNEL);
			ds = r ? LC_DISCARD_FAILED : LC_DISCARD_DONE;
			if (r)
				DMERR("%s: revoke: discard of the data area failed (%d)",
				      lc->volume_id, r);
		}
		WRITE_ONCE(lc->discard_state, ds);
	}
	DMWARN("%s: revoked: keys wiped, I/O refused, discard: %s", lc->volume_id,
	       lc_discard_name(ds));
	lc_revoke_uevent(lc, ds);
	dm_table_event(lc->ti->table);
}

/*
 * The kill switch.  New bios fail from the moment the flag is set and the
 * keys are wiped (neither waits for the backing device); waiting for bios
 * in flight and the discard happen in revoke_work, so the message returns
 * at once even when the backing device is stalled.
 */
static void lc_revoke(struct lc_target *lc, bool discard)
{
	ktime_t start = ktime_get();

	set_bit(LC_REVOKED, &lc->flags);
	smp_mb__after_atomic();		/* pairs with lc_map() */
	lc_keys_wipe(lc, 0, lc->nr_segments - 1);
	if ((discard || test_bit(LC_EPHEMERAL, &lc->flags)) &&
	    READ_ONCE(lc->discard_state) == LC_DISCARD_NONE)
		WRITE_ONCE(lc->discard_state, LC_DISCARD_PENDING);
	queue_work(system_long_wq, &lc->revoke_work);
	/* The kill switch's own latency, for whoever audits it. */
	DMWARN("%s: revoke: I/O refused and keys wiped in %lld us", lc->volume_id,
	       ktime_us_delta(ktime_get(), start));
}

/* "stats": figures for benchmarks and operators; returns 1 (reply in @result). */
static int lc_message_stats(struct lc_target *lc, unsigned int argc, char *result,
			    unsigned int maxlen)
{
	u64 hits, misses, evictions;
	unsigned int sz = 0, nr;

	if (argc != 1) {
		DMERR_LIMIT("%s: message \"stats\" takes no argument", lc->volume_id);
		return -EINVAL;
	}
	lc_pool_stats(lc, &nr, &hits, &misses, &evictions);
	DMEMIT(LAKECRYPT_STAT_TFM_CACHED "=%u " LAKECRYPT_STAT_TFM_MAX "=%u "
	       LAKECRYPT_STAT_TFM_HITS "=%llu " LAKECRYPT_STAT_TFM_MISSES "=%llu "
	       LAKECRYPT_STAT_TFM_EVICTIONS "=%llu "
	       LAKECRYPT_STAT_BOUNCE_PAGES "=%d " LAKECRYPT_STAT_BOUNCE_MAX "=%u",
	       nr, READ_ONCE(lc->cache_max), hits, misses, evictions,
	       atomic_read(&lc->bounce_pages), lc->bounce_max);
	return 1;
}

static int lc_message(struct dm_target *ti, unsigned int argc, char **argv,
		      char *result, unsigned int maxlen)
{
	struct lc_target *lc = ti->private;
	u32 first, last;
	int r = -EINVAL;

	if (argc >= 1 && !strcasecmp(argv[0], LAKECRYPT_MSG_STATS))
		return lc_message_stats(lc, argc, result, maxlen);

	mutex_lock(&lc->msg_lock);
	if (argc >= 1 && !strcasecmp(argv[0], LAKECRYPT_MSG_KEY)) {
		bool load;

		if (argc < 2) {
			DMERR_LIMIT("%s: message \"key\": missing action, expected load or wipe",
				    lc->volume_id);
			goto out;
		}
		if (!strcasecmp(argv[1], LAKECRYPT_MSG_KEY_LOAD)) {
			load = true;
		} else if (!strcasecmp(argv[1], LAKECRYPT_MSG_KEY_WIPE)) {
			load = false;
		} else {
			DMERR_LIMIT("%s: message: unknown key action \"%s\": expected load or wipe",
				    lc->volume_id, argv[1]);
			goto out;
		}
		if (argc != 3) {
			DMERR_LIMIT("%s: message \"key %s\": %s", lc->volume_id, argv[1],
				    argc < 3 ? "missing range (all, <n> or <first>-<last>)" :
					       "too many arguments, expected one range");
			goto out;
		}
		r = lc_parse_range(lc, argv[2], &first, &last);
		if (r)
			goto out;
		if (test_bit(LC_REVOKED, &lc->flags)) {
			DMERR_LIMIT("%s: message refused: the volume is revoked (load a new table)",
				    lc->volume_id);
			r = -EPERM;
			goto out;
		}
		if (load) {
			r = lc_keys_load(lc, first, last);
		} else {
			lc_keys_wipe(lc, first, last);
			r = 0;
		}
	} else if (argc >= 1 && !strcasecmp(argv[0], LAKECRYPT_MSG_REVOKE)) {
		bool discard = argc >= 2 && !strcasecmp(argv[1], LAKECRYPT_MSG_REVOKE_DISCARD);

		if (argc > 2 || (argc == 2 && !discard)) {
			/* name the first word that does not belong */
			DMERR_LIMIT("%s: message \"revoke\": unexpected \"%s\", expected discard",
				    lc->volume_id, argv[discard ? 2 : 1]);
			goto out;
		}
		lc_revoke(lc, discard);
		r = 0;
	} else {
		DMERR_LIMIT("%s: unknown message \"%s\": expected key load|wipe, revoke, stats",
			    lc->volume_id, argc ? argv[0] : "");
	}
out:
	mutex_unlock(&lc->msg_lock);
	return r;
}

static void lc_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
		      char *result, unsigned int maxlen)
{
	struct lc_target *lc = ti->private;
	bool revoked = test_bit(LC_REVOKED, &lc->flags);
	bool discards = test_bit(LC_ALLOW_DISCARDS, &lc->flags);
	bool ephemeral = test_bit(LC_EPHEMERAL, &lc->flags);
	bool no_read_wq = test_bit(LC_NO_READ_WQ, &lc->flags);
	bool no_write_wq = test_bit(LC_NO_WRITE_WQ, &lc->flags);
	bool no_inline = test_bit(LC_NO_INLINE, &lc->flags);
	bool same_cpu = test_bit(LC_SAME_CPU, &lc->flags);
	unsigned int sz = 0, nopt;

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("%s %u %u %llu %llu %llu %s",
		       revoked ? LAKECRYPT_STATE_REVOKED : LAKECRYPT_STATE_ACTIVE,
		       lc->nr_segments, atomic_read(&lc->keys_loaded),
		       (unsigned long long)atomic64_read(&lc->reads),
		       (unsigned long long)atomic64_read(&lc->writes),
		       (unsigned long long)atomic64_read(&lc->errors),
		       lc_discard_name(READ_ONCE(lc->discard_state)));
		break;

	case STATUSTYPE_TABLE:
		DMEMIT("%s :%u:%s:%s %llu %s %llu %s", lc->cipher_string, lc->key_size,
		       LAKECRYPT_KEY_TYPE, lc->key_prefix, 1ULL << lc->seg_shift,
		       lc->dev->name, (unsigned long long)lc->start, lc->volume_id);
		nopt = discards + ephemeral + (lc->sector_size != LAKECRYPT_MIN_SECTOR_SIZE) +
		       no_read_wq + no_write_wq + no_inline + same_cpu;
		if (nopt)
			DMEMIT(" %u", nopt);
		if (discards)
			DMEMIT(" " LAKECRYPT_OPT_ALLOW_DISCARDS);
		if (lc->sector_size != LAKECRYPT_MIN_SECTOR_SIZE)
			DMEMIT(" " LAKECRYPT_OPT_SECTOR_SIZE ":%u", lc->sector_size);
		if (ephemeral)
			DMEMIT(" " LAKECRYPT_OPT_EPHEMERAL);
		if (no_read_wq)
			DMEMIT(" " LAKECRYPT_OPT_NO_READ_WORKQUEUE);
		if (no_write_wq)
			DMEMIT(" " LAKECRYPT_OPT_NO_WRITE_WORKQUEUE);
		if (no_inline)
			DMEMIT(" " LAKECRYPT_OPT_NO_INLINE_CRYPT);
		if (same_cpu)
			DMEMIT(" " LAKECRYPT_OPT_SAME_CPU_CRYPT);
		break;

	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",allow_discards=%c", discards ? 'y' : 'n');
		DMEMIT(",ephemeral=%c", ephemeral ? 'y' : 'n');
		DMEMIT(",no_read_workqueue=%c", no_read_wq ? 'y' : 'n');
		DMEMIT(",no_write_workqueue=%c", no_write_wq ? 'y' : 'n');
		DMEMIT(",no_inline_crypt=%c", no_inline ? 'y' : 'n');
		DMEMIT(",same_cpu_crypt=%c", same_cpu ? 'y' : 'n');
		DMEMIT(",sector_size=%u", lc->sector_size);
		DMEMIT(",cipher_string=%s", lc->cipher_string);
		DMEMIT(",key_size=%u", lc->key_size);
		DMEMIT(",key_prefix=%s", lc->key_prefix);
		DMEMIT(",segment_sectors=%llu", 1ULL << lc->seg_shift);
		DMEMIT(",segments=%u", lc->nr_segments);
		DMEMIT(",volume_id=%s", lc->volume_id);
		DMEMIT(",state=%s", revoked ? LAKECRYPT_STATE_REVOKED : LAKECRYPT_STATE_ACTIVE);
		DMEMIT(";");
		break;
	}
}

static int lc_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct lc_target *lc = ti->private;

	return fn(ti, lc->dev, lc->start, ti->len, data);
}

static void lc_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct lc_target *lc = ti->private;

	/* Bounce pages are single pages (as in dm-crypt). */
	limits->max_segment_size = PAGE_SIZE;
	limits->logical_block_size = max_t(unsigned int, limits->logical_block_size,
					   lc->sector_size);
	limits->physical_block_size = max_t(unsigned int, limits->physical_block_size,
					    lc->sector_size);
	limits->io_min = max_t(unsigned int, limits->io_min, lc->sector_size);
	limits->dma_alignment = limits->logical_block_size - 1;
}

static struct target_type lakecrypt_target = {
	.name		 = LAKECRYPT_TARGET_NAME,
	.version	 = {LAKECRYPT_VERSION_MAJOR, LAKECRYPT_VERSION_MINOR,
			    LAKECRYPT_VERSION_PATCH},
	.module		 = THIS_MODULE,
	.ctr		 = lc_ctr,
	.dtr		 = lc_dtr,
	.map		 = lc_map,
	.postsuspend	 = lc_postsuspend,
	.preresume	 = lc_preresume,
	.resume		 = lc_resume,
	.status		 = lc_status,
	.message	 = lc_message,
	.iterate_devices = lc_iterate_devices,
	.io_hints	 = lc_io_hints,
};

/* key_cache: plain decimal, 0..LC_CACHE_LIMIT (one trailing newline, as echo writes). */
static int lc_set_key_cache(const char *val, const struct kernel_param *kp)
{
	char buf[16];
	size_t len = strlen(val);
	u64 v;

	if (len && val[len - 1] == '\n')
		len--;
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, val, len);
	buf[len] = '\0';
	if (lc_parse_number(buf, LC_CACHE_LIMIT, &v))
		return -EINVAL;
	WRITE_ONCE(lc_key_cache, v);
	return 0;
}

static const struct kernel_param_ops lc_key_cache_ops = {
	.set = lc_set_key_cache,
	.get = param_get_uint,
};

module_param_cb(key_cache, &lc_key_cache_ops, &lc_key_cache, 0644);
MODULE_PARM_DESC(key_cache,
		 "Keyed crypto transforms cached per device, for tables loaded from now on (default 1024, at most 65536)");

static int __init dm_lakecrypt_init(void)
{
	int r = dm_register_target(&lakecrypt_target);

	if (r < 0)
		DMERR("register failed %d", r);
	return r;
}

static void __exit dm_lakecrypt_exit(void)
{
	dm_unregister_target(&lakecrypt_target);
	rcu_barrier();		/* wait for keys freed by call_rcu() */
}

module_init(dm_lakecrypt_init);
module_exit(dm_lakecrypt_exit);

MODULE_DESCRIPTION(DM_NAME " target for per-segment encryption with keyring keys and revocation");
MODULE_LICENSE("GPL");
