// SPDX-License-Identifier: GPL-2.0
/*
 * Volumes: format, open, cache open, close, re-wrap, revoke.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <blkid/blkid.h>
#include <linux/fs.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/sysmacros.h>

#include "crypttab.h"
#include "fileio.h"
#include "header.h"
#include "rotate.h"
#include "volume.h"
#include "volume-internal.h"

#define KEY_LOAD_MSG	LAKECRYPT_MSG_KEY " " LAKECRYPT_MSG_KEY_LOAD " "
#define DEFAULT_KEY_SIZE	64u
#define DEFAULT_SEGMENT_SIZE	(1u << 20)

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

void lc_volume_free(struct lc_volume *v)
{
	if (!v)
		return;
	lc_secret_free(&v->kek);
	lc_wipe(v, sizeof(*v));
	free(v);
}

static void header_freep(struct lc_header **h)
{
	lc_header_free(*h);
}
#define _cleanup_header_ _cleanup_(header_freep)

/* Who and what an audit record is about. */
struct ids {
	const char *workspace, *project, *keyconfig, *provider, *cmk_id, *cmk_version;
	const char *volume, *device;	/* uuid and device, once known */
};

static void ids_of_volume(struct ids *ids, const struct lc_volume *v)
{
	ids->workspace = v->workspace;
	ids->project = v->project;
	ids->keyconfig = v->keyconfig;
	ids->provider = v->provider;
	ids->cmk_id = v->cmk_id[0] ? v->cmk_id : v->provider_ref;
	ids->cmk_version = v->cmk_version[0] ? v->cmk_version : NULL;
	ids->volume = v->uuid[0] ? v->uuid : NULL;
	ids->device = v->device[0] ? v->device : NULL;
}

static void audit_d(const struct lc_volume_env *env, const char *op, enum lc_audit_outcome o,
		    const struct ids *ids, const struct lc_provider_reply *rep,
		    const struct lc_error *e, int64_t latency_ms, const char *detail)
{
	struct lc_audit_event ev;
	struct lc_error ae;

	if (!env->audit)
		return;
	lc_audit_event_init(&ev, op, o);
	ev.peer_uid = env->peer_uid;
	if (ids) {
		ev.workspace = ids->workspace && *ids->workspace ? ids->workspace : NULL;
		ev.project = ids->project && *ids->project ? ids->project : NULL;
		ev.keyconfig = ids->keyconfig && *ids->keyconfig ? ids->keyconfig : NULL;
		ev.provider = ids->provider && *ids->provider ? ids->provider : NULL;
		ev.cmk_id = ids->cmk_id && *ids->cmk_id ? ids->cmk_id : NULL;
		ev.cmk_version = ids->cmk_version && *ids->cmk_version ? ids->cmk_version : NULL;
		ev.volume = ids->volume && *ids->volume ? ids->volume : NULL;
		ev.device = ids->device && *ids->device ? ids->device : NULL;
	}
	if (rep) {
		if (rep->request_id[0])
			ev.request_id = rep->request_id;
		if (rep->key_version[0])
			ev.cmk_version = rep->key_version;	/* the version actually used */
		if (rep->key_id[0] && !ev.cmk_id)
			ev.cmk_id = rep->key_id;
		if (latency_ms < 0)
			latency_ms = (int64_t)(rep->latency_us / 1000);
	}
	ev.latency_ms = latency_ms;
	ev.detail = detail;
	/* A failure always has a class; a success only when the caller
	 * says why (a revocation caused by an authoritative denial). */
	if (e && e->cls != LC_ERRC_NONE)
		ev.error_class = e->cls;
	else if (o != LC_AUDIT_SUCCESS)
		ev.error_class = LC_ERRC_INTERNAL;
	if (lc_audit_write(env->audit, &ev, &ae) < 0)
		lc_error_log("audit record for %s could not be written: %s", op, ae.msg);
}

static void audit(const struct lc_volume_env *env, const char *op, enum lc_audit_outcome o,
		  const struct ids *ids, const struct lc_provider_reply *rep,
		  const struct lc_error *e, int64_t latency_ms)
{
	audit_d(env, op, o, ids, rep, e, latency_ms, NULL);
}

/*
 * Read back a blob the KMS just made: unwrap @blob under @key_ref with the
 * same context @ctx (one more KMS call, audited as "cmk.verify") and
 * compare the result with @kek in constant time.  A KMS that answers a
 * wrap with a blob it cannot unwrap (a bug, a lie, a truncation on the
 * way) would otherwise be committed to the header and the volume would
 * never open again.  0, or the provider's error for a failed unwrap, or
 * -EBADMSG (INVALID) for a blob that unwraps to another key.
 */
static int verify_wrap(const struct lc_volume_env *env, struct lc_provider *p, const char *key_ref,
		       const struct lc_secret *kek, const char *ctx, const struct lc_buf *blob,
		       const struct ids *ids, struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret back = { 0 };
	struct lc_provider_reply vrep;
	struct lc_error e = { 0 };
	int r;

	memset(&vrep, 0, sizeof(vrep));
	r = lc_provider_unwrap(p, key_ref, blob, ctx, &back, &vrep, &e);
	if (!r && (back.len != kek->len || CRYPTO_memcmp(back.p, kek->p, kek->len)))
		r = lc_err(&e, -EBADMSG, LC_ERRC_INVALID,
			   "the blob unwraps to %s", back.len != kek->len ? "a key of another size" :
			   "another key");
	audit(env, "cmk.verify", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, ids, &vrep,
	      r ? &e : NULL, -1);
	if (r < 0)
		return lc_err(err, r, e.cls,
			      "the KMS wrapped the new KEK, but reading the wrapped key back failed (%s): nothing was written to the header",
			      e.msg);
	return 0;
}

/*
 * Wrap @kek by the CMK @key_ref (one KMS call, audited) into @h: wrapped
 * key, and the CMK id and version the provider reports.  The blob is read
 * back (verify_wrap(): a second KMS call) before @h is touched, so no
 * caller can write a header whose KEK the KMS cannot give back.
 */
static int wrap_kek(const struct lc_volume_env *env, struct lc_provider *p, const char *key_ref,
		    const struct lc_secret *kek, const char *ctx, struct lc_header *h,
		    const struct ids *ids, struct lc_provider_reply *rep, struct lc_error *err)
{
	struct lc_buf blob = { 0 };
	int r;

	r = lc_provider_wrap(p, key_ref, kek, ctx, &blob, rep, err);
	audit(env, "cmk.wrap", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, ids, rep, err, -1);
	if (r < 0)
		return r;
	if (blob.len > LC_HDR_KEK_MAX) {
		free(blob.p);
		return lc_err(err, -EOVERFLOW, LC_ERRC_MISCONFIG,
			      "the KMS returned a wrapped key of %zu bytes; the header holds at most %d",
			      blob.len, LC_HDR_KEK_MAX);
	}
	r = verify_wrap(env, p, key_ref, kek, ctx, &blob, ids, err);
	if (r < 0) {
		free(blob.p);
		return r;
	}
	free(h->wrapped_kek.p);
	h->wrapped_kek = blob;
	if (rep->key_id[0])
		copy_str(h->cmk_id, sizeof(h->cmk_id), rep->key_id);
	copy_str(h->cmk_version, sizeof(h->cmk_version), rep->key_version);
	return 0;
}

static struct lc_provider *provider_of(const struct lc_volume_env *env, const char *kind,
				       struct lc_error *err)
{
	struct lc_provider *p = env->provider ? env->provider(env->provider_ctx, kind) : NULL;

	if (!p)
		lc_err(err, -ENOPROTOOPT, LC_ERRC_MISCONFIG,
		       "KMS provider \"%s\" is not available in this agent (known: local)", kind);
	return p;
}

int lc_device_size(int fd, const char *path, uint64_t *bytes, bool *is_blk, struct lc_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot stat %s: %s", path,
			      strerror(errno));
	if (is_blk)
		*is_blk = S_ISBLK(st.st_mode);
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, bytes) < 0)
			return lc_err(err, -errno, LC_ERRC_INTERNAL,
				      "cannot read the size of %s: %s", path, strerror(errno));
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		*bytes = (uint64_t)st.st_size;
		return 0;
	}
	return lc_err(err, -ENOTBLK, LC_ERRC_INVALID,
		      "%s is neither a block device nor a regular file", path);
}

int lc_cipher_allowed(const char *cipher, uint32_t key_size, struct lc_error *err)
{
	static const struct { const char *spec; uint32_t sizes[2]; } ok[] = {
		{ "aes-xts-plain64", { 32, 64 } },
		{ "capi:xts(aes)-plain64", { 32, 64 } },
		{ "xchacha12,aes-adiantum-plain64", { 32, 32 } },
		{ "xchacha20,aes-adiantum-plain64", { 32, 32 } },
		{ "capi:adiantum(xchacha12,aes)-plain64", { 32, 32 } },
		{ "capi:adiantum(xchacha20,aes)-plain64", { 32, 32 } },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (strcmp(cipher, ok[i].spec))
			continue;
		if (key_size == ok[i].sizes[0] || key_size == ok[i].sizes[1])
			return 0;
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "cipher %s takes a %" PRIu32 "- or %" PRIu32 "-byte key, not %" PRIu32,
			      cipher, ok[i].sizes[0], ok[i].sizes[1], key_size);
	}
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "cipher \"%.60s\" is not allowed: lakecrypt uses aes-xts-plain64 or xchacha12,aes-adiantum-plain64 (or xchacha20), never a stream mode whose keystream repeats when a sector is rewritten",
		      cipher);
}

int lc_device_allowed(const struct lc_ws_access *acc, const char *workspace, dev_t rdev,
		      const char *path, struct lc_error *err)
{
	for (size_t i = 0; acc && i < acc->ndevices; i++) {
		glob_t g;
		bool hit = false;

		if (glob(acc->devices[i], GLOB_NOSORT, NULL, &g) != 0)
			continue;
		for (size_t j = 0; j < g.gl_pathc && !hit; j++) {
			struct stat st;

			hit = stat(g.gl_pathv[j], &st) == 0 && S_ISBLK(st.st_mode) &&
			      st.st_rdev == rdev;
		}
		globfree(&g);
		if (hit)
			return 0;
	}
	return lc_err(err, -EPERM, LC_ERRC_REFUSED,
		      "device %s (%u:%u) is not one workspace %s may use: an admin adds a pattern for it to the workspace's list (`lakecryptctl workspace list --json` shows it; `workspace bind %s --keyconfig K --devices` takes the whole new list)",
		      path, major(rdev), minor(rdev), workspace, workspace);
}

/*
 * Open @path and check what was opened, without a window between the
 * check and the open: the path is resolved once into an O_PATH descriptor
 * (which opens nothing: no tty becomes ours, no FIFO blocks, no driver's
 * open runs), that descriptor is fstat()ed and judged — a block device, or
 * a regular file where @regular_ok; a block device in @allow (NULL: any)
 * — and only then is the same inode opened through /proc/self/fd with
 * O_EXCL (a mounted, mapped or claimed block device is refused),
 * O_NOCTTY and O_NONBLOCK, and checked again to be that inode.  @write:
 * read-write; if that is refused with EROFS, *@rw says it fell back to
 * read-only.  @st receives the fstat of the descriptor, @real (PATH_MAX)
 * the resolved path.  With @allow (an operator), a path that cannot be
 * used gets one message whatever the reason, so that the root agent does
 * not tell whether files exist where the caller cannot look.
 */
static int dev_open(const char *path, bool write, bool regular_ok, const struct lc_ws_access *allow,
		    const char *workspace, bool *rw, uint64_t *bytes, struct stat *st, char *real,
		    struct lc_error *err)
{
	int flags = O_CLOEXEC | O_NONBLOCK | O_EXCL | O_NOCTTY, fd = -1, r;
	_cleanup_close_ int pfd = -1;
	char proc[64];
	struct stat pre;
	ssize_t n;

	if (!path || !*path)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "no device given: expected a path");
	if (path[0] != '/')
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "device \"%s\" is not an absolute path",
			      path);
	pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0 || fstat(pfd, &pre) < 0) {
		r = -errno;
		if (allow)
			return lc_err(err, -EPERM, LC_ERRC_REFUSED,
				      "%s is not a block device workspace %s may use", path, workspace);
		return lc_err(err, r, LC_ERRC_INVALID, "cannot use device %s: %s", path, strerror(-r));
	}
	if (!S_ISBLK(pre.st_mode) && !(regular_ok && !allow && S_ISREG(pre.st_mode)))
		return allow ? lc_err(err, -EPERM, LC_ERRC_REFUSED,
				      "%s is not a block device workspace %s may use", path, workspace)
			     : lc_err(err, -ENOTBLK, LC_ERRC_INVALID, "%s is not a block device%s",
				      path, regular_ok ? " or a regular file" : "");
	/* A device the caller may not use is not even opened (an exclusive
	 * open would claim it). */
	if (allow && (r = lc_device_allowed(allow, workspace, pre.st_rdev, path, err)) < 0)
		return r;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	n = readlink(proc, real, PATH_MAX - 1);
	if (n < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot resolve %s (is /proc mounted?): %s",
			      path, strerror(errno));
	real[n] = '\0';
	fd = open(proc, flags | (write ? O_RDWR : O_RDONLY));
	if (fd < 0 && write && (errno == EROFS || errno == EACCES)) {
		fd = open(proc, flags | O_RDONLY);
		write = false;
	}
	if (fd < 0) {
		r = -errno;
		if (r == -EBUSY)
			return lc_err(err, r, LC_ERRC_INVALID,
				      "device %s is in use (mounted, mapped or held by another program): release it first",
				      path);
		return lc_err(err, r, LC_ERRC_INVALID, "cannot open %s: %s", path, strerror(-r));
	}
	if (fstat(fd, st) < 0 || fcntl(fd, F_SETFL, 0) < 0) {
		r = lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (st->st_dev != pre.st_dev || st->st_ino != pre.st_ino || st->st_rdev != pre.st_rdev ||
	    (st->st_mode & S_IFMT) != (pre.st_mode & S_IFMT)) {
		r = lc_err(err, -ESTALE, LC_ERRC_INVALID, "%s changed while it was opened: refused",
			   path);
		goto fail;
	}
	if (rw)
		*rw = write;
	r = lc_device_size(fd, path, bytes, NULL, err);
	if (r < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return r;
}

/*
 * Any signature libblkid recognises on @fd (file system, RAID member,
 * partition table, LUKS, swap, ...): its name into @type, 1; none: 0.
 * As cryptsetup's luksFormat does before it overwrites a device.
 */
static int blkid_signature(int fd, char *type, size_t size)
{
	blkid_probe pr = blkid_new_probe();
	const char *v = NULL;
	int rc, found = 0;

	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, 0, 0) != 0) {
		blkid_free_probe(pr);
		return 0;	/* nothing to probe (e.g. empty) */
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	rc = blkid_do_safeprobe(pr);
	if (rc == 0) {
		if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) &&
		    blkid_probe_lookup_value(pr, "PTTYPE", &v, NULL))
			v = "unknown";
		snprintf(type, size, "%s", v);
		found = 1;
	} else if (rc == -2) {
		snprintf(type, size, "several signatures");
		found = 1;
	}
	blkid_free_probe(pr);
	return found;
}

/* Most signatures one format wipes off one device: more is a device that
 * keeps growing them back (or a prober loop), refused. */
#define WIPE_MAX 64

/* A prober for every signature libblkid knows on @fd, with the offsets of
 * their magic bytes; NULL if it cannot be set up (*@rc: -errno, or 0 for
 * an empty device). */
static blkid_probe magic_probe(int fd, int *rc)
{
	blkid_probe pr = blkid_new_probe();

	*rc = -ENOMEM;
	if (!pr)
		return NULL;
	if (blkid_probe_set_device(pr, fd, 0, 0) != 0) {
		blkid_free_probe(pr);
		*rc = 0;	/* nothing to probe (e.g. empty) */
		return NULL;
	}
	/* As wipefs(8): superblocks (also those with a bad checksum, which
	 * other tools may still act on) and partition tables, by magic. */
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_MAGIC |
					  BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
	return pr;
}

/* The type and magic offset (bytes) of what @pr just found, as "type@offset". */
static void found_name(blkid_probe pr, char *out, size_t size)
{
	const char *type = NULL, *off = NULL;

	if (!blkid_probe_lookup_value(pr, "TYPE", &type, NULL))
		blkid_probe_lookup_value(pr, "SBMAGIC_OFFSET", &off, NULL);
	else if (!blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL))
		blkid_probe_lookup_value(pr, "PTMAGIC_OFFSET", &off, NULL);
	snprintf(out, size, "%.32s@%.24s", type ? type : "unknown", off ? off : "?");
}

/*
 * Erase the magic bytes of every signature libblkid finds anywhere on @fd
 * (file systems, RAID members such as an md 1.0 superblock 8 KiB before the
 * end, LUKS, swap, partition tables), as wipefs(8) -a and cryptsetup's
 * luksFormat do: blkid_do_probe()/blkid_do_wipe() until nothing is left,
 * then fsync.  Without this, a signature outside the lakecrypt header area
 * survives a format: udev's blkid names the device after it (e.g.
 * ID_FS_TYPE=linux_raid_member), the lakecrypt rule skips it, mdadm may
 * assemble it.  Then a new probe must find nothing: -EEXIST (INVALID)
 * naming what is still there.  @done receives "type@offset, ..." (byte
 * offsets of the magic; never contents) of what was wiped, "" for nothing;
 * -EIO/-errno (INTERNAL) if the probe or a write fails.
 */
static int wipe_signatures(int fd, const char *path, char *done, size_t size,
			   struct lc_error *err)
{
	char one[64];
	size_t len = 0;
	blkid_probe pr;
	int rc, n = 0;

	done[0] = '\0';
	pr = magic_probe(fd, &rc);
	if (!pr && rc < 0)
		return lc_err(err, rc, LC_ERRC_INTERNAL, "cannot probe %s for signatures: %s", path,
			      strerror(-rc));
	while (pr && n < WIPE_MAX && (rc = blkid_do_probe(pr)) == 0) {
		found_name(pr, one, sizeof(one));
		/* Moves the prober back a step: the same area is probed again. */
		errno = 0;
		if (blkid_do_wipe(pr, 0) != 0) {
			int e = errno ? errno : EIO;

			blkid_free_probe(pr);
			return lc_err(err, -e, LC_ERRC_INTERNAL,
				      "cannot wipe the %s signature on %s: %s", one, path, strerror(e));
		}
		if (len < size)
			len += (size_t)snprintf(done + len, size - len, "%s%s", n ? ", " : "", one);
		n++;
	}
	blkid_free_probe(pr);
	if (rc < 0)
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "cannot probe %s for signatures", path);
	if (n && fsync(fd) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot write %s: %s", path,
			      strerror(errno));
	if (n)
		lc_info("%s: wiped %d signature%s (type@byte offset): %s", path, n,
			n > 1 ? "s" : "", done);

	/* What a new prober (as udev's blkid) still sees is refused. */
	pr = magic_probe(fd, &rc);
	if (!pr && rc < 0)
		return lc_err(err, rc, LC_ERRC_INTERNAL, "cannot probe %s for signatures: %s", path,
			      strerror(-rc));
	rc = pr ? blkid_do_probe(pr) : 1;
	if (rc == 0)
		found_name(pr, one, sizeof(one));
	blkid_free_probe(pr);
	if (rc == 0)
		return lc_err(err, -EEXIST, LC_ERRC_INVALID,
			      "%s still holds a %s signature (libblkid) after wiping %d: not formatted; erase it with wipefs and retry",
			      path, one, n);
	if (rc < 0)
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "cannot probe %s for signatures", path);
	return 0;
}

/* Zero bytes [0, @end) of @fd and make it durable. */
static int zero_range(int fd, uint64_t end)
{
	static const uint8_t zero[65536];

	for (uint64_t off = 0; off < end;) {
		size_t n = end - off < sizeof(zero) ? (size_t)(end - off) : sizeof(zero);
		ssize_t w = pwrite(fd, zero, n, (off_t)off);

		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

/* device-mapper maps block devices only. */
static int not_blk(const char *path, struct lc_error *err)
{
	return lc_err(err, -ENOTBLK, LC_ERRC_INVALID,
		      "%s is a regular file; device-mapper needs a block device: attach it with losetup and use the loop device",
		      path);
}

/* A version 4 uuid; a generator that keeps failing fails the call
 * (lc_rand_bytes retries a bounded number of times), never loops. */
static int random_uuid(uint8_t uuid[LC_UUID_LEN], struct lc_error *err)
{
	int r = lc_rand_bytes(uuid, LC_UUID_LEN, false, "a volume uuid", err);

	if (r < 0)
		return r;
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);	/* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
	return 0;
}

/* Check cipher, key size, segment and sector size as the target will. */
static int check_geometry(const char *cipher, uint32_t key_size, uint64_t segment_size,
			  uint32_t sector_size, struct lc_error *err)
{
	_cleanup_free_ char *line = NULL;
	struct lc_dm_table t = {
		.cipher = cipher, .key_size = key_size, .key_prefix = LC_KEY_PREFIX "check:",
		.device = "0:0", .volume_id = "check", .sector_size = sector_size,
	};
	int r;

	if (key_size < LC_HDR_KEY_SIZE_MIN || key_size > LC_HDR_KEY_SIZE_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key size %" PRIu32 " bytes is out of range: expected %d to %d",
			      key_size, LC_HDR_KEY_SIZE_MIN, LC_HDR_KEY_SIZE_MAX);
	if (segment_size % 512 || !is_pow2(segment_size / 512) ||
	    segment_size / 512 < LAKECRYPT_MIN_SEGMENT_SECTORS || segment_size / 512 > (1ull << 31))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segment size %" PRIu64 " bytes is not usable: expected a power of two from 4096 bytes to 1 TiB",
			      segment_size);
	if (!is_pow2(sector_size) || sector_size < LC_HDR_SECTOR_SIZE_MIN ||
	    sector_size > LC_HDR_SECTOR_SIZE_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "sector size %" PRIu32 " is not usable: expected 512, 1024, 2048 or 4096",
			      sector_size);
	t.segment_sectors = segment_size / 512;
	t.length = t.segment_sectors;
	if (strlen(cipher) >= LC_HDR_CIPHER_SIZE)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "cipher \"%.40s...\" is too long", cipher);
	r = lc_cipher_allowed(cipher, key_size, err);
	if (r < 0)
		return r;
	return lc_dm_table_line(&t, &line, err);
}

/* ---- format ---- */

/* Largest segment count whose header still leaves room for that many
 * segments (the last one may be partial) on @dev_sectors. */
static int attached_geometry(uint64_t dev_sectors, uint64_t seg, uint32_t key_size,
			     uint32_t *count, uint64_t *data_offset, struct lc_error *err)
{
	uint64_t c = dev_sectors / seg + !!(dev_sectors % seg), off = 0, need;

	for (;;) {
		int r;

		if (c > LC_HDR_SEGMENTS_MAX)
			c = LC_HDR_SEGMENTS_MAX;
		if (c < 1)
			c = 1;
		r = lc_header_layout((uint32_t)c, key_size, NULL, NULL, &off, err);
		if (r < 0)
			return r;
		if (off >= dev_sectors)
			return lc_err(err, -ENOSPC, LC_ERRC_INVALID,
				      "the device is too small: %" PRIu64 " bytes, the header alone needs %" PRIu64 " bytes",
				      dev_sectors * 512, off * 512);
		need = (dev_sectors - off) / seg + !!((dev_sectors - off) % seg);
		if (need >= c)
			break;
		c = need;
	}
	*count = (uint32_t)c;
	*data_offset = off;
	return 0;
}

/* An existing lakecrypt header (valid or damaged) on @fd: its uuid and
 * labels into @what; 1 if there is one, 0 if none. */
static int lakecrypt_there(int fd, char *what, size_t size)
{
	struct lc_header *old = NULL;
	uint64_t ext = 0;
	int r = lc_header_read(fd, &old, NULL, NULL);

	if (r == 0) {
		char u[LC_UUID_STR_LEN];

		lc_header_uuid_str(old, u);
		snprintf(what, size, "lakecrypt volume %s (workspace %s, project %s)", u,
			 old->workspace, old->project);
		lc_header_free(old);
		return 1;
	}
	if (lc_header_extent(fd, &ext) == 0 && ext) {
		snprintf(what, size, "a damaged lakecrypt header");
		return 1;
	}
	return 0;
}

/* What is on @fd that a format would destroy: a lakecrypt header or any
 * signature libblkid knows.  -EEXIST naming it unless @force. */
static int refuse_overwrite(int fd, const char *path, bool force, struct lc_error *err)
{
	char what[256], type[64];
	int r;

	if (force)
		return 0;
	if (lakecrypt_there(fd, what, sizeof(what)))
		return lc_err(err, -EEXIST, LC_ERRC_INVALID,
			      "%s holds %s: formatting destroys it; an admin can overwrite it with --force",
			      path, what);
	r = blkid_signature(fd, type, sizeof(type));
	if (r > 0)
		return lc_err(err, -EEXIST, LC_ERRC_INVALID,
			      "%s holds a %s signature (libblkid): formatting destroys it; an admin can overwrite it with --force",
			      path, type);
	return 0;
}

/* Zero the old lakecrypt metadata on @fd (both copies, DEK tables and
 * all) and, for a new attached header, its whole area up to @new_end. */
static int erase_old(int fd, const char *path, uint64_t new_end, struct lc_error *err)
{
	uint64_t end = 0, bytes = 0;
	int r = lc_header_extent(fd, &end);

	if (r == 0 && end < new_end)
		end = new_end;
	if (r == 0 && lc_device_size(fd, path, &bytes, NULL, NULL) == 0 && end > bytes)
		end = bytes;
	if (r == 0)
		r = zero_range(fd, end);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot erase the old metadata of %s: %s",
			      path, strerror(-r));
	return 0;
}

/* The storage @st (what a path opened) is what @pin says was checked
 * (NULL: nothing was): 0, or -EBUSY naming @what @path. */
static int pin_check(const struct lc_storage_pin *pin, const struct stat *st, const char *what,
		     const char *path, struct lc_error *err)
{
	if (!pin)
		return 0;
	if (pin->exists && (S_ISBLK(st->st_mode) ?
			    pin->blk && pin->rdev == st->st_rdev :
			    !pin->blk && pin->dev == st->st_dev && pin->ino == st->st_ino))
		return 0;
	return lc_err(err, -EBUSY, LC_ERRC_INVALID,
		      "%s %s changed under us: it now names other storage than the one checked for volumes in use (a path renamed or a symbolic link changed meanwhile); nothing written, try again",
		      what, path);
}

/* Open (create) a detached header file: never through a symlink; an
 * existing file only when @force, and only the one @pin says was checked
 * (nothing there: created, never opened); held with flock(LOCK_EX) while
 * the descriptor is open. */
static int header_file_open(const char *path, bool force, const struct lc_storage_pin *pin,
			    struct lc_error *err)
{
	bool fresh = !force || (pin && !pin->exists);
	struct stat st;
	int fd, r;

	if (!path || path[0] != '/')
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "detached header \"%s\" is not an absolute path", path ? path : "");
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
		  (fresh ? O_EXCL : 0), 0600);
	if (fd < 0) {
		r = -errno;
		if (r == -EEXIST && force)	/* there was none at the check */
			return pin_check(pin, &(struct stat){ .st_mode = S_IFREG }, "detached header",
					 path, err);
		if (r == -EEXIST)
			return lc_err(err, r, LC_ERRC_INVALID,
				      "detached header %s already exists: choose a new name, or an admin overwrites it with --force",
				      path);
		return lc_err(err, r, LC_ERRC_INVALID, "cannot create detached header %s: %s", path,
			      strerror(-r));
	}
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) ||
	    fcntl(fd, F_SETFL, 0) < 0) {
		close(fd);
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "detached header %s is not a regular file or block device", path);
	}
	if (!fresh && (r = pin_check(pin, &st, "detached header", path, err)) < 0) {
		close(fd);
		return r;
	}
	/* Another lakecrypt writer of this file (segrekey.c, rotate.c hold
	 * it so, backing.h) is not written under. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		close(fd);
		if (r == -EWOULDBLOCK)
			return lc_err(err, -EBUSY, LC_ERRC_INVALID,
				      "detached header %s is locked by another lakecrypt operation: try again when it has ended",
				      path);
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot lock detached header %s: %s", path,
			      strerror(-r));
	}
	return fd;
}

/* Seal @h with the MAC key of @kek and write it to @fd. */
static int seal_write(int fd, struct lc_header *h, const struct lc_secret *kek,
		      struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret mk = { 0 };
	int r;

	r = lc_header_mac_key(kek, h->uuid, &mk, err);
	if (r < 0)
		return r;
	h->version = LC_HDR_VERSION;
	h->mac_key = mk.p;
	r = lc_header_write(fd, h, err);
	h->mac_key = NULL;
	return r;
}

/* seal_write(), then remember the new seqno (or fail, saying so). */
static int write_sealed(const struct lc_volume_env *env, int fd, struct lc_header *h,
			const struct lc_secret *kek, struct lc_error *err)
{
	char u[LC_UUID_STR_LEN];
	int r;

	r = seal_write(fd, h, kek, err);
	if (r < 0)
		return r;
	lc_header_uuid_str(h, u);
	if (env->seqs && (r = lc_seqstore_record(env->seqs, u, h->seqno, err)) < 0) {
		char m[LC_ERROR_MSG_MAX];

		/* Not remembering it would let this very header be rolled back
		 * later: the call fails, and says the header itself is fine. */
		snprintf(m, sizeof(m), "%s", err->msg);
		return lc_err(err, r, LC_ERRC_INTERNAL,
			      "volume %s: the header was written (seqno %" PRIu64 "), but the rollback memory could not be saved: %s; free space in the state directory and retry",
			      u, h->seqno, m);
	}
	return 0;
}

int lc_volume_format(const struct lc_volume_env *env, const struct lc_keyconfig *kc,
		     const struct lc_format_args *a, struct lc_header **out,
		     struct lc_error *err)
{
	_cleanup_header_ struct lc_header *h = NULL;
	_cleanup_secret_ struct lc_secret kek = { 0 }, deks = { 0 };
	_cleanup_close_ int fd = -1, hfd = -1;
	struct lc_provider_reply rep;
	struct lc_provider *p;
	struct ids ids = { a->workspace, a->project, kc->name, kc->provider, kc->cmk_id, NULL,
			   NULL, a->device };
	const char *cipher = a->cipher && *a->cipher ? a->cipher : LC_DM_DEFAULT_CIPHER;
	uint32_t key_size = a->key_size ? a->key_size : DEFAULT_KEY_SIZE;
	uint64_t seg_bytes = a->segment_size ? a->segment_size : DEFAULT_SEGMENT_SIZE;
	uint32_t ss = a->sector_size ? a->sector_size : 512;
	uint64_t bytes, dev_sectors, seg, data_offset = 0, count64, area = 0;
	uint32_t count = 0;
	uint8_t uuid[LC_UUID_LEN];
	char ctx[LC_KEK_CONTEXT_MAX], uuid_str[LC_UUID_STR_LEN], real[PATH_MAX];
	char wiped[512] = "", wiped_h[256] = "", detail[800] = "";
	struct lc_kek_identity kid;
	bool detached = a->header && *a->header;
	struct stat st;
	int64_t t0 = now_ms();
	struct lc_error dummy;
	int r;

	if (!err)
		err = &dummy;
	if (out)
		*out = NULL;
	r = lc_name_check("workspace", a->workspace, err);
	if (!r)
		r = lc_name_check("project", a->project, err);
	if (!r)
		r = check_geometry(cipher, key_size, seg_bytes, ss, err);
	if (r < 0)
		return r;
	seg = seg_bytes / 512;
	p = provider_of(env, kc->provider, err);
	if (!p)
		return -ENOPROTOOPT;

	/* The data device is written in both cases: a detached format erases
	 * an attached header that may be there. */
	fd = dev_open(a->device, true, env->be->regular_files, a->allow, a->workspace, NULL,
		      &bytes, &st, real, err);
	if (fd < 0)
		return fd;
	dev_sectors = bytes / 512;
	r = pin_check(a->pin_device, &st, "device", a->device, err);
	if (r < 0)
		return r;
	r = refuse_overwrite(fd, a->device, a->force, err);
	if (r < 0)
		return r;
	if (detached) {
		hfd = header_file_open(a->header, a->force, a->pin_header, err);
		if (hfd < 0)
			return hfd;
		r = refuse_overwrite(hfd, a->header, a->force, err);
		if (r < 0)
			return r;
	}

	if (detached) {
		count64 = dev_sectors / seg + !!(dev_sectors % seg);
		if (!dev_sectors)
			return lc_err(err, -ENOSPC, LC_ERRC_INVALID, "device %s is empty", a->device);
		if (count64 > LC_HDR_SEGMENTS_MAX)
			return lc_err(err, -EFBIG, LC_ERRC_INVALID,
				      "%s would need %" PRIu64 " segments of %" PRIu64 " bytes; at most %u are possible: use a larger segment_size",
				      a->device, count64, seg_bytes, LC_HDR_SEGMENTS_MAX);
		count = (uint32_t)count64;
	} else {
		if (dev_sectors / seg > LC_HDR_SEGMENTS_MAX)
			return lc_err(err, -EFBIG, LC_ERRC_INVALID,
				      "%s would need more than %u segments of %" PRIu64 " bytes: use a larger segment_size",
				      a->device, LC_HDR_SEGMENTS_MAX, seg_bytes);
		r = attached_geometry(dev_sectors, seg, key_size, &count, &data_offset, err);
		if (r < 0)
			return r;
	}
	if ((dev_sectors - data_offset) < ss / 512)
		return lc_err(err, -ENOSPC, LC_ERRC_INVALID,
			      "device %s is too small for one %u-byte sector of data", a->device, ss);

	h = lc_header_new(count, key_size);
	if (!h)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory for a header of %" PRIu32 " segments",
			      count);
	r = random_uuid(uuid, err);
	if (r < 0)
		return r;
	lc_uuid_format(uuid, uuid_str);
	ids.volume = uuid_str;
	kid = (struct lc_kek_identity){ uuid, a->workspace, a->project, kc->name };
	if (lc_kek_context(&kid, ctx) < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key configuration name \"%s\" cannot be bound into a KEK context",
			      kc->name);
	memcpy(h->uuid, uuid, LC_UUID_LEN);
	h->created = (uint64_t)time(NULL);
	h->flags = detached ? LC_HDR_F_DETACHED : 0;
	copy_str(h->workspace, sizeof(h->workspace), a->workspace);
	copy_str(h->project, sizeof(h->project), a->project);
	copy_str(h->keyconfig, sizeof(h->keyconfig), kc->name);
	copy_str(h->provider, sizeof(h->provider), kc->provider);
	copy_str(h->provider_ref, sizeof(h->provider_ref), kc->key_ref);
	copy_str(h->cmk_id, sizeof(h->cmk_id), kc->cmk_id[0] ? kc->cmk_id : kc->key_ref);
	copy_str(h->cipher, sizeof(h->cipher), cipher);
	h->key_size = key_size;
	h->sector_size = ss;
	h->segment_sectors = seg;
	h->data_offset = data_offset;
	h->wrap_context.len = strlen(ctx);
	h->wrap_context.p = (uint8_t *)strdup(ctx);
	h->wrapped_kek.len = 1;		/* placeholder until the KMS answers */
	h->wrapped_kek.p = calloc(1, 1);
	if (!h->wrap_context.p || !h->wrapped_kek.p)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	for (uint32_t i = 0; i < count; i++)
		h->deks[i].generation = 1;
	/* Everything but the keys is checked before the KMS is asked. */
	r = lc_header_check(h, err);
	if (r < 0)
		return r;

	r = lc_kek_generate(&kek, err);
	if (r < 0)
		return r;
	r = wrap_kek(env, p, kc->key_ref, &kek, ctx, h, &ids, &rep, err);
	if (r < 0)
		goto fail;
	ids.cmk_id = h->cmk_id;
	ids.cmk_version = h->cmk_version;

	r = lc_deks_generate(&deks, count, key_size, err);
	if (!r)
		r = lc_deks_wrap_all(&kek, uuid, &deks, count, key_size, h->deks, err);
	lc_secret_free(&deks);
	if (r < 0)
		goto fail;
	/* Nothing of an earlier volume may survive: both old copies with
	 * their wrapped keys, on the data device and in the header file. */
	/* Nor any other signature, anywhere on the device (or the header
	 * file): wiped (and named) first, and all of it before the new
	 * header is written, so that nothing wipes inside it. */
	r = wipe_signatures(fd, a->device, wiped, sizeof(wiped), err);
	if (!r && detached)
		r = wipe_signatures(hfd, a->header, wiped_h, sizeof(wiped_h), err);
	if (wiped[0] || wiped_h[0])	/* for the audit record, success or not */
		snprintf(detail, sizeof(detail), "wiped signatures (type@byte offset): %s%s%s",
			 wiped, wiped[0] && wiped_h[0] ? "; header: " :
			 wiped_h[0] ? "header: " : "", wiped_h);
	lc_header_layout(count, key_size, NULL, &area, NULL, NULL);
	if (!r)
		r = erase_old(fd, a->device, detached ? 0 : 2 * area, err);
	if (!r && detached) {
		if (ftruncate(hfd, 0) < 0 && errno != EINVAL)	/* EINVAL: a block device */
			r = lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot truncate %s: %s",
				   a->header, strerror(errno));
		else
			r = erase_old(hfd, a->header, 0, err);
	}
	if (!r)
		r = write_sealed(env, detached ? hfd : fd, h, &kek, err);
	if (r < 0)
		goto fail;
	lc_info("formatted %s as volume %s: workspace %s, project %s, %" PRIu32 " segments of %" PRIu64 " bytes, CMK %s version %s%s%s",
		a->device, uuid_str, h->workspace, h->project, count, seg_bytes, h->cmk_id,
		h->cmk_version[0] ? h->cmk_version : "-", detached ? ", header in " : "",
		detached ? a->header : "");
	audit_d(env, "format", LC_AUDIT_SUCCESS, &ids, &rep, NULL, now_ms() - t0,
		detail[0] ? detail : NULL);
	if (out) {
		*out = h;
		h = NULL;
	}
	return 0;
fail:
	audit_d(env, "format", LC_AUDIT_FAILURE, &ids, NULL, err, now_ms() - t0,
		detail[0] ? detail : NULL);
	return r;
}

/*
 * Unwrap the DEKs of segments [first, first + n) of @h into @deks (locked,
 * n * key_size bytes).  Crypto-shredded records (rotate.h) get no key:
 * *@live (malloc'd, indexed from @first; free it) marks the others, or is
 * NULL when none of them is shredded; *@nshred (may be NULL) counts them.
 */
static int unwrap_range(const struct lc_secret *kek, const struct lc_header *h, uint32_t first,
			uint32_t n, struct lc_secret *deks, bool **live, uint32_t *nshred,
			struct lc_error *err)
{
	uint32_t shred = 0;
	int r;

	*live = NULL;
	for (uint32_t i = 0; i < n; i++)
		shred += lc_dek_is_shredded(&h->deks[first + i], h->key_size);
	if (nshred)
		*nshred = shred;
	if (!shred && !first)
		return lc_deks_unwrap_all(kek, h->uuid, h->deks, n, h->key_size, deks, err);
	if (shred) {
		*live = calloc(n ? n : 1, sizeof(**live));
		if (!*live)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory for %" PRIu32 " DEKs", n);
	}
	r = lc_secret_alloc(deks, (size_t)n * h->key_size);
	if (r < 0) {
		free(*live);
		*live = NULL;
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of locked memory for %" PRIu32 " DEKs", n);
	}
	for (uint32_t i = 0; i < n && !r; i++) {
		if (shred && lc_dek_is_shredded(&h->deks[first + i], h->key_size))
			continue;
		if (shred)
			(*live)[i] = true;
		r = lc_dek_unwrap(kek, h->uuid, first + i, &h->deks[first + i], h->key_size,
				  deks->p + (size_t)i * h->key_size, err);
	}
	if (r < 0) {
		lc_secret_free(deks);
		free(*live);
		*live = NULL;
	}
	return r;
}

/* ---- open ---- */

/* Add, load and drop the keys of segments [base, base + count), a batch at
 * a time; @deks holds their @count keys.  With @live (indexed from @base),
 * only the segments it marks (runs of them: a shredded segment gets no
 * key, so the target fails its I/O). */
static int load_keys_from(const struct lc_volume_env *env, const char *name, const char *uuid,
			  const char *prefix, const struct lc_secret *deks, uint32_t base,
			  uint32_t count, uint32_t key_size, const bool *live, struct lc_error *err)
{
	const struct lc_volume_backend *be = env->be;
	uint32_t batch = env->key_batch ? env->key_batch : LC_VOLUME_KEY_BATCH;
	struct lc_keyring kr;
	int r;

	memset(&kr, 0, sizeof(kr));
	r = be->kr_open(env->be_ctx, &kr, uuid, prefix, err);
	if (r < 0)
		return r;
	for (uint32_t first = 0; first < count;) {
		uint32_t n = count - first < batch ? count - first : batch;
		char msg[64];

		if (live) {
			if (!live[first]) {
				first++;
				continue;
			}
			for (uint32_t k = 1; k < n; k++)
				if (!live[first + k]) {
					n = k;
					break;
				}
		}

		r = be->kr_add(env->be_ctx, &kr, base + first, n,
			       deks->p + (size_t)first * key_size, key_size, err);
		if (r < 0)
			break;
		if (n == count && !base)
			snprintf(msg, sizeof(msg), KEY_LOAD_MSG LAKECRYPT_MSG_RANGE_ALL);
		else
			snprintf(msg, sizeof(msg), KEY_LOAD_MSG "%" PRIu32 "-%" PRIu32,
				 base + first, base + first + n - 1);
		r = be->dm_message(env->be_ctx, name, msg, err);
		if (r < 0)
			break;
		r = be->kr_drop(env->be_ctx, &kr, err);
		if (r < 0)
			break;
		first += n;
	}
	be->kr_close(env->be_ctx, &kr);
	return r;
}

static int load_keys(const struct lc_volume_env *env, const char *name, const char *uuid,
		     const char *prefix, const struct lc_secret *deks, uint32_t count,
		     uint32_t key_size, const bool *live, struct lc_error *err)
{
	return load_keys_from(env, name, uuid, prefix, deks, 0, count, key_size, live, err);
}

/*
 * Create the device, load its keys, and on any failure take it all back:
 * device removed, keys purged.  The caller wipes @deks.
 */
static int activate(const struct lc_volume_env *env, struct lc_volume *v,
		    const struct lc_secret *deks, const bool *live, bool ephemeral,
		    struct lc_error *err)
{
	const struct lc_volume_backend *be = env->be;
	_cleanup_free_ char *line = NULL;
	char prefix[LAKECRYPT_MAX_KEY_PREFIX + 1];
	struct lc_dm_table t = { 0 };
	struct lc_error e2;
	int r;

	snprintf(prefix, sizeof(prefix), LC_KEY_PREFIX "%s:", v->uuid);
	t.length = v->length;
	t.cipher = v->cipher;
	t.key_size = v->key_size;
	t.key_prefix = prefix;
	t.segment_sectors = v->segment_sectors;
	t.device = v->devno[0] ? v->devno : v->device;
	t.offset = v->data_offset;
	t.volume_id = v->uuid;
	t.sector_size = v->sector_size;
	t.ephemeral = ephemeral;
	r = lc_dm_table_line(&t, &line, err);
	if (r < 0)
		return r;
	/* The record first: a crash from the create on leaves it behind. */
	v->opened = (int64_t)time(NULL);
	if (env->before_create && (r = env->before_create(env->before_create_ctx, v, err)) < 0)
		return r;
	r = be->dm_create(env->be_ctx, v->name, v->uuid, line, err);
	if (r < 0) {
		if (r == -EEXIST)
			lc_err(err, r, LC_ERRC_INVALID,
			       "a device-mapper device named \"%s\" already exists: choose another name or close it",
			       v->name);
		return r;
	}
	r = load_keys(env, v->name, v->uuid, prefix, deks, v->segments, v->key_size, live, err);
	/* Only now may udev read it (blkid, by-uuid, SYSTEMD_READY). */
	if (r >= 0 && be->dm_announce)
		r = be->dm_announce(env->be_ctx, v->name, err);
	if (r < 0) {
		if (be->dm_remove(env->be_ctx, v->name, &e2) < 0 && e2.code != -ENXIO)
			lc_error_log("removing %s after a failed open failed too: %s", v->name, e2.msg);
		(void)be->kr_purge(env->be_ctx, NULL, NULL, NULL);
	}
	return r;
}

/* Mapping length for a data area of @avail sectors. */
static uint64_t map_length(uint64_t segments, uint64_t seg, uint64_t avail, uint32_t ss)
{
	uint64_t len = segments * seg;

	if (len > avail)
		len = avail;
	return len - len % (ss / 512);
}

/* Does the header's identity match the workspace's current binding? */
static int check_binding(const struct lc_header *h, const char *uuid, const char *workspace,
			 const struct lc_keyconfig *kc, struct lc_error *err)
{
	if (strcmp(h->workspace, workspace))
		return lc_err(err, -EPERM, LC_ERRC_INVALID,
			      "volume %s (project %s) belongs to workspace \"%s\", not to workspace \"%s\": open it in its own workspace",
			      uuid, h->project, h->workspace, workspace);
	if (!kc)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "workspace %s is not bound to a key configuration", workspace);
	if (strcmp(h->keyconfig, kc->name) || strcmp(h->provider, kc->provider) ||
	    strcmp(h->provider_ref, kc->key_ref))
		return lc_err(err, -EPERM, LC_ERRC_INVALID,
			      "volume %s was wrapped under key configuration %s (%s %.200s), but workspace %s is bound to key configuration %s (%s %.200s): re-key the volume to the new binding, or bind the workspace back",
			      uuid, h->keyconfig, h->provider, h->provider_ref, workspace, kc->name,
			      kc->provider, kc->key_ref);
	return 0;
}

/*
 * Unwrap the KEK of the first copy in @cand (the used copy, then the
 * other) whose MAC verifies; *@win says which.  A copy whose blob was
 * already unwrapped (or denied) costs no second KMS call; one whose blob
 * is foreign (INVALID), whose MAC fails, or whose blob the KMS denies is
 * passed over: the blob, and with it the key version the KMS is asked
 * for (Azure reads it from the blob; a stale copy names one since
 * disabled), is the header's choice, so a forged or stale copy must not
 * hide the genuine one.  Transient and misconfigured answers stop at
 * once.  A denial's message names the key version the copy records.
 */
static int unwrap_verified(const struct lc_volume_env *env, struct lc_provider *p,
			   const struct lc_keyconfig *kc, struct lc_header *cand[2],
			   struct lc_secret *kek, int *win, struct ids *ids,
			   struct lc_provider_reply *rep, struct lc_error *err)
{
	const struct lc_buf *done = NULL, *denied = NULL;
	struct lc_error first = { 0 };
	char done_ctx[LC_KEK_CONTEXT_MAX] = "", denied_ctx[LC_KEK_CONTEXT_MAX] = "";
	int r = -EBADMSG;

	for (int i = 0; i < 2; i++) {
		_cleanup_secret_ struct lc_secret mk = { 0 };
		struct lc_header *h = cand[i];
		struct lc_error e = { 0 };
		struct lc_kek_identity kid;
		char ctx[LC_KEK_CONTEXT_MAX];

		if (!h)
			continue;
		/* Each copy under the context of its own identity (a forged
		 * copy with another project must not hide the genuine one). */
		kid = (struct lc_kek_identity){ h->uuid, h->workspace, h->project, h->keyconfig };
		if (lc_kek_context(&kid, ctx) < 0)
			continue;	/* precheck() made this impossible */
		if (denied && denied->len == h->wrapped_kek.len && !strcmp(denied_ctx, ctx) &&
		    !memcmp(denied->p, h->wrapped_kek.p, denied->len))
			continue;	/* the same blob: the same denial */
		if (!done || done->len != h->wrapped_kek.len || strcmp(done_ctx, ctx) ||
		    memcmp(done->p, h->wrapped_kek.p, done->len)) {
			lc_secret_free(kek);
			r = lc_provider_unwrap(p, kc->key_ref, &h->wrapped_kek, ctx, kek, rep, &e);
			audit(env, "cmk.unwrap", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, ids, rep,
			      &e, -1);
			if (r == 0 && kek->len != LC_KEK_LEN)
				r = lc_err(&e, -EBADMSG, LC_ERRC_INVALID,
					   "the KMS unwrapped a key of %zu bytes; a KEK has %d",
					   kek->len, LC_KEK_LEN);
			if (r < 0) {
				done = NULL;
				if (e.cls == LC_ERRC_DENIED) {
					size_t n = strlen(e.msg);

					if (h->cmk_version[0] && n + 1 < sizeof(e.msg))
						snprintf(e.msg + n, sizeof(e.msg) - n,
							 " [this header copy's KEK is wrapped under key version %s]",
							 h->cmk_version);
					denied = &h->wrapped_kek;
					snprintf(denied_ctx, sizeof(denied_ctx), "%s", ctx);
				}
				if (!first.code)
					first = e;
				if (e.cls != LC_ERRC_INVALID && e.cls != LC_ERRC_DENIED)
					break;	/* transient, misconfigured: final */
				continue;
			}
			done = &h->wrapped_kek;
			snprintf(done_ctx, sizeof(done_ctx), "%s", ctx);
		}
		r = lc_header_mac_key(kek, h->uuid, &mk, &e);
		if (!r)
			r = lc_header_verify(h, mk.p, &e);
		if (!r) {
			*win = i;
			return 0;
		}
		if (!first.code)
			first = e;
	}
	lc_secret_free(kek);
	*err = first.code ? first : *err;
	return first.code ? first.code : r;
}

/* The checks of one header copy that need no key: layout kind, version,
 * identity against the binding, cipher, and the wrap context. */
static int precheck(const struct lc_header *h, const char *hpath, bool detached,
		    const struct lc_open_args *a, struct lc_error *err)
{
	char u[LC_UUID_STR_LEN], ctx[LC_KEK_CONTEXT_MAX];
	struct lc_kek_identity kid = { h->uuid, h->workspace, h->project, h->keyconfig };
	int r;

	lc_header_uuid_str(h, u);
	if (a->uuid && a->uuid[0] && strcmp(u, a->uuid))
		return lc_err(err, -EPERM, LC_ERRC_INVALID,
			      "%s holds volume %s, not volume %s, which %s expects under the name \"%s\": not opened (no key was asked for)",
			      hpath, u, a->uuid, a->uuid_source ? a->uuid_source : "the caller",
			      a->name);
	if (detached != !!(h->flags & LC_HDR_F_DETACHED))
		return detached ? lc_err(err, -EINVAL, LC_ERRC_INVALID,
					 "%s holds an attached header (on its data device): open that device without a header argument",
					 hpath)
				: lc_err(err, -EINVAL, LC_ERRC_INVALID,
					 "%s holds a detached header: pass it as header and the data device as device",
					 hpath);
	if (h->version == LC_HDR_VERSION_V1)
		return lc_err(err, -EPROTO, LC_ERRC_INVALID,
			      "volume %s has a version 1 header, which does not authenticate its identity or layout; this agent opens only version %d: an admin checks it with `lakecryptctl dump %s` and migrates it with `lakecryptctl migrate %s --workspace %s` (one unwrap, one wrap, no data re-encrypted)",
			      u, LC_HDR_VERSION, hpath, a->device, h->workspace);
	if (h->version == LC_HDR_VERSION_V3)	/* segrekey.c: the admin resumes it */
		return lc_err(err, -EBUSY, LC_ERRC_INVALID,
			      "volume %s: re-key of segment %" PRIu32 " in progress (%" PRIu64
			      " sectors done): run `lakecryptctl rekey-segment %s --segment %" PRIu32
			      " --resume` before opening it", u, h->journal.segment, h->journal.done,
			      a->device, h->journal.segment);
	r = check_binding(h, u, a->workspace, a->kc, err);
	if (r < 0)
		return r;
	r = lc_cipher_allowed(h->cipher, h->key_size, err);
	if (r < 0)
		return r;
	if (lc_kek_context(&kid, ctx) < 0 || h->wrap_context.len != strlen(ctx) ||
	    memcmp(h->wrap_context.p, ctx, h->wrap_context.len))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "%s: the header's wrap context does not match its identity (volume %s, workspace %s, project %s, key configuration %s): the header was edited",
			      hpath, u, h->workspace, h->project, h->keyconfig);
	return 0;
}

#define BY_UUID		"/dev/disk/by-uuid/"
#define BY_LAKECRYPT	"/dev/disk/by-lakecrypt/"

/* Named by uuid (uuidscan.h): @a->uuid, or a link another disk's header
 * copy can take.  @path_uuid receives a by-uuid path's uuid (lower case)
 * or "".  The path is plain (lc_crypttab_path_plain()), so the prefixes
 * have one spelling; any other symbolic link is found by lc_volume_open()
 * once the device is open. */
static bool by_uuid(const struct lc_open_args *a, char path_uuid[LC_UUID_STR_LEN])
{
	const char *d = a->device ? a->device : "";
	size_t n = strlen(BY_UUID);

	path_uuid[0] = '\0';
	if (!strncmp(d, BY_UUID, n) && lc_crypttab_is_uuid(d + n, strlen(d + n))) {
		for (size_t i = 0; i < 36; i++)
			path_uuid[i] = (char)(d[n + i] >= 'A' && d[n + i] <= 'F' ?
					      d[n + i] - 'A' + 'a' : d[n + i]);
		path_uuid[36] = '\0';
	}
	return (a->uuid && a->uuid[0]) || !strncmp(d, BY_UUID, n) ||
	       !strncmp(d, BY_LAKECRYPT, strlen(BY_LAKECRYPT));
}

int lc_volume_open(const struct lc_volume_env *env, const struct lc_open_args *args,
		   struct lc_volume **out, struct lc_error *err)
{
	struct lc_open_args a_copy = *args;
	const struct lc_open_args *a = &a_copy;
	char path_uuid[LC_UUID_STR_LEN];
	bool named_by_uuid = by_uuid(args, path_uuid);
	struct lc_header *copies[2] = { NULL, NULL }, *cand[2] = { NULL, NULL }, *h = NULL;
	struct lc_error pre = { 0 };
	_cleanup_volume_ struct lc_volume *v = NULL;
	_cleanup_secret_ struct lc_secret deks = { 0 };
	_cleanup_close_ int hfd = -1, dfd = -1;
	struct lc_provider_reply rep;
	struct lc_header_info info;
	struct lc_provider *p;
	struct ids ids = { a->workspace, NULL, NULL, NULL, NULL, NULL, NULL, a->device };
	const char *hpath;
	char real[PATH_MAX], hreal[PATH_MAX];
	uint64_t bytes, avail, hdr_bytes;
	bool detached = a->header && *a->header, rw = false, via_link;
	struct stat dst, hst;
	int64_t t0 = now_ms();
	struct lc_error dummy;
	bool *live = NULL;
	uint32_t nshred;
	int r, win = 0;

	if (!err)
		err = &dummy;
	*out = NULL;
	/* /dev/disk/by-uuid/<uuid> names the volume it expects, as UUID= does. */
	if ((!a->uuid || !a->uuid[0]) && path_uuid[0]) {
		a_copy.uuid = path_uuid;
		a_copy.uuid_source = "its /dev/disk/by-uuid/ path";
	}
	r = lc_name_check("volume name", a->name, err);
	if (!r)
		r = lc_name_check("workspace", a->workspace, err);
	if (r < 0)
		return r;
	/* One spelling per path: /dev/disk//by-uuid/U is no by-uuid path to
	 * by_uuid(), and a path that differs from the node's only by "//" or
	 * "/./" would pass for a symbolic link (lakecrypttab's rule too). */
	if (!a->device || !lc_crypttab_path_plain(a->device, strlen(a->device)))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "device \"%.200s\" is not a plain path: no \"//\", \"/./\", \"/../\", and no \"/.\" or \"/..\" at the end",
			      a->device ? a->device : "");
	v = calloc(1, sizeof(*v));
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");

	/* The data device: opened once, checked on the descriptor. */
	dfd = dev_open(a->device, !detached, env->be->regular_files, a->allow, a->workspace,
		       &rw, &bytes, &dst, real, err);
	if (dfd < 0) {
		r = dfd;
		goto fail;
	}
	/* Through a symbolic link (the path is plain, so any difference from
	 * the node's own path is one): by-id/lvm-pv-uuid-*, by-partuuid/,
	 * by-label/, /dev/VG/LV... are named by what a disk holds, and any
	 * link can be retargeted by whoever makes links, so a copy of the
	 * header elsewhere is looked for as for a by-uuid path (uuidscan.h).
	 * Only the node itself (/dev/vdb) is taken as the admin's choice. */
	via_link = strcmp(a->device, real) != 0;
	if (via_link)
		named_by_uuid = true;
	hpath = a->device;
	hfd = dfd;
	dfd = -1;
	if (detached) {
		dfd = hfd;
		hpath = a->header;
		hfd = dev_open(a->header, true, true, NULL, a->workspace, &rw, &hdr_bytes, &hst,
			       hreal, err);
		if (hfd < 0) {
			r = hfd;
			goto fail;
		}
	}
	r = lc_header_read_copies(hfd, copies, &info, err);
	if (r < 0) {
		char msg[LC_ERROR_MSG_MAX];

		memcpy(msg, err->msg, sizeof(msg));
		lc_err(err, r, LC_ERRC_INVALID, "%s: %s%s", hpath, msg,
		       r == -ENOENT && !detached ?
		       " (if the volume has a detached header, pass it as header)" : "");
		goto fail;
	}
	/* Each valid copy, the newer first, must pass the checks that need no
	 * key; a copy that fails them (forged, or a stale label) is passed
	 * over, and the error of the newer one is what the caller sees. */
	for (int i = 0, n = 0; i < 2; i++) {
		struct lc_header *c = copies[i ? !info.used : info.used];
		struct lc_error ce = { 0 };

		if (!c)
			continue;
		r = precheck(c, hpath, detached, a, &ce);
		if (r == 0)
			cand[n++] = c;
		else if (!pre.code)
			pre = ce;
	}
	h = copies[info.used];
	lc_header_uuid_str(h, v->uuid);
	ids.volume = v->uuid;
	ids.project = h->project;
	ids.keyconfig = h->keyconfig;
	ids.provider = h->provider;
	ids.cmk_id = h->cmk_id;
	ids.cmk_version = h->cmk_version;
	if (!cand[0]) {
		*err = pre;
		r = pre.code;
		audit(env, "open", r == -EPERM ? LC_AUDIT_REFUSED : LC_AUDIT_FAILURE, &ids, NULL,
		      err, now_ms() - t0);
		goto out;
	}
	/* By uuid, the disk must be the only one that carries it: a copy of
	 * the header elsewhere is a genuine header (its MAC and the KMS agree)
	 * over someone else's data (uuidscan.h). */
	if (named_by_uuid && !detached) {
		char u[2][LC_UUID_STR_LEN], shown[2 * PATH_MAX + 4];

		/* The link and the disk it named. */
		if (strcmp(a->device, real))
			snprintf(shown, sizeof(shown), "%s (%s)", a->device, real);
		else
			snprintf(shown, sizeof(shown), "%s", a->device);

		for (int i = 0; i < 2 && cand[i]; i++) {
			lc_header_uuid_str(cand[i], u[i]);
			if (i && !strcmp(u[1], u[0]))
				continue;
			r = lc_uuid_unique(a->blk, u[i], shown, &dst,
					   args->uuid && args->uuid[0] ?
					   (args->uuid_source ? args->uuid_source : "UUID=") :
					   path_uuid[0] || !via_link ? "a link named by what a header says" :
					   "a symbolic link, which another disk can take", err);
			if (r < 0) {
				audit(env, "open", r == -ENOTUNIQ ? LC_AUDIT_REFUSED : LC_AUDIT_FAILURE,
				      &ids, NULL, err, now_ms() - t0);
				goto out;
			}
		}
	}
	/* The data device: its size bounds the mapping. */
	if (!detached)
		bytes = hdr_bytes = bytes;
	if (!S_ISBLK(dst.st_mode) && !env->be->regular_files) {
		r = not_blk(a->device, err);
		goto fail;
	}

	p = provider_of(env, a->kc->provider, err);
	if (!p) {
		r = -ENOPROTOOPT;
		goto fail;
	}
	/* The one KMS call of an open (two only if a copy is forged or stale
	 * with another blob), then the MAC: nothing unauthenticated is used. */
	r = unwrap_verified(env, p, a->kc, cand, &v->kek, &win, &ids, &rep, err);
	if (r < 0)
		goto fail;
	h = cand[win];
	/* The copy that authenticated is the volume opened, whatever the
	 * newer (unauthenticated) copy claimed. */
	lc_header_uuid_str(h, v->uuid);
	ids.project = h->project;
	ids.keyconfig = h->keyconfig;
	ids.provider = h->provider;
	ids.cmk_id = h->cmk_id;
	ids.cmk_version = h->cmk_version;
	v->have_kek = true;
	if (env->seqs && (r = lc_seqstore_check(env->seqs, v->uuid, h->seqno, err)) < 0) {
		audit(env, "open", LC_AUDIT_REFUSED, &ids, NULL, err, now_ms() - t0);
		goto out;
	}
	/* Repair the other copy now that the winner is authenticated. */
	if (win != 0 || info.state[!info.used] != LC_COPY_VALID) {
		struct lc_error we;

		if (!rw) {
			lc_warn("%s: a header copy is stale, damaged or forged but the device is read-only: not repaired",
				hpath);
		} else if (seal_write(hfd, h, &v->kek, &we) < 0) {
			lc_warn("%s: a header copy is stale, damaged or forged and could not be repaired: %s",
				hpath, we.msg);
		} else {
			lc_warn("%s: header copy %c was %s; rewritten from the authenticated copy",
				hpath, (win ? info.used : !info.used) ? 'B' : 'A',
				win ? "forged or not authentic" :
				info.state[!info.used] == LC_COPY_STALE ? "stale" : "damaged");
		}
	}
	/* What was opened is remembered, or the open fails: an agent that
	 * cannot keep its rollback memory would accept this header's
	 * predecessors later. */
	if (env->seqs && (r = lc_seqstore_record(env->seqs, v->uuid, h->seqno, err)) < 0) {
		char m[LC_ERROR_MSG_MAX];

		snprintf(m, sizeof(m), "%s", err->msg);
		lc_err(err, r, LC_ERRC_INTERNAL,
		       "volume %s not opened: its header seqno %" PRIu64 " cannot be remembered (%s); free space in the state directory and retry",
		       v->uuid, h->seqno, m);
		goto fail;
	}
	/* dm claims the device exclusively: let go of it first.  The table
	 * names the device number of the descriptor we checked. */
	close(hfd);
	hfd = -1;

	copy_str(v->name, sizeof(v->name), a->name);
	v->kind = LC_VOLUME_PROJECT;
	copy_str(v->device, sizeof(v->device), real);
	if (S_ISBLK(dst.st_mode))
		snprintf(v->devno, sizeof(v->devno), "%u:%u", major(dst.st_rdev),
			 minor(dst.st_rdev));
	copy_str(v->header, sizeof(v->header), detached ? hreal : "");
	copy_str(v->workspace, sizeof(v->workspace), h->workspace);
	copy_str(v->project, sizeof(v->project), h->project);
	copy_str(v->keyconfig, sizeof(v->keyconfig), a->kc->name);
	copy_str(v->provider, sizeof(v->provider), a->kc->provider);
	copy_str(v->provider_ref, sizeof(v->provider_ref), a->kc->key_ref);
	/* The CMK's identity as the KMS reports it, for revocation. */
	copy_str(v->cmk_id, sizeof(v->cmk_id), rep.key_id[0] ? rep.key_id :
		 a->kc->cmk_id[0] ? a->kc->cmk_id : a->kc->key_ref);
	copy_str(v->cmk_version, sizeof(v->cmk_version), h->cmk_version);
	copy_str(v->cipher, sizeof(v->cipher), h->cipher);
	v->key_size = h->key_size;
	v->sector_size = h->sector_size;
	v->segment_sectors = h->segment_sectors;
	v->data_offset = h->data_offset;
	avail = bytes / 512 > h->data_offset ? bytes / 512 - h->data_offset : 0;
	v->length = map_length(h->segment_count, h->segment_sectors, avail, h->sector_size);
	if (!v->length) {
		r = lc_err(err, -ENOSPC, LC_ERRC_INVALID,
			   "device %s (%" PRIu64 " bytes) ends before the data area of volume %s (sector %" PRIu64 ")",
			   a->device, bytes, v->uuid, h->data_offset);
		goto fail;
	}
	v->segments = (uint32_t)(v->length / v->segment_sectors + !!(v->length % v->segment_sectors));
	if (v->segments < h->segment_count)
		lc_warn("%s is smaller than volume %s: mapping %" PRIu32 " of its %" PRIu32 " segments",
			a->device, v->uuid, v->segments, h->segment_count);
	if (rep.key_version[0])
		copy_str(v->cmk_version, sizeof(v->cmk_version), rep.key_version);
	r = unwrap_range(&v->kek, h, 0, v->segments, &deks, &live, &nshred, err);
	if (!r && nshred)
		lc_info("volume %s: %" PRIu32 " of %" PRIu32 " segments are shredded: no key loaded for them",
			v->uuid, nshred, v->segments);
	if (r < 0) {
		free(live);
		goto fail;
	}
	if (dfd >= 0) {
		close(dfd);
		dfd = -1;
	}
	r = activate(env, v, &deks, live, false, err);
	free(live);
	lc_secret_free(&deks);
	if (r < 0)
		goto fail;
	v->opened = (int64_t)time(NULL);
	lc_info("opened volume %s (workspace %s, project %s) as /dev/mapper/%s: %" PRIu32 " segments, one KMS call (%s)",
		v->uuid, v->workspace, v->project, v->name, v->segments,
		rep.request_id[0] ? rep.request_id : "no request id");
	audit(env, "open", LC_AUDIT_SUCCESS, &ids, &rep, NULL, now_ms() - t0);
	*out = v;
	v = NULL;
	r = 0;
	goto out;
fail:
	audit(env, "open", LC_AUDIT_FAILURE, &ids, NULL, err, now_ms() - t0);
out:
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	return r;
}

/* ---- migrate ---- */

int lc_volume_migrate(const struct lc_volume_env *env, const struct lc_open_args *a,
		      struct lc_header **out, struct lc_error *err)
{
	_cleanup_header_ struct lc_header *h = NULL;
	_cleanup_secret_ struct lc_secret kek = { 0 }, deks = { 0 };
	_cleanup_close_ int fd = -1;
	struct lc_provider_reply rep;
	struct lc_provider *p;
	struct lc_kek_identity kid;
	struct ids ids = { a->workspace, NULL, NULL, NULL, NULL, NULL, NULL, a->device };
	char ctx1[LC_KEK_CONTEXT_MAX], ctx[LC_KEK_CONTEXT_MAX], u[LC_UUID_STR_LEN];
	char real[PATH_MAX];
	const char *hpath = a->header && *a->header ? a->header : a->device;
	uint64_t bytes;
	struct stat st;
	int64_t t0 = now_ms();
	struct lc_error dummy;
	int r;

	if (!err)
		err = &dummy;
	if (out)
		*out = NULL;
	fd = dev_open(hpath, true, true, NULL, a->workspace, NULL, &bytes, &st, real, err);
	if (fd < 0)
		return fd;
	r = lc_header_read(fd, &h, NULL, err);
	if (r < 0)
		return r;
	lc_header_uuid_str(h, u);
	ids.volume = u;
	ids.project = h->project;
	ids.keyconfig = h->keyconfig;
	ids.provider = h->provider;
	ids.cmk_id = h->cmk_id;
	if (h->version != LC_HDR_VERSION_V1)
		return lc_err(err, -EALREADY, LC_ERRC_INVALID,
			      "volume %s already has a version %u header", u, h->version);
	r = check_binding(h, u, a->workspace, a->kc, err);
	if (!r)
		r = lc_cipher_allowed(h->cipher, h->key_size, err);
	if (r < 0)
		goto fail;
	kid = (struct lc_kek_identity){ h->uuid, h->workspace, h->project, h->keyconfig };
	lc_kek_context_v1(h->uuid, ctx1);
	if (lc_kek_context(&kid, ctx) < 0) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID, "volume %s: its labels are not valid names", u);
		goto fail;
	}
	p = provider_of(env, a->kc->provider, err);
	if (!p) {
		r = -ENOPROTOOPT;
		goto fail;
	}
	r = lc_provider_unwrap(p, a->kc->key_ref, &h->wrapped_kek, ctx1, &kek, &rep, err);
	audit(env, "cmk.unwrap", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, &ids, &rep, err, -1);
	if (!r && kek.len != LC_KEK_LEN)
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID, "the KMS unwrapped a key of %zu bytes",
			   kek.len);
	if (r < 0)
		goto fail;
	/* Every DEK record must be the KEK's own before the header is sealed. */
	r = lc_deks_unwrap_all(&kek, h->uuid, h->deks, h->segment_count, h->key_size, &deks, err);
	lc_secret_free(&deks);
	if (r < 0)
		goto fail;
	r = wrap_kek(env, p, a->kc->key_ref, &kek, ctx, h, &ids, &rep, err);
	if (r < 0)
		goto fail;
	free(h->wrap_context.p);
	h->wrap_context.p = (uint8_t *)strdup(ctx);
	h->wrap_context.len = strlen(ctx);
	if (!h->wrap_context.p) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto fail;
	}
	r = write_sealed(env, fd, h, &kek, err);
	if (r < 0)
		goto fail;
	lc_info("migrated the header of volume %s (%s) to version %d", u, hpath, LC_HDR_VERSION);
	audit(env, "migrate", LC_AUDIT_SUCCESS, &ids, &rep, NULL, now_ms() - t0);
	if (out) {
		*out = h;
		h = NULL;
	}
	return 0;
fail:
	audit(env, "migrate", LC_AUDIT_FAILURE, &ids, NULL, err, now_ms() - t0);
	return r;
}

/* ---- cache ---- */

int lc_volume_cache_open(const struct lc_volume_env *env, const struct lc_keyconfig *kc,
			 const struct lc_cache_args *a, struct lc_volume **out,
			 struct lc_error *err)
{
	_cleanup_volume_ struct lc_volume *v = NULL;
	_cleanup_secret_ struct lc_secret deks = { 0 };
	struct lc_provider_reply rep;
	struct lc_provider *p;
	struct ids ids = { a->workspace, a->name, kc->name, kc->provider, kc->cmk_id, NULL,
			   NULL, a->device };
	const char *cipher = a->cipher && *a->cipher ? a->cipher : LC_DM_DEFAULT_CIPHER;
	uint32_t key_size = a->key_size ? a->key_size : DEFAULT_KEY_SIZE;
	uint64_t seg_bytes = a->segment_size ? a->segment_size : DEFAULT_SEGMENT_SIZE;
	uint64_t bytes, count;
	uint8_t uuid[LC_UUID_LEN];
	char real[PATH_MAX];
	struct stat st;
	int64_t t0 = now_ms();
	struct lc_error dummy;
	int r;

	if (!err)
		err = &dummy;
	*out = NULL;
	r = lc_name_check("volume name", a->name, err);
	if (!r)
		r = lc_name_check("workspace", a->workspace, err);
	if (!r)
		r = check_geometry(cipher, key_size, seg_bytes, 512, err);
	if (r < 0)
		return r;
	{
		_cleanup_close_ int fd = dev_open(a->device, false, env->be->regular_files, a->allow,
						  a->workspace, NULL, &bytes, &st, real, err);

		if (fd < 0)
			return fd;
		r = pin_check(a->pin_device, &st, "device", a->device, err);
		if (r < 0)
			return r;
		r = refuse_overwrite(fd, a->device, a->force, err);
		if (r < 0)
			return r;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	v->kind = LC_VOLUME_CACHE;
	copy_str(v->name, sizeof(v->name), a->name);
	copy_str(v->device, sizeof(v->device), real);
	if (S_ISBLK(st.st_mode))
		snprintf(v->devno, sizeof(v->devno), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	copy_str(v->workspace, sizeof(v->workspace), a->workspace);
	copy_str(v->project, sizeof(v->project), a->name);
	copy_str(v->keyconfig, sizeof(v->keyconfig), kc->name);
	copy_str(v->provider, sizeof(v->provider), kc->provider);
	copy_str(v->provider_ref, sizeof(v->provider_ref), kc->key_ref);
	copy_str(v->cmk_id, sizeof(v->cmk_id), kc->cmk_id[0] ? kc->cmk_id : kc->key_ref);
	copy_str(v->cipher, sizeof(v->cipher), cipher);
	v->key_size = key_size;
	v->sector_size = 512;
	v->segment_sectors = seg_bytes / 512;
	v->length = bytes / 512;
	count = v->length / v->segment_sectors + !!(v->length % v->segment_sectors);
	if (!v->length) {
		r = lc_err(err, -ENOSPC, LC_ERRC_INVALID, "device %s is empty", a->device);
		goto fail;
	}
	if (count > LAKECRYPT_MAX_SEGMENTS) {
		r = lc_err(err, -EFBIG, LC_ERRC_INVALID,
			   "%s would need %" PRIu64 " segments of %" PRIu64 " bytes; at most %u are possible: use a larger segment_size",
			   a->device, count, seg_bytes, LAKECRYPT_MAX_SEGMENTS);
		goto fail;
	}
	v->segments = (uint32_t)count;
	r = random_uuid(uuid, err);
	if (r < 0)
		goto fail;
	lc_uuid_format(uuid, v->uuid);
	ids.volume = v->uuid;

	/* The cache lives under the workspace's CMK: it must be usable now. */
	p = provider_of(env, kc->provider, err);
	if (!p) {
		r = -ENOPROTOOPT;
		goto fail;
	}
	r = lc_provider_key_state(p, kc->key_ref, &rep, err);
	if (!r && rep.state != LC_KEY_ENABLED)
		r = lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
			   "CMK %s of key configuration %s is %s: a cache volume needs an enabled CMK",
			   kc->key_ref, kc->name, lc_key_state_name(rep.state));
	audit(env, "cmk.key_state", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, &ids, &rep, err, -1);
	if (r < 0)
		goto fail;
	if (rep.key_version[0])
		copy_str(v->cmk_version, sizeof(v->cmk_version), rep.key_version);
	r = lc_deks_generate(&deks, v->segments, key_size, err);
	if (r < 0)
		goto fail;
	r = activate(env, v, &deks, NULL, true, err);
	lc_secret_free(&deks);
	if (r < 0)
		goto fail;
	v->opened = (int64_t)time(NULL);
	lc_info("opened cache volume %s on %s (workspace %s, CMK %s): %" PRIu32 " segments, keys exist only in the kernel",
		v->name, v->device, v->workspace, v->cmk_id, v->segments);
	audit(env, "cache.open", LC_AUDIT_SUCCESS, &ids, NULL, NULL, now_ms() - t0);
	*out = v;
	v = NULL;
	return 0;
fail:
	audit(env, "cache.open", LC_AUDIT_FAILURE, &ids, NULL, err, now_ms() - t0);
	return r;
}

/* ---- close, revoke, re-wrap, status ---- */

static int send_revoke(const struct lc_volume_env *env, struct lc_volume *v, struct lc_error *err)
{
	return env->be->dm_message(env->be_ctx, v->name, LAKECRYPT_MSG_REVOKE, err);
}

/* Discard the mapped range of a closed cache's backing device, if it is
 * still the block device the cache mapped (its key is gone either way). */
static void cache_discard(const struct lc_volume *v)
{
	uint64_t range[2] = { 0, v->length * 512 };
	int fd = open(v->device, O_WRONLY | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char d[24] = "";

	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISBLK(st.st_mode))
		snprintf(d, sizeof(d), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	if (!d[0] || strcmp(d, v->devno)) {
		lc_warn("cache volume %s: %s not discarded (busy, or no longer the device the cache mapped); its key is gone with the mapping",
			v->name, v->device);
	} else if (ioctl(fd, BLKDISCARD, range) < 0) {
		lc_warn("cache volume %s: discard of %s failed (%s); its key is gone with the mapping",
			v->name, v->device, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
}

int lc_volume_close(const struct lc_volume_env *env, struct lc_volume *v, struct lc_error *err)
{
	struct ids ids;
	int64_t t0 = now_ms();
	struct lc_error dummy;
	int r;

	if (!err)
		err = &dummy;
	ids_of_volume(&ids, v);
	/* Remove first: a busy device fails here and nothing is destroyed. */
	r = env->be->dm_remove(env->be_ctx, v->name, err);
	if (r == -ENXIO || r == -ENODEV) {
		lc_warn("volume %s: device /dev/mapper/%s was already gone", v->uuid, v->name);
		r = 0;
	}
	if (r < 0) {
		if (r == -EBUSY)
			lc_err(err, r, LC_ERRC_INVALID,
			       "/dev/mapper/%s is busy (mounted or open): unmount it and try again; nothing was changed",
			       v->name);
		audit(env, "close", LC_AUDIT_FAILURE, &ids, NULL, err, now_ms() - t0);
		return r;
	}
	lc_secret_free(&v->kek);
	v->have_kek = false;
	/* The table's destructor wiped the cache's keys; shred what is left. */
	if (v->kind == LC_VOLUME_CACHE && !env->be->regular_files)
		cache_discard(v);
	lc_info("closed volume %s (/dev/mapper/%s)", v->uuid, v->name);
	audit(env, "close", LC_AUDIT_SUCCESS, &ids, NULL, NULL, now_ms() - t0);
	return 0;
}

int lc_volume_revoke(const struct lc_volume_env *env, struct lc_volume *v, const char *cause,
		     bool denied, struct lc_error *err)
{
	struct lc_error e = { 0 }, e2 = { 0 };
	unsigned int removed = 0, left = 0;
	int64_t t0 = now_ms();
	int r, first = 0;

	r = send_revoke(env, v, &e);
	if (r < 0 && r != -ENXIO && r != -ENODEV) {
		lc_error_log("volume %s: revoke message to /dev/mapper/%s failed: %s", v->uuid,
			     v->name, e.msg);
		first = r;
		if (err)
			*err = e;
	}
	r = env->be->kr_purge(env->be_ctx, &removed, &left, &e2);
	if (r < 0) {
		lc_error_log("volume %s: keyring purge: %s", v->uuid, e2.msg);
		if (!first) {
			first = r;
			if (err)
				*err = e2;
		}
	}
	lc_secret_free(&v->kek);
	v->have_kek = false;
	v->revoked = true;
	copy_str(v->revoke_cause, sizeof(v->revoke_cause), cause);
	lc_warn("REVOKED volume %s (/dev/mapper/%s, workspace %s, CMK %s): %s; %u key(s) purged",
		v->uuid, v->name, v->workspace, v->cmk_id, cause ? cause : "revoked", removed);
	lc_volume_audit_revoke(env, v, denied, first ? (e.code ? &e : &e2) : NULL, now_ms() - t0);
	return first;
}

void lc_volume_audit_revoke(const struct lc_volume_env *env, const struct lc_volume *v,
			    bool denied, const struct lc_error *failed, int64_t latency_ms)
{
	struct lc_error d = { .code = -EKEYREVOKED, .cls = LC_ERRC_DENIED };
	struct ids ids;

	ids_of_volume(&ids, v);
	audit(env, "revoke", failed ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, &ids, NULL,
	      denied ? &d : failed, latency_ms);
}

/*
 * The header copy of open volume @v that its KEK authenticates, read from
 * @fd (@hpath for messages): *@h points into @copies (free both).  -EBADMSG
 * if no copy authenticates, -ESTALE if it is another volume now.
 */
static int authenticated_copy(int fd, const char *hpath, const struct lc_volume *v,
			      struct lc_header *copies[2], struct lc_header_info *info,
			      struct lc_header **h, struct lc_error *err)
{
	char u[LC_UUID_STR_LEN];
	int r;

	*h = NULL;
	r = lc_header_read_copies(fd, copies, info, err);
	if (r < 0)
		return r;
	for (int i = 0; i < 2 && !*h; i++) {
		struct lc_header *c = copies[i ? !info->used : info->used];
		_cleanup_secret_ struct lc_secret mk = { 0 };

		if (c && lc_header_mac_key(&v->kek, c->uuid, &mk, NULL) == 0 &&
		    lc_header_verify(c, mk.p, NULL) == 0)
			*h = c;
	}
	if (!*h)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "%s: no header copy is authenticated by the KEK of open volume %s",
			      hpath, v->uuid);
	lc_header_uuid_str(*h, u);
	if (strcmp(u, v->uuid))
		return lc_err(err, -ESTALE, LC_ERRC_INVALID,
			      "%s now holds volume %s, not the open volume %s", hpath, u, v->uuid);
	return 0;
}

int lc_volume_rewrap(const struct lc_volume_env *env, struct lc_volume *v, struct lc_error *err)
{
	struct lc_header *copies[2] = { NULL, NULL }, *h = NULL;
	struct lc_header_info info;
	struct lc_kek_identity kid;
	_cleanup_close_ int fd = -1;
	struct lc_provider_reply rep;
	struct lc_provider *p;
	struct ids ids;
	const char *hpath = v->header[0] ? v->header : v->device;
	char ctx[LC_KEK_CONTEXT_MAX];
	int64_t t0 = now_ms();
	struct lc_error dummy;
	int r;

	if (!err)
		err = &dummy;
	ids_of_volume(&ids, v);
	if (v->kind != LC_VOLUME_PROJECT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s is a cache volume: it has no wrapped key to re-wrap", v->name);
	if (v->revoked)
		return lc_err(err, -EKEYREVOKED, LC_ERRC_INVALID,
			      "volume %s is revoked: close it, and open it again once the CMK allows", v->name);
	if (!v->have_kek)
		return lc_err(err, -ENOKEY, LC_ERRC_INVALID,
			      "the agent does not hold the KEK of %s (it was restarted since the open): close and open the volume, then re-wrap",
			      v->name);
	p = provider_of(env, v->provider, err);
	if (!p)
		return -ENOPROTOOPT;
	/* Not O_EXCL: the device is mapped; the header area is outside the
	 * data area, so writing it does not race with the mapping. */
	fd = open(hpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_INVALID, "cannot open %s: %s", hpath,
			      strerror(errno));
	/* Only a copy the open volume's KEK authenticates is re-wrapped. */
	r = authenticated_copy(fd, hpath, v, copies, &info, &h, err);
	if (r < 0)
		goto fail;
	kid = (struct lc_kek_identity){ h->uuid, h->workspace, h->project, h->keyconfig };
	if (lc_kek_context(&kid, ctx) < 0) {
		r = lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "bad identity in an authenticated header");
		goto fail;
	}
	r = lc_op_guard_check(env->guard, "rewrap", err);
	if (!r)
		r = wrap_kek(env, p, v->provider_ref, &v->kek, ctx, h, &ids, &rep, err);
	if (r < 0)
		goto fail;
	r = lc_op_guard_enter(env->guard, "rewrap", err);	/* opguard.h */
	if (!r) {
		r = write_sealed(env, fd, h, &v->kek, err);
		lc_op_guard_leave(env->guard);
	}
	if (r < 0)
		goto fail;
	copy_str(v->cmk_id, sizeof(v->cmk_id), h->cmk_id);
	copy_str(v->cmk_version, sizeof(v->cmk_version), h->cmk_version);
	ids_of_volume(&ids, v);
	lc_info("re-wrapped the KEK of volume %s under CMK %s version %s", v->uuid, v->cmk_id,
		v->cmk_version[0] ? v->cmk_version : "-");
	audit(env, "rotate", LC_AUDIT_SUCCESS, &ids, &rep, NULL, now_ms() - t0);
	r = 0;
	goto out;
fail:
	audit(env, "rotate", LC_AUDIT_FAILURE, &ids, NULL, err, now_ms() - t0);
out:
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	return r;
}

/* ---- resize ---- */

/* Segments a header area may hold before the data at @data_offset
 * (sectors) of an attached header: both copies must fit in front of it. */
static uint32_t attached_capacity(uint64_t data_offset, uint32_t key_size)
{
	uint32_t stride = lc_header_dek_stride(key_size);
	uint64_t area = LC_HDR_AREA_MAX, n;

	while (area > LC_HDR_AREA_MIN && 2 * area > data_offset * 512)
		area >>= 1;
	if (2 * area > data_offset * 512 || !stride)
		return 0;
	n = (area - LC_HDR_FIXED_SIZE) / stride;
	return n > LC_HDR_SEGMENTS_MAX ? LC_HDR_SEGMENTS_MAX : (uint32_t)n;
}

/*
 * The new table: same volume, new length; reload and resume.  If the
 * kernel swapped it in but could not carry the keys over (-EAGAIN), load
 * every key of @h again (the KEK is here; no KMS call) and resume.
 */
static int reload_table(const struct lc_volume_env *env, struct lc_volume *v,
			const struct lc_header *h, uint64_t length, uint32_t count,
			struct lc_error *err)
{
	const struct lc_volume_backend *be = env->be;
	_cleanup_secret_ struct lc_secret deks = { 0 };
	_cleanup_free_ char *line = NULL;
	char prefix[LAKECRYPT_MAX_KEY_PREFIX + 1];
	struct lc_dm_table t = { 0 };
	bool *live = NULL;
	int r;

	snprintf(prefix, sizeof(prefix), LC_KEY_PREFIX "%s:", v->uuid);
	t.length = length;
	t.cipher = v->cipher;
	t.key_size = v->key_size;
	t.key_prefix = prefix;
	t.segment_sectors = v->segment_sectors;
	t.device = v->devno[0] ? v->devno : v->device;
	t.offset = v->data_offset;
	t.volume_id = v->uuid;
	t.sector_size = v->sector_size;
	r = lc_dm_table_line(&t, &line, err);
	if (r < 0)
		return r;
	r = be->dm_reload(env->be_ctx, v->name, line, err);
	if (r != -EAGAIN)
		return r;
	lc_error_log("%s: %s; loading its keys again", v->name, err->msg);
	r = unwrap_range(&v->kek, h, 0, count, &deks, &live, NULL, err);
	if (!r)
		r = load_keys(env, v->name, v->uuid, prefix, &deks, count, v->key_size, live, err);
	free(live);
	if (!r)
		r = be->dm_resume(env->be_ctx, v->name, err);
	return r;
}

/* Write @nh sealed; if the copies on disk are not both current (a change
 * of area needs them so), write the authenticated @h once first. */
static int write_header(const struct lc_volume_env *env, int fd, struct lc_header *h,
			struct lc_header *nh, const struct lc_secret *kek, struct lc_error *err)
{
	int r;

	nh->seqno = h->seqno;
	r = write_sealed(env, fd, nh, kek, err);
	if (r != -EAGAIN)
		return r;
	r = write_sealed(env, fd, h, kek, err);
	if (r < 0)
		return r;
	nh->seqno = h->seqno;
	return write_sealed(env, fd, nh, kek, err);
}

int lc_volume_resize(const struct lc_volume_env *env, struct lc_volume *v, uint64_t size,
		     struct lc_error *err)
{
	struct lc_header *copies[2] = { NULL, NULL }, *h = NULL;
	_cleanup_header_ struct lc_header *nh = NULL;
	const struct lc_header *src;
	_cleanup_secret_ struct lc_secret deks = { 0 };
	_cleanup_close_ int fd = -1, dfd = -1;
	const struct lc_volume_backend *be = env->be;
	const char *hpath = v->header[0] ? v->header : v->device;
	char prefix[LAKECRYPT_MAX_KEY_PREFIX + 1], devno[24];
	uint64_t bytes, avail, want, length, count64, old_length = v->length;
	uint32_t count, cap, old_count, table_segs = v->segments;
	struct lc_header_info info;
	struct ids ids;
	struct stat st;
	bool detached = v->header[0];
	int64_t t0 = now_ms();
	struct lc_error dummy;
	int r;

	if (!err)
		err = &dummy;
	ids_of_volume(&ids, v);
	if (v->kind != LC_VOLUME_PROJECT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s is a cache volume: close it and open it again on the resized device",
			      v->name);
	if (v->revoked)
		return lc_err(err, -EKEYREVOKED, LC_ERRC_INVALID,
			      "volume %s is revoked: it cannot be resized", v->name);
	if (!v->have_kek)
		return lc_err(err, -ENOKEY, LC_ERRC_INVALID,
			      "the agent does not hold the KEK of %s (it was restarted since the open): close and open the volume, then resize",
			      v->name);
	if (!be->dm_reload || !be->dm_resume)
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_INTERNAL,
			      "backend %s cannot reload a table", be->name);
	if (size % 512)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "size %" PRIu64 " is not a whole number of 512-byte sectors", size);

	/* The backing device as mapped: same device number as at open. */
	dfd = open(v->device, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (dfd < 0)
		return lc_err(err, -errno, LC_ERRC_INVALID, "cannot open %s: %s", v->device,
			      strerror(errno));
	if (fstat(dfd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot stat %s: %s", v->device,
			      strerror(errno));
	if (S_ISBLK(st.st_mode))
		snprintf(devno, sizeof(devno), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	if ((S_ISBLK(st.st_mode) && v->devno[0] && strcmp(devno, v->devno)) ||
	    (!S_ISBLK(st.st_mode) && !(S_ISREG(st.st_mode) && be->regular_files)))
		return lc_err(err, -ESTALE, LC_ERRC_INVALID,
			      "%s is no longer the device volume %s was opened on (%s): not resizing",
			      v->device, v->name, v->devno[0] ? v->devno : "-");
	r = lc_device_size(dfd, v->device, &bytes, NULL, err);
	if (r < 0)
		return r;

	fd = open(hpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_INVALID, "cannot open %s: %s", hpath,
			      strerror(errno));
	r = authenticated_copy(fd, hpath, v, copies, &info, &h, err);
	if (r < 0)
		goto fail;
	old_count = h->segment_count;

	avail = bytes / 512;
	if (avail <= h->data_offset) {
		r = lc_err(err, -ENOSPC, LC_ERRC_INVALID,
			   "%s has %" PRIu64 " bytes, not more than the header in front of the data",
			   v->device, bytes);
		goto fail;
	}
	avail -= h->data_offset;
	want = size ? size / 512 : avail;
	if (want > avail) {
		r = lc_err(err, -ENOSPC, LC_ERRC_INVALID,
			   "%s has room for %" PRIu64 " bytes of data, less than the %" PRIu64 " asked: grow the device first",
			   v->device, avail * 512, size);
		goto fail;
	}
	want -= want % (h->sector_size / 512);
	if (!want) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "size %" PRIu64 " is smaller than one %" PRIu32 "-byte sector", size,
			   h->sector_size);
		goto fail;
	}
	count64 = want / h->segment_sectors + !!(want % h->segment_sectors);
	cap = detached ? LC_HDR_SEGMENTS_MAX : attached_capacity(h->data_offset, h->key_size);
	if (count64 > cap) {
		r = lc_err(err, -EFBIG, LC_ERRC_INVALID,
			   "%s would need %" PRIu64 " segments, but %s holds at most %" PRIu32 " (%" PRIu64 " bytes of data): %s",
			   v->name, count64, detached ? "a header" : "the header area in front of the data",
			   cap, (uint64_t)cap * h->segment_sectors * 512,
			   detached ? "use a larger segment size" :
			   "format with a detached header or a larger segment size to grow further");
		goto fail;
	}
	count = (uint32_t)count64;
	length = map_length(count, h->segment_sectors, want, h->sector_size);
	if (length == v->length && count == old_count) {
		r = 0;
		goto out;	/* nothing to do */
	}

	nh = lc_header_resized(h, count);
	if (!nh) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory for %" PRIu32 " segments",
			   count);
		goto fail;
	}
	snprintf(prefix, sizeof(prefix), LC_KEY_PREFIX "%s:", v->uuid);
	/*
	 * Growing: the header first (the new keys must be on disk before any
	 * data is written with them), then the table, then the new keys.
	 * Shrinking: the table first (no I/O reaches the dropped segments),
	 * then the header drops their wrapped keys.  A cut between the two
	 * leaves a volume that opens at its old or its new size, and running
	 * the resize again finishes it.
	 */
	if (count > old_count) {
		_cleanup_secret_ struct lc_secret fresh = { 0 };

		r = lc_deks_generate(&fresh, count - old_count, v->key_size, err);
		for (uint32_t i = 0; !r && i < count - old_count; i++)
			r = lc_dek_wrap(&v->kek, nh->uuid, old_count + i, 1,
					fresh.p + (size_t)i * v->key_size, v->key_size,
					&nh->deks[old_count + i], err);
		if (!r)
			r = write_header(env, fd, h, nh, &v->kek, err);
		if (r < 0)
			goto fail;
	}
	src = count > old_count ? nh : h;	/* holds the records of every mapped segment */
	if (length != v->length) {
		r = reload_table(env, v, src, length, count, err);
		if (r < 0)
			goto fail;
		v->length = length;
		v->segments = count;
	}
	if (count > table_segs) {
		bool *live = NULL;

		r = unwrap_range(&v->kek, src, table_segs, count - table_segs, &deks, &live, NULL,
				 err);
		if (!r)
			r = load_keys_from(env, v->name, v->uuid, prefix, &deks, table_segs,
					   count - table_segs, v->key_size, live, err);
		free(live);
		if (r < 0)
			goto fail;
	}
	if (count < old_count)
		r = write_header(env, fd, h, nh, &v->kek, err);
	if (r < 0)
		goto fail;
	lc_info("resized volume %s (%s) from %" PRIu64 " to %" PRIu64 " bytes, %" PRIu32 " to %" PRIu32 " segments",
		v->name, v->uuid, old_length * 512, length * 512, table_segs, count);
	audit(env, "resize", LC_AUDIT_SUCCESS, &ids, NULL, NULL, now_ms() - t0);
	r = 0;
	goto out;
fail:
	audit(env, "resize", LC_AUDIT_FAILURE, &ids, NULL, err, now_ms() - t0);
out:
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	return r;
}

int lc_volume_status(const struct lc_volume_env *env, const struct lc_volume *v,
		     struct lc_dm_status *st, struct lc_error *err)
{
	return env->be->dm_status(env->be_ctx, v->name, st, err);
}

/* ---- JSON ---- */

#define JADD(o, k, v) json_object_object_add(o, k, v)

static json_object *to_json(const struct lc_volume *v, const struct lc_dm_status *st,
			    bool internal)
{
	json_object *o = json_object_new_object();
	char dm[sizeof(v->name) + 16];
	bool revoked = v->revoked || (st && st->state == LC_DM_STATE_REVOKED);

	if (!o)
		return NULL;
	snprintf(dm, sizeof(dm), "/dev/mapper/%s", v->name);
	JADD(o, "name", json_object_new_string(v->name));
	JADD(o, "kind", json_object_new_string(v->kind == LC_VOLUME_CACHE ? "cache" : "project"));
	JADD(o, "uuid", json_object_new_string(v->uuid));
	JADD(o, "device", json_object_new_string(v->device));
	if (v->devno[0])
		JADD(o, "devno", json_object_new_string(v->devno));
	if (v->header[0] || internal)
		JADD(o, "header", json_object_new_string(v->header));
	JADD(o, "dm_device", json_object_new_string(dm));
	JADD(o, "workspace", json_object_new_string(v->workspace));
	JADD(o, "project", json_object_new_string(v->project));
	JADD(o, "keyconfig", json_object_new_string(v->keyconfig));
	JADD(o, "provider", json_object_new_string(v->provider));
	JADD(o, "cmk_id", json_object_new_string(v->cmk_id));
	JADD(o, "cmk_version", json_object_new_string(v->cmk_version));
	JADD(o, "segments", json_object_new_int64(v->segments));
	JADD(o, "segment_size", json_object_new_uint64(v->segment_sectors * 512));
	JADD(o, "state", json_object_new_string(revoked ? "revoked" : "active"));
	if (v->revoked)
		JADD(o, "revoke_cause", json_object_new_string(v->revoke_cause));
	JADD(o, "kek_held", json_object_new_boolean(v->have_kek));
	JADD(o, "cipher", json_object_new_string(v->cipher));
	JADD(o, "key_size", json_object_new_int64(v->key_size));
	JADD(o, "sector_size", json_object_new_int64(v->sector_size));
	JADD(o, "opened", json_object_new_int64(v->opened));
	if (internal) {
		JADD(o, "provider_ref", json_object_new_string(v->provider_ref));
		JADD(o, "data_offset", json_object_new_uint64(v->data_offset));
		JADD(o, "length", json_object_new_uint64(v->length));
		JADD(o, "revoked", json_object_new_boolean(v->revoked));
		return o;
	}
	JADD(o, "keys_loaded", json_object_new_int64(st ? st->keys_loaded : 0));
	JADD(o, "reads", json_object_new_uint64(st ? st->reads : 0));
	JADD(o, "writes", json_object_new_uint64(st ? st->writes : 0));
	JADD(o, "io_errors", json_object_new_uint64(st ? st->io_errors : 0));
	JADD(o, "discard", json_object_new_string(lc_dm_discard_name(st ? st->discard :
								     LC_DM_DISCARD_NONE)));
	return o;
}

json_object *lc_volume_to_json(const struct lc_volume *v, const struct lc_dm_status *st)
{
	return to_json(v, st, false);
}

int lc_volumes_save(const char *path, struct lc_volume *const *vols, size_t n,
		    struct lc_error *err)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	const char *s;
	size_t len;
	int r;

	if (!o || !a) {
		json_object_put(o);
		json_object_put(a);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	JADD(o, "version", json_object_new_int(1));
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, to_json(vols[i], NULL, true));
	JADD(o, "volumes", a);
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	r = s ? lc_file_write_atomic(path, s, len, 0600, err)
	      : lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	json_object_put(o);
	return r;
}

static bool jstr(json_object *o, const char *k, char *out, size_t size)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string) ||
	    (size_t)json_object_get_string_len(v) >= size)
		return false;
	snprintf(out, size, "%s", json_object_get_string(v));
	return true;
}

static bool jnum(json_object *o, const char *k, uint64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return false;
	*out = (uint64_t)json_object_get_int64(v);
	return true;
}

static int from_json(json_object *o, struct lc_volume *v)
{
	char kind[16];
	uint64_t seg = 0, segs = 0, ks = 0, ss = 0, opened = 0;
	json_object *b;

	if (!jstr(o, "name", v->name, sizeof(v->name)) || !jstr(o, "kind", kind, sizeof(kind)) ||
	    !jstr(o, "uuid", v->uuid, sizeof(v->uuid)) ||
	    !jstr(o, "device", v->device, sizeof(v->device)) ||
	    (json_object_object_get_ex(o, "devno", NULL) &&
	     !jstr(o, "devno", v->devno, sizeof(v->devno))) ||
	    !jstr(o, "header", v->header, sizeof(v->header)) ||
	    !jstr(o, "workspace", v->workspace, sizeof(v->workspace)) ||
	    !jstr(o, "project", v->project, sizeof(v->project)) ||
	    !jstr(o, "keyconfig", v->keyconfig, sizeof(v->keyconfig)) ||
	    !jstr(o, "provider", v->provider, sizeof(v->provider)) ||
	    !jstr(o, "provider_ref", v->provider_ref, sizeof(v->provider_ref)) ||
	    !jstr(o, "cmk_id", v->cmk_id, sizeof(v->cmk_id)) ||
	    !jstr(o, "cmk_version", v->cmk_version, sizeof(v->cmk_version)) ||
	    !jstr(o, "cipher", v->cipher, sizeof(v->cipher)) ||
	    !jnum(o, "segments", &segs) || !jnum(o, "segment_size", &seg) ||
	    !jnum(o, "key_size", &ks) || !jnum(o, "sector_size", &ss) ||
	    !jnum(o, "data_offset", &v->data_offset) || !jnum(o, "length", &v->length) ||
	    !jnum(o, "opened", &opened) || !json_object_object_get_ex(o, "revoked", &b) ||
	    lc_name_check("volume name", v->name, NULL) || segs > LAKECRYPT_MAX_SEGMENTS ||
	    ks > LC_HDR_KEY_SIZE_MAX || ss > LC_HDR_SECTOR_SIZE_MAX)
		return -EINVAL;
	if (!strcmp(kind, "cache"))
		v->kind = LC_VOLUME_CACHE;
	else if (!strcmp(kind, "project"))
		v->kind = LC_VOLUME_PROJECT;
	else
		return -EINVAL;
	v->segments = (uint32_t)segs;
	v->segment_sectors = seg / 512;
	v->key_size = (uint32_t)ks;
	v->sector_size = (uint32_t)ss;
	v->opened = (int64_t)opened;
	v->revoked = json_object_get_boolean(b);
	if (v->revoked)
		jstr(o, "revoke_cause", v->revoke_cause, sizeof(v->revoke_cause));
	return 0;
}

int lc_volumes_rediscover(const struct lc_volume_env *env, const char *path,
			  struct lc_volume ***vols_out, size_t *n_out, struct lc_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ struct lc_dm_device *devs = NULL;
	struct lc_volume **vols = NULL;
	json_object *o = NULL, *a;
	size_t ndev = 0, n = 0, len;
	int r;

	*vols_out = NULL;
	*n_out = 0;
	r = env->be->dm_list(env->be_ctx, &devs, &ndev, err);
	if (r < 0)
		return r;
	r = lc_file_read(path, &text, &len, err);
	if (r == -ENOENT) {
		lc_err_clear(err);
		text = NULL;
	} else if (r < 0) {
		return r;
	}
	if (text) {
		o = json_tokener_parse(text);
		if (!o || !json_object_object_get_ex(o, "volumes", &a) ||
		    !json_object_is_type(a, json_type_array)) {
			lc_warn("%s is not a valid list of open volumes: ignored", path);
			json_object_put(o);
			o = NULL;
		}
	}
	if (o) {
		size_t cnt = json_object_array_length(a);

		vols = calloc(cnt ? cnt : 1, sizeof(*vols));
		if (!vols) {
			json_object_put(o);
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		}
		for (size_t i = 0; i < cnt; i++) {
			struct lc_volume *v = calloc(1, sizeof(*v));
			char want[LC_DM_UUID_MAX + 1];
			bool found = false;

			if (!v)
				break;
			if (from_json(json_object_array_get_idx(a, i), v) < 0) {
				lc_warn("%s: entry %zu is malformed: ignored", path, i);
				lc_volume_free(v);
				continue;
			}
			snprintf(want, sizeof(want), LC_DM_UUID_PREFIX "%s", v->uuid);
			for (size_t d = 0; d < ndev; d++)
				if (!strcmp(devs[d].name, v->name) && !strcmp(devs[d].uuid, want)) {
					found = true;
					devs[d].uuid[0] = '\0';	/* accounted for */
				}
			if (!found) {
				lc_info("volume %s (/dev/mapper/%s) is no longer mapped: forgotten",
					v->uuid, v->name);
				lc_volume_free(v);
				continue;
			}
			lc_info("rediscovered open volume %s (/dev/mapper/%s, workspace %s, CMK %s)%s: it can be revoked and closed; re-wrap needs a new open",
				v->uuid, v->name, v->workspace, v->cmk_id,
				v->revoked ? ", revoked" : "");
			vols[n++] = v;
		}
		json_object_put(o);
	}
	for (size_t d = 0; d < ndev; d++)
		if (devs[d].uuid[0])
			lc_info("device-mapper device %s (%s) is not in %s: the agent looks for its open record or its device",
				devs[d].name, devs[d].uuid, path);
	*vols_out = vols;
	*n_out = n;
	return 0;
}

int lc_volume_record_load(const char *path, struct lc_volume **out, struct lc_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_volume_ struct lc_volume *v = NULL;
	json_object *o, *a;
	size_t len;
	int r;

	*out = NULL;
	r = lc_file_read(path, &text, &len, err);
	if (r < 0)
		return r;
	o = json_tokener_parse(text);
	if (!o || !json_object_object_get_ex(o, "volumes", &a) ||
	    !json_object_is_type(a, json_type_array) || json_object_array_length(a) != 1) {
		json_object_put(o);
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "%s is not a record of one volume", path);
	}
	v = calloc(1, sizeof(*v));
	r = v ? from_json(json_object_array_get_idx(a, 0), v) : -ENOMEM;
	json_object_put(o);
	if (r == -ENOMEM)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	if (r < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "%s: the volume record is malformed", path);
	*out = v;
	v = NULL;
	return 0;
}

/* ---- the kernel backend ---- */

static int k_kr_open(void *ctx, struct lc_keyring *kr, const char *name, const char *prefix,
		     struct lc_error *err)
{
	(void)ctx;
	return lc_keyring_open(kr, name, prefix, err);
}

static int k_kr_add(void *ctx, struct lc_keyring *kr, uint32_t first, uint32_t count,
		    const uint8_t *payloads, size_t key_size, struct lc_error *err)
{
	(void)ctx;
	return lc_keyring_add(kr, first, count, payloads, key_size, 0, err);
}

static int k_kr_drop(void *ctx, struct lc_keyring *kr, struct lc_error *err)
{
	(void)ctx;
	return lc_keyring_drop(kr, err);
}

static void k_kr_close(void *ctx, struct lc_keyring *kr)
{
	(void)ctx;
	lc_keyring_close(kr);
}

static int k_kr_purge(void *ctx, unsigned int *removed, unsigned int *left, struct lc_error *err)
{
	(void)ctx;
	return lc_keyring_purge(removed, left, err);
}

static int k_dm_create(void *ctx, const char *name, const char *uuid, const char *line,
		       struct lc_error *err)
{
	(void)ctx;
	return lc_dm_create(name, uuid, line, err);
}

static int k_dm_message(void *ctx, const char *name, const char *msg, struct lc_error *err)
{
	(void)ctx;
	return lc_dm_message(name, msg, err);
}

static int k_dm_reload(void *ctx, const char *name, const char *line, struct lc_error *err)
{
	(void)ctx;
	return lc_dm_reload(name, line, err);
}

static int k_dm_resume(void *ctx, const char *name, struct lc_error *err)
{
	(void)ctx;
	return lc_dm_resume(name, err);
}

static int k_dm_announce(void *ctx, const char *name, struct lc_error *err)
{
	(void)ctx;
	return lc_dm_announce(name, err);
}

static int k_dm_status(void *ctx, const char *name, struct lc_dm_status *st, struct lc_error *err)
{
	(void)ctx;
	return lc_dm_status(name, st, err);
}

static int k_dm_table(void *ctx, const char *name, char **params, uint64_t *length,
		      struct lc_error *err)
{
	(void)ctx;
	return lc_dm_table_get(name, params, length, err);
}

static int k_dm_remove(void *ctx, const char *name, struct lc_error *err)
{
	(void)ctx;
	return lc_dm_remove(name, err);
}

static int k_dm_list(void *ctx, struct lc_dm_device **devs, size_t *n, struct lc_error *err)
{
	(void)ctx;
	return lc_dm_list(devs, n, err);
}

const struct lc_volume_backend lc_volume_backend_kernel = {
	.name		= "kernel",
	.kr_open	= k_kr_open,
	.kr_add		= k_kr_add,
	.kr_drop	= k_kr_drop,
	.kr_close	= k_kr_close,
	.kr_purge	= k_kr_purge,
	.dm_create	= k_dm_create,
	.dm_message	= k_dm_message,
	.dm_reload	= k_dm_reload,
	.dm_resume	= k_dm_resume,
	.dm_announce	= k_dm_announce,
	.dm_status	= k_dm_status,
	.dm_table	= k_dm_table,
	.dm_remove	= k_dm_remove,
	.dm_list	= k_dm_list,
};

/* ---- for rotate.c (volume-internal.h) ---- */

void lc_vol_audit(const struct lc_volume_env *env, const char *op, enum lc_audit_outcome o,
		  const struct lc_volume *v, const struct lc_provider_reply *rep,
		  const struct lc_error *e, int64_t latency_ms)
{
	struct ids ids;

	ids_of_volume(&ids, v);
	audit(env, op, o, &ids, rep, e, latency_ms);
}

void lc_vol_audit_detail(const struct lc_volume_env *env, const char *op,
			 enum lc_audit_outcome o, const struct lc_volume *v,
			 const struct lc_error *e, int64_t latency_ms, const char *detail)
{
	struct ids ids;

	ids_of_volume(&ids, v);
	audit_d(env, op, o, &ids, NULL, e, latency_ms, detail);
}

int lc_vol_wrap_kek(const struct lc_volume_env *env, struct lc_provider *p, const char *key_ref,
		    const struct lc_secret *kek, const char *ctx, struct lc_header *h,
		    const struct lc_volume *v, struct lc_provider_reply *rep, struct lc_error *err)
{
	struct ids ids;

	ids_of_volume(&ids, v);
	return wrap_kek(env, p, key_ref, kek, ctx, h, &ids, rep, err);
}

struct lc_provider *lc_vol_provider(const struct lc_volume_env *env, const char *kind,
				    struct lc_error *err)
{
	return provider_of(env, kind, err);
}

int64_t lc_vol_now_ms(void)
{
	return now_ms();
}

int lc_vol_dev_open_admin(const char *path, const char *workspace, struct lc_error *err)
{
	char real[PATH_MAX];
	uint64_t bytes;
	struct stat st;

	return dev_open(path, true, true, NULL, workspace, NULL, &bytes, &st, real, err);
}
