/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lakecrypt-agent: the daemon's state, shared by its files.
 *
 *   main.c       command line, detaching, pid file
 *   loop.c       start-up, the poll() loop, worker threads, shutdown
 *   clients.c    connections: limits, framing, output buffers, timeouts
 *   ops.c        the operation table, argument checking, dispatch
 *   ops-admin.c  kms.*, keyconfig.*, workspace.*
 *   ops-volume.c volume.*, cache.open, status, revoke, audit.tail
 *   providers.c  the KMS provider table, keyed by provider kind
 *   watch.c      the revocation watcher and the kill switch over volumes
 *   ops-notify.c volume.revoked: a revoke the kernel reported (udev)
 *   terminate.c  the workspaces' termination hooks after a revocation
 *   probe.c      the probe of a CMK (key state + canary) and confirmation
 *   ops-life.c   workspace.hook, check
 *   ops-rotate.c volume.rewrap all, volume.rotate-kek, volume.shred,
 *                workspace.rekey: the key lifecycle
 *   notify.c     readiness and status for systemd (Type=notify)
 *   paths.c      a request's paths resolved before a->lock is taken
 *   reserve.c    the kill switch's thread, started with the agent
 *
 * Threads and locking.  The loop thread owns the sockets and the clients
 * and blocks only in poll(): replies wait in per-client buffers (POLLOUT),
 * requests are read without waiting.  Each request runs on a thread of its
 * own (one at a time per connection), the watcher's purge on one, each
 * CMK's state check on one, each volume's revocation on one: nothing
 * queues behind a KMS call, a retry's sleep, a stalled disk or a client
 * that does not read.  Request threads are bounded by the connection
 * limits (a hung-up client counts until its request ends); a request that
 * waits for another operation waits at most busy_wait_ms and stops when
 * its client hangs up.  When no thread can be started, revocations and
 * kill requests run on the reserve thread (reserve.c).
 *
 * One mutex, a->lock, guards the volume slots, the registry, the
 * revocation log and the counters below.  A request's handler runs with it
 * held (ops with .unlocked run without) and drops it exactly around the
 * calls that may block -- KMS calls, device-mapper calls -- with
 * agent_unlock()/agent_relock(), having copied what those calls need
 * (slot_snapshot(), a key configuration by value): when the lock comes
 * back, slots and registry entries may have changed or gone and are looked
 * up again.  Writes of the agent's own small files (registry.json,
 * volumes.json on /run) happen under the lock.  Lock order: a->lock, then
 * the audit log's and the local KMS's own locks.
 *
 * Revocation cannot be starved: revoke takes the lock only to mark slots
 * and bump a->revoke_epoch, then the kernel work runs on per-volume
 * threads.  An open or cache.open that unwrapped while a revoke for its
 * CMK ran finds a newer epoch in the revocation log when it relocks and
 * revokes its volume at once instead of serving it.
 */
#ifndef LC_AGENT_H
#define LC_AGENT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <json-c/json.h>

#include "audit.h"
#include "config.h"
#include "kms-local.h"
#include "lc-error.h"
#include "proto.h"
#include "provider.h"
#include "registry.h"
#include "volume.h"
#include "storage-id.h"

#define LC_AGENT_VERSION	LC_VERSION_STRING	/* lc-types.h */
#define LC_AGENT_CONN_MAX	1032	/* max_clients at most + root's reserve */
#define LC_AGENT_ROOT_RESERVE	8	/* connections only root and admins may use */
#define LC_AGENT_REVOKE_LOG	64	/* revocations remembered for late opens */
#define LC_AGENT_REVOKE_RETRIES	5	/* per revocation job, then the watcher */
#define LC_AGENT_MAX_CHECKS	64	/* CMK state checks in flight at once */
#define LC_AGENT_RUNTIME_FILE	"volumes.json"
#define LC_AGENT_PID_FILE	"agent.pid"
#define LC_AGENT_KMS_DIR	"kms"
#define LC_AGENT_HEADER_DIR	"headers"	/* operators' detached headers */

struct agent;

struct client {
	struct agent *a;
	struct lc_proto_conn conn;
	struct lc_peer peer;
	enum lc_role role;		/* resolved again for every request */
	struct lc_volume_env env;	/* a->env with this peer's uid, per request */
	/* Loop thread only. */
	bool busy;			/* a request is on a worker thread */
	bool dead;			/* peer gone: freed once not busy */
	bool close_after;		/* close once the reply is out */
	char *out;			/* reply bytes not yet sent */
	size_t out_len, out_off;
	int64_t last_ms;		/* last request, reply byte or accept */
	int64_t stalled_ms;		/* output waiting since (0: none) */
	/* Handed between the loop and the worker (a->done_lock). */
	json_object *request, *reply;
	struct client *done_next;
	struct client *reserve_next;	/* in a->reserve_reqs (a->lock) */
	atomic_bool gone;		/* peer hung up (set by the loop, read by workers) */
	struct agent_paths *paths;	/* the request's paths, resolved (paths.c) */
};

/* Revocation of one volume, as the kernel reports it. */
enum slot_revoke {
	SLOT_LIVE = 0,		/* never asked */
	SLOT_REVOKING,		/* a job is on it */
	SLOT_REVOKE_FAILED,	/* the kernel does not say revoked; retried */
	SLOT_REVOKED,		/* the kernel's status says revoked */
	SLOT_GONE,		/* the device no longer exists */
};

/* An open volume and what the agent does with it (a->lock). */
struct vol_slot {
	struct lc_volume *v;		/* v->revoked only once the kernel says so */
	unsigned int busy;		/* close or rewrap working on a copy */
	enum slot_revoke rs;
	bool job;			/* a revocation thread owns the kernel part */
	bool removed;			/* closed while the job ran: it frees the slot */
	bool again;			/* asked again while the job ran */
	unsigned int attempts;		/* revoke messages sent */
	bool denied;
	int64_t revoker;		/* uid, -1: the agent (watcher) */
	char cause[256];
	char error[LC_ERROR_MSG_MAX];	/* last failure, "" if none */
	bool hooked;			/* its workspace's hook has run for it */
	/* uuid-claim.c: the storage identity of its data device [0] and
	 * detached header [1], recorded when its open started */
	bool sid_set;
	struct agent_sid sid[2];
};

/* A volume's revocation, on its own thread or the reserve's (watch.c). */
struct revoke_job {
	struct agent *a;
	struct vol_slot *s;
	struct lc_volume_env env;
	struct revoke_job *next;	/* in a->reserve_jobs */
};

/* One revocation, for opens that were unwrapping while it ran. */
struct revoke_rec {
	uint64_t epoch;
	char cmk_id[LC_HDR_CMK_ID_SIZE];
	char provider[LC_HDR_PROVIDER_SIZE];
	char key_ref[LC_HDR_PROVIDER_REF_SIZE];
	char keyconfig[LC_HDR_NAME_SIZE];	/* "": every key configuration */
};

/* One KMS provider per kind ("local", later "aws-kms", ...). */
struct provider_slot {
	const char *kind;
	bool ready;
	struct lc_provider p;
	/* Its section was unusable at start (providers.c): every call fails
	 * MISCONFIG with @why; status shows it.  Other providers work. */
	bool unavailable;
	struct lc_error why;
	void *dl;			/* pkcs11: the module, held while loaded */
};

#define LC_AGENT_MAX_PROVIDERS	8

/* kms-ident.c: the KMS principal a provider last said the agent is. */
#define AGENT_IDENT_CACHE	8
struct agent_ident {
	char provider[LC_HDR_PROVIDER_SIZE];	/* "": free slot */
	char principal[LC_PROVIDER_IDENTITY_MAX];
	uint64_t at_ns;				/* when asked (agent clock) */
};

struct agent {
	struct lc_config cfg;
	const char *config_path;
	bool foreground;

	int listen_fd;
	int signal_fd;
	int timer_fd;
	int wake_fd;			/* eventfd: a worker finished */
	bool stop;
	bool sync_ready;		/* lock, cond and done_lock initialised */

	pthread_mutex_t lock;		/* see above */
	pthread_cond_t changed;		/* a revocation job or worker finished */
	unsigned int threads;		/* request, watcher, revocation threads alive */
	bool watching;			/* the watcher runs a round */
	/* watch.c: the watcher's thread, started with the agent. */
	pthread_cond_t watch_cv;	/* with a->lock */
	bool watch_cv_ready, watch_stop, watch_kick;
	struct lc_volume *checking[LC_AGENT_MAX_CHECKS]; /* CMKs being asked, one thread each */
	uint64_t revoke_epoch;
	struct revoke_rec revlog[LC_AGENT_REVOKE_LOG];
	pthread_mutex_t done_lock;	/* the done list only */
	struct client *done;
	/* reserve.c: the kill switch's thread, started with the agent. */
	pthread_cond_t reserve_cv;	/* with a->lock */
	bool reserve_cv_ready, reserve_stop;
	struct revoke_job *reserve_jobs;	/* revocations without a thread */
	struct client *reserve_reqs;		/* kill requests without a thread */
	struct ws_term *reserve_terms;		/* termination hooks without a thread */
	/* Tests only: agent_spawn() fails (-EAGAIN) once this many threads
	 * run, as under a unit's TasksMax.  0: no limit. */
	unsigned int spawn_limit;

	struct lc_kms_local *kms;
	struct lc_registry reg;
	struct lc_seqstore seqs;	/* rollback memory of header seqnos */
	char header_dir[PATH_MAX];
	struct lc_audit audit;
	struct provider_slot providers[LC_AGENT_MAX_PROVIDERS];
	size_t nproviders;
	struct lc_volume_env env;
	const struct lc_group_db *groups;

	struct vol_slot **vols;
	size_t nvols;
	char runtime_path[PATH_MAX];
	char record_dir[PATH_MAX];	/* adopt.c: open records, "" before setup */
	char record_why[256];		/* adopt.c: why records are not trusted, "" */

	struct cmk_watch **watches;	/* probe.c: per-CMK and per-keyconfig confirmation state */
	const struct lc_clock *clock;	/* revocation confirmation's clock; NULL: CLOCK_MONOTONIC (tests) */
	size_t nwatches;
	struct agent_ident ident[AGENT_IDENT_CACHE];	/* kms-ident.c, a->lock */
	struct ws_term **terms;		/* terminate.c: hook runs per workspace */
	size_t nterms;
	struct running_op *running;	/* ops-life.c: lifecycle operations running */

	struct open_claim *claims;	/* open-claim.c: names being opened */
	uint64_t claim_seq;
	struct uuid_claim *uuid_claims;	/* uuid-claim.c: volumes re-keyed or being opened */

	struct client *clients[LC_AGENT_CONN_MAX];	/* loop thread only */
	size_t nclients;
	uint64_t oversized_replies;	/* replaced by an error (EMSGSIZE) */
	uint64_t fleet_records;		/* fleet.c: etcd revocation records acted on */
	uint64_t fleet_volumes;		/* ... and the volumes they killed */
	struct fleet_probe *fp;		/* fleet-probe.c: shared probes (NULL: none) */
};

/* open-claim.c: the open claim of @name, or NULL (a->lock held). */
const struct open_claim *open_claim_named(struct agent *a, const char *name);
/* open-claim.c: a name being opened (on the opener's stack, a->lock). */
struct open_claim {
	uint64_t id;
	const char *name, *workspace;		/* the request's */
	const char *device_arg, *header_arg;	/* as given; header may be NULL */
	enum lc_volume_kind kind;
	char device[PATH_MAX], header[PATH_MAX];	/* resolved ("" header: attached) */
	uint64_t segment_size;			/* a cache's, bytes; 0 for a project volume */
	unsigned int waiters;			/* requests for the same volume waiting */
	struct claim_waiter *waiting;		/* those requests (their stacks) */
	char tab_uuid[40];			/* lakecrypttab's UUID= for the name, "" */
	unsigned int tab_line;			/* its line */
	struct open_claim *next;
};
/* A request waiting for a claim (on its stack while the claim is listed). */
struct claim_waiter {
	const struct client *c;
	struct claim_waiter *next;
};
/* Waiters of @k whose client is still there (a->lock held). */
unsigned int agent_claim_live_waiters(const struct open_claim *k);
/*
 * Before volume.open / cache.open of @k->name (a->lock held; may wait on
 * a->changed, at most [agent] busy_wait_ms, for an open of the same
 * volume in flight): 1 and *@slot when that name is open as this very
 * volume (idempotent open); 0 when @k is now listed (the caller opens,
 * then agent_open_release()); -errno when the name is another workspace's
 * (lakecrypttab, -EPERM), taken by another volume (-EEXIST), revoked
 * (-EKEYREVOKED), still being opened past the wait (-EBUSY, TRANSIENT),
 * @c's peer hung up while it waited (-ECANCELED) or lakecrypttab cannot be
 * read (MISCONFIG).
 */
int agent_open_claim(struct agent *a, struct client *c, struct open_claim *k,
		     struct vol_slot **slot, struct lc_error *err);
void agent_open_release(struct agent *a, struct open_claim *k);
/* CLOCK_MONOTONIC (a->changed's clock) @ms from now, for
 * pthread_cond_timedwait(). */
struct timespec agent_deadline(unsigned int ms);
/* The peer of the client whose request the calling thread runs hung up
 * (false on other threads): a wait for other work stops. */
bool agent_request_gone(void);
/* The peer of @c hung up (its request may still run). */
bool agent_client_gone(const struct client *c);

/* uuid-claim.c: a volume an offline operation writes the header of (or
 * formats over) is not opened, under any path, until it ends; nor is one
 * open or being opened written over. */
struct uuid_writer {
	const char *op;		/* "volume.rekey-segment": named in messages */
	const char *doing;	/* "re-keyed": "volume U is being re-keyed" */
	const char *noun;	/* "re-key": "when the re-key has ended" */
	const char *why;	/* why an open volume is refused: "a segment is re-keyed offline" */
	bool device_too;	/* with a detached header, the data device's header too */
	/* Without force (an operator may ask): only the storage is claimed,
	 * no uuid (a volume there is refused by itself), and a refusal names
	 * no other volume, path or holder. */
	bool storage_only;
};
extern const struct uuid_writer agent_uc_rekey_segment, agent_uc_rekey, agent_uc_migrate,
	agent_uc_format, agent_uc_cache, agent_uc_format_plain, agent_uc_cache_plain;
struct uuid_claim {
	char uuid[4][LC_UUID_STR_LEN];	/* the valid header copies' (unauthenticated) */
	unsigned int n;			/* 0: nothing claimed (no header readable) */
	const struct uuid_writer *w;	/* a writer's claim, for its whole run; NULL: an open's */
	bool listed;
	char path[PATH_MAX];		/* named in a writer's errors */
	/* The storage identity (storage-id.h) of the device [0] and the
	 * detached header [1] given, and those paths (the request's). */
	struct agent_sid sid[2];
	const char *sid_path[2];
	bool looked[2];			/* sid[i] is what the path named at the claim */
	struct uuid_claim *next;
};
/*
 * Read the uuids of the header at @header (detached) or @device -- and,
 * for a writer @w with device_too and a detached header, of the header on
 * @device as well: what a format destroys -- without a->lock (it is
 * dropped and taken again), and claim them (a->lock held): for writer @w's
 * whole run, or (@w NULL) for an open until its volume is added.  0 (also
 * when no header can be read: nothing is claimed; the operation fails on
 * it by itself, or has nothing there to destroy), or -EBUSY (INVALID): a
 * writer's uuid is open, being opened or claimed by another writer, an
 * open's is claimed by a writer, or (either) its header lies on the
 * storage of an open cache volume.  Release with agent_uuid_release()
 * (a->lock held; a claim not listed is a no-op).
 *
 * The storage identity of @device and @header (storage-id.h) is claimed
 * too, whether or not a header is there: a writer is refused (-EBUSY,
 * INVALID, naming the volume and "close it first") when its device or
 * header is, lies on, or lies under the storage of a volume open, being
 * opened or written by another writer, under any path -- the data device
 * of a volume with a detached header has no uuid to find -- or when the
 * kernel says it is in use (agent_sid_kernel_busy()); an open is refused
 * while a writer's storage is its own.
 */
int agent_uuid_claim(struct agent *a, struct uuid_claim *k, const struct uuid_writer *w,
		     const char *device, const char *header, struct lc_error *err);
void agent_uuid_release(struct agent *a, struct uuid_claim *k);
/* What claim @k saw at its device (@i 0) or detached header (1), for the
 * library to check that it writes that very storage (lc_storage_pin,
 * into @buf): NULL when the claim did not look (an operator's path the
 * list does not allow: the library refuses it by itself). */
const struct lc_storage_pin *agent_uuid_pin(const struct uuid_claim *k, int i,
					    struct lc_storage_pin *buf);
/*
 * A format or a cache without force (@w agent_uc_format_plain or
 * agent_uc_cache_plain): no volume is there to destroy by its header, but
 * the data device of a volume with a detached header has none; its
 * storage is claimed as agent_uuid_claim() does.  With @allow (an
 * operator's device allow-list, @workspace's), only a block device the
 * list allows is looked at: for any other the library refuses alike,
 * and the agent tells nothing of paths the caller may not use.  0 or
 * -EBUSY (INVALID); release with agent_uuid_release().
 */
int agent_storage_claim(struct agent *a, struct uuid_claim *k, const struct uuid_writer *w,
			const char *device, const char *header, const struct lc_ws_access *allow,
			const char *workspace, struct lc_error *err);
/* After an open of @name (volume @uuid, "" when it failed) under claim @k
 * (a->lock held): the volume's slot keeps the storage identity recorded
 * when the open started (the kernel's device number of the mapping wins
 * over the path's). */
void agent_uuid_attach(struct agent *a, const char *name, const char *uuid,
		       const struct uuid_claim *k);
/* The storage identity of @s's devices from its volume (a volume listed
 * by an earlier run): the mapping's device number, the header's path. */
void agent_slot_sid(struct vol_slot *s);
/* paths.c: the request's "device" and "header" resolved with realpath(3)
 * before a->lock is taken (a path on a hung mount stalls its own request
 * only); agent_realpath() looks the result up without touching the file
 * system: true and @out when @path was resolved, false when it could not
 * be (or was not one of the request's paths).  agent_realpath_fn is
 * realpath(3); tests replace it to see where it is called. */
void agent_paths_resolve(struct agent *a, struct client *c, json_object *args);
void agent_paths_free(struct client *c);
bool agent_realpath(const struct client *c, const char *path, char out[PATH_MAX]);
extern char *(*agent_realpath_fn)(const char *restrict path, char *restrict resolved);
/* reserve.c (a->lock held, but agent_reserve_start()) */
/* Start the reserve thread (agent_setup()); -errno if it cannot. */
int agent_reserve_start(struct agent *a, struct lc_error *err);
/* Ask it to end once its queues are empty (agent_teardown()). */
void agent_reserve_stop(struct agent *a);
/* Run revocation job @j there (taken). */
void agent_reserve_job(struct agent *a, struct revoke_job *j);
/* Run @c's request there (clients.c, for kill requests when no request
 * thread can be started); -ESRCH if the reserve thread has stopped. */
int agent_reserve_request(struct agent *a, struct client *c);
/* Queue a workspace's termination hook (t->running set, no thread could be
 * started); -ESRCH if the reserve thread has stopped. */
int agent_reserve_term(struct agent *a, struct ws_term *t);
/* Is the calling thread the reserve thread? */
bool agent_on_reserve(void);

/* watch.c: run revocation job @j (a->lock held, dropped around the kernel
 * calls; frees @j). */
void agent_revoke_job_run(struct agent *a, struct revoke_job *j);
/* clients.c: run @c's request on the calling thread and hand the reply to
 * the loop (without a->lock). */
void agent_request_run(struct agent *a, struct client *c);

/* adopt.c: open records and the adoption of mappings at start (see there) */
int agent_open_records_init(struct agent *a, struct lc_error *err);
/* env->before_create: @ctx is the agent; durable before it returns. */
int agent_open_record(void *ctx, const struct lc_volume *v, struct lc_error *err);
void agent_open_record_clear(struct agent *a, const char *name);
/* The open of @name ended (a->lock held; dropped for the kernel): its
 * record goes if volumes.json lists it or no lakecrypt mapping of that
 * name is left; a mapping a failed open could not remove keeps it. */
void agent_open_record_end(struct agent *a, const struct lc_volume_env *env, const char *name);
/* At start, after volumes.json was read (without a->lock): every
 * lakecrypt mapping it does not list is adopted or fails closed.  The
 * mappings are listed up to AGENT_ADOPT_LIST_TRIES times,
 * AGENT_ADOPT_LIST_GAP_MS apart; -errno with @err if they never could be
 * (the agent must not start: a keyed mapping would go unwatched). */
#define AGENT_ADOPT_LIST_TRIES	5
#define AGENT_ADOPT_LIST_GAP_MS	200
int agent_adopt_mappings(struct agent *a, struct lc_error *err);
/* The file that lists misc devices ("/proc/misc"; tests change it): a
 * list that fails with -ENODEV while it names no "device-mapper" is no
 * reason not to start (no mapping can exist). */
extern const char *agent_proc_misc;
/* A dm-lakecrypt TABLE line's fields (include/uapi/linux/dm-lakecrypt.h). */
struct adopt_table {
	char cipher[LC_HDR_CIPHER_SIZE];
	uint32_t key_size;
	uint64_t segment_sectors, offset;	/* 512-byte sectors */
	char device[PATH_MAX];			/* "major:minor" or a path */
	char volume_id[LAKECRYPT_MAX_VOLUME_ID + 1];
	uint32_t sector_size;			/* bytes; 512 if not given */
	bool ephemeral;
};
int agent_adopt_parse_table(char *p, struct adopt_table *t);

/* loop.c */
int agent_setup(struct agent *a, struct lc_error *err);
void agent_run(struct agent *a);
void agent_teardown(struct agent *a);
/* Start a detached thread counted in a->threads; -errno if it cannot. */
int agent_spawn(struct agent *a, void *(*fn)(void *), void *arg);
/* The thread ends (a->lock held). */
void agent_thread_done(struct agent *a);
static inline void agent_unlock(struct agent *a)
{
	pthread_mutex_unlock(&a->lock);
}
static inline void agent_relock(struct agent *a)
{
	pthread_mutex_lock(&a->lock);
}
int64_t agent_now_ms(void);

/* fleet.c: the registry on the file or on etcd (registry-etcd.h) */
int agent_registry_open(struct agent *a, struct lc_error *err);
int agent_registry_start(struct agent *a, struct lc_error *err);	/* the watch thread */
void agent_registry_stop(struct agent *a);				/* a->lock not held */
/* Write the revocation record of a CMK for the fleet (a->lock held,
 * dropped around the request).  0 without etcd; else etcd's error (also
 * logged).  @key (may be NULL): the key written. */
int agent_fleet_publish(struct agent *a, const char *provider, const char *cmk_id,
			const char *key_ref, const char *keyconfig, const char *cause,
			char *key, size_t key_size, struct lc_error *err);
json_object *agent_registry_json(struct agent *a);	/* status; a->lock held */

/* fleet-probe.c: shared probes (etcd, [registry] backstop_interval_s > 0).
 * agent_probes_init() before the registry opens (sets @h->probe; 0 or
 * -ENOMEM), _start() with the registry's thread, _stop() (a->lock not
 * held; revokes the lease so that another agent takes over at once),
 * _free() at the end.  Without sharing they do nothing. */
struct lc_regetcd_hooks;
int agent_probes_init(struct agent *a, struct lc_regetcd_hooks *h);
int agent_probes_start(struct agent *a, struct lc_error *err);
void agent_probes_stop(struct agent *a);
void agent_probes_free(struct agent *a);
/* Should the watcher probe @v's unit (its CMK and key configuration) now
 * (a->lock held)?  true without sharing; with it, when this agent holds
 * the unit, etcd is unreachable, the holder went, its last result is not
 * "ok" or older than 2 watch intervals, or backstop_interval_s passed
 * since this agent's own last probe.  *@why: the reason ("" if false). */
bool agent_probe_wanted(struct agent *a, const struct lc_volume *v, const char **why);
/* After the watcher's probe of @v (a->lock NOT held): if this agent
 * holds the unit, put @report's outcome and verdict under
 * <prefix>probe-result/<unit> with its lease (one etcd request). */
void agent_probe_publish(struct agent *a, const struct lc_volume *v, json_object *report);
json_object *agent_probes_json(struct agent *a);	/* status; a->lock held */

/* providers.c */
int agent_providers_init(struct agent *a, struct lc_error *err);
void agent_providers_close(struct agent *a);
json_object *agent_providers_json(struct agent *a);
int agent_providers_check(const struct lc_config *cfg, FILE *out);
struct lc_provider *agent_provider(void *agent, const char *kind);
json_object *agent_kms_calls_json(struct agent *a);

/* clients.c (loop thread) */
void agent_client_accept(struct agent *a);
/* Read what @c has sent and start its next request; false: close it. */
bool agent_client_serve(struct agent *a, struct client *c);
/* Send what @c's buffer holds, without waiting; false: close it. */
bool agent_client_flush(struct agent *a, struct client *c);
/* A whole request is buffered and may start now. */
bool agent_client_ready(const struct client *c);
/* Take the replies of finished workers (after wake_fd). */
void agent_clients_collect(struct agent *a);
/* Close idle and stalled connections; the ms until the next deadline. */
int agent_clients_expire(struct agent *a);
/* Close @c (freed now, or when its worker is done: until then it stays
 * listed and counted against max_clients and max_clients_per_uid). */
void agent_client_drop(struct agent *a, struct client *c);
/* At shutdown: close and unlist every client (busy ones are freed when
 * their workers are done). */
void agent_clients_close_all(struct agent *a);
void agent_client_free(struct client *c);

/* ops.c: runs on the request's thread, takes a->lock itself. */
json_object *agent_handle(struct agent *a, struct client *c, json_object *msg);
void agent_audit_simple(struct agent *a, const char *op, enum lc_audit_outcome o,
			int64_t peer_uid, const char *workspace, const char *keyconfig,
			const char *provider, const char *cmk_id, const struct lc_error *e);

/* Operation handlers: 0 and *result (NULL: empty object), or -errno and
 * @err.  Called with a->lock held unless the op is .unlocked. */
typedef int (*agent_op_fn)(struct agent *a, struct client *c, json_object *args,
			   json_object **result, struct lc_error *err);

/* Argument access: required ones fail with a message naming them. */
int arg_str(json_object *args, const char *name, bool required, const char **out,
	    struct lc_error *err);
int arg_u64(json_object *args, const char *name, bool required, uint64_t *out,
	    struct lc_error *err);
int arg_bool(json_object *args, const char *name, bool *out, struct lc_error *err);

/*
 * agent_audit_simple() from code that holds a->lock: the lock is dropped
 * around the write (a stalled audit disk must not stop the loop, revoke
 * or the watcher), the strings copied first.  The caller must not keep
 * pointers into agent state across it.
 */
void agent_audit_locked(struct agent *a, const char *op, enum lc_audit_outcome o,
			int64_t peer_uid, const char *workspace, const char *keyconfig,
			const char *provider, const char *cmk_id, const struct lc_error *e);

/*
 * May @c act in @workspace?  Admins may; an operator may if it is a member
 * of one of the workspace's operator groups.  0, or -EACCES (REFUSED,
 * audited) naming the workspace and its groups.  agent_ws_visible() is the
 * same question without error or audit (for filtering status and audit).
 */
int agent_ws_access(struct agent *a, struct client *c, const char *workspace, const char *op,
		    struct lc_error *err);
bool agent_ws_visible(struct agent *a, struct client *c, const char *workspace);

/* ops-admin.c */
int op_kms(struct agent *a, struct client *c, json_object *args, json_object **result,
	   struct lc_error *err, const char *op);
int op_keyconfig_create(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err);
/* keyconfig.show: one key configuration, its KMS principal included
 * ("kms_identity": the bound principal, or "unbound"). */
int op_keyconfig_show(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);
int op_keyconfig_list(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);
int op_keyconfig_delete(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err);
int op_workspace_bind(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);
int op_workspace_unbind(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err);
int op_workspace_list(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);

/* ops-volume.c */
int op_ping(struct agent *a, struct client *c, json_object *args, json_object **result,
	    struct lc_error *err);
int op_volume_format(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err);
int op_volume_open(struct agent *a, struct client *c, json_object *args,
		   json_object **result, struct lc_error *err);
int op_volume_close(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err);
int op_cache_open(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err);
int op_volume_migrate(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);
int op_volume_rewrap(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err);
int op_volume_resize(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err);
int op_status(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err);
int op_revoke(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err);
/* ops-revocation.c: the fleet's revocation records in etcd (admins) */
int op_revocation_list(struct agent *a, struct client *c, json_object *args, json_object **result,
		       struct lc_error *err);
int op_revocation_clear(struct agent *a, struct client *c, json_object *args, json_object **result,
			struct lc_error *err);
/* ops-rotate.c: key lifecycle (admins) */
int op_volume_rewrap_all(struct agent *a, struct client *c, json_object *args,
			 json_object **result, struct lc_error *err);
int op_volume_rotate_kek(struct agent *a, struct client *c, json_object *args,
			 json_object **result, struct lc_error *err);
int op_volume_shred(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err);
int op_workspace_rekey(struct agent *a, struct client *c, json_object *args,
		       json_object **result, struct lc_error *err);
int op_volume_rekey(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err);
/* ops-segrekey.c: DEK re-key of segments of a closed volume (admins) */
int op_volume_rekey_segment(struct agent *a, struct client *c, json_object *args,
			    json_object **result, struct lc_error *err);
/* notify.c: sd_notify(3) protocol; 1 sent, 0 not under systemd, -errno. */
int agent_notify(const char *state);
void agent_notify_ready(struct agent *a);

/* ops-notify.c */
/*
 * Ask the target of every volume whose slot is not revoked for its state,
 * and finish the kill switch (as volume.revoked does) for each the kernel
 * says is revoked: a revoke sent by hand while the agent was down, or
 * whose udev event was lost.  a->lock held; dropped around each status
 * call, the keyring purge and the audit write.
 */
void agent_check_kernel_revoked(struct agent *a);
/*
 * Argument "header" of a request: a bare name is the file of that name in
 * the agent's header directory (into @buf of @size bytes), an absolute path
 * is taken as it is from an admin only; *@out is NULL without the argument.
 */
int arg_header(struct agent *a, struct client *c, json_object *args, char *buf, size_t size,
	       const char **out, struct lc_error *err);
int op_volume_revoked(struct agent *a, struct client *c, json_object *args, json_object **result,
		      struct lc_error *err);
int op_audit_tail(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err);

/* watch.c and the volume list; all with a->lock held. */
struct vol_slot *agent_volume(struct agent *a, const char *name);
/* A private copy of @s's volume for a library call without the lock; the
 * KEK too if @kek (wiped with lc_volume_free).  NULL: out of memory. */
struct lc_volume *slot_snapshot(const struct vol_slot *s, bool kek);
uint64_t agent_revoke_epoch(struct agent *a);
/* A table change (resize) may have replaced the table a revoke already
 * hit: if @s is being or was revoked, revoke it again (a->lock held). */
void agent_slot_revoke_again(struct agent *a, struct vol_slot *s);
/* Add @v (owned from here on) opened since revocation epoch @epoch:
 * 0 and listed; -EKEYREVOKED (DENIED) if a revocation of its CMK came
 * meanwhile: it is revoked now and listed as such; -EIO if volumes.json
 * cannot be written: @v is closed and freed (a restarted agent could
 * neither watch nor revoke it).  May drop and retake the lock. */
int agent_volume_add(struct agent *a, struct lc_volume *v, uint64_t epoch,
		     const struct lc_volume_env *env, struct lc_error *err);
void agent_volume_remove(struct agent *a, struct vol_slot *s);
int agent_volumes_save(struct agent *a, struct lc_error *err);
/*
 * The kill switch: revoke every open volume under the CMK that @provider
 * (NULL: any) calls @key_ref or @cmk_id (either may be NULL) whose kernel
 * state is not revoked yet, each on its own thread (a stalled disk holds back only its
 * own volume).  Waits up to @wait_ms for the kernel to confirm; names of
 * confirmed volumes go to @done, the others to @pending (either may be
 * NULL); those go on being retried (LC_AGENT_REVOKE_RETRIES, then each
 * watcher tick) and status shows where they are.  0 if every one was
 * confirmed, else -EINPROGRESS (INTERNAL: not the KMS's doing) naming the
 * first.  May drop and retake the lock.
 */
int agent_revoke_matching(struct agent *a, const char *cmk_id, const char *provider,
			  const char *key_ref, const char *cause, bool denied, int64_t uid,
			  unsigned int wait_ms, json_object *done, json_object *pending,
			  struct lc_error *err);
/* The same, only for the volumes of key configuration @keyconfig (NULL or
 * "": all) under that CMK: a denial by key policy of one configuration's
 * context kills only its volumes. */
int agent_revoke_matching_kc(struct agent *a, const char *cmk_id, const char *provider,
			     const char *key_ref, const char *keyconfig, const char *cause,
			     bool denied, int64_t uid, unsigned int wait_ms, json_object *done,
			     json_object *pending, struct lc_error *err);
/* Timer tick (loop thread): ask the watcher's thread for a round (one
 * more after the current one if it runs). */
void agent_watch_tick(struct agent *a);
/* Start the watcher's thread (agent_setup(), without a->lock); -errno if
 * it cannot be started. */
int agent_watcher_start(struct agent *a, struct lc_error *err);
/* Ask it to end (teardown, a->lock held); agent->threads counts it. */
void agent_watcher_stop(struct agent *a);
/* The same from any thread (a->lock not held), without moving the
 * timer: the shared probes' takeover. */
void agent_watch_now(struct agent *a);
const char *agent_slot_state(const struct vol_slot *s);

/* terminate.c; all with a->lock held. */
/*
 * The volumes of @workspace that are revoked (or whose revocation the
 * kernel did not confirm) and that no hook run covered yet: run the
 * workspace's hook for them on a thread of the workspace (one run at a
 * time per workspace; a request during a run makes another run after it).
 * Nothing happens for a workspace without a hook.
 */
void agent_terminate(struct agent *a, const char *workspace);
/* The last hook run of each workspace @c may see, for status. */
json_object *agent_terminate_json(struct agent *a, struct client *c);
void agent_terminate_free(struct agent *a);
/* Run @t's pending hook runs, then clear t->running (the hook's thread,
 * or the reserve thread's); drops a->lock around each run. */
void agent_terminate_run(struct agent *a, struct ws_term *t);
/* @t's link in a->reserve_terms. */
struct ws_term **agent_terminate_next(struct ws_term *t);
/* probe.c; a->lock held unless said otherwise. */
/*
 * Probe @v's CMK (a copy; called WITHOUT a->lock): key state (and the
 * state of the key versions open volumes use), then, when enabled, the
 * unwrap of the canary of @v's own key configuration (made first if it
 * has none).  Two observations: the key's (state: a denial kills every
 * volume under the CMK) and the key configuration's (canary: a denial
 * kills only that configuration's volumes).  @report (may be NULL) gets
 * {cmk, provider, keyconfig, state, canary, outcome, detail, verdict,
 * denials, counted, kms_calls}.  0, or -ENOPROTOOPT if the agent lacks
 * @v's provider.
 */
int agent_probe_cmk(struct agent *a, const struct lc_volume *v, json_object *report);
/*
 * An open's or cache's KMS call under key configuration @kc (a->lock held;
 * may drop it): @r and @err as it returned.  Success is an OK observation
 * of the CMK and of @kc.  A denial is never one by itself (the header
 * chose the blob and the key version the KMS refused): it triggers
 * agent_probe_cmk(), at most one per CMK and key configuration every
 * agent_min_gap_ms(), whose outcome is what counts, and @err is rewritten
 * to say what the probe found (class INVALID when the CMK answers
 * enabled: the header is stale or forged).  Other failures are not the
 * KMS's word about the CMK and are ignored.  Returns @r.
 */
int agent_open_observed(struct agent *a, const struct lc_keyconfig *kc, int r,
			struct lc_error *err, const char *what);
/* The spacing of counted denials and of probes triggered by opens, ms:
 * half of watch_interval_s, at most confirm_window_s / confirm_denials. */
uint64_t agent_min_gap_ms(const struct agent *a);
/* Wrap a new canary for key configuration @kcname (without a->lock) under
 * context LC_KEK_CANARY_PREFIX<kcname> (envelope.h); one "cmk.canary_wrap"
 * audit record (@peer_uid < 0: the agent's own action) whatever the end. */
int agent_canary_make(struct agent *a, int64_t peer_uid, struct lc_provider *p,
		      const char *key_ref, const char *kcname, char b64[LC_CANARY_B64_SIZE],
		      char hex[65], unsigned int *calls, struct lc_error *err);
json_object *agent_watches_json(struct agent *a);
void agent_watches_free(struct agent *a);
/* A volume record standing for key configuration @kc in a probe (check
 * --cmk, revocation clear, an open's denial, [test] watch_keyconfig): name
 * "keyconfig-<first 50 bytes of kc->name>", its key configuration,
 * provider, key reference and CMK id, each truncated to its field.  Calloc'd
 * (free it with free() or lc_volume_free()); NULL when out of memory. */
struct lc_volume *agent_keyconfig_volume(const struct lc_keyconfig *kc);

/* kms-ident.c: the KMS principal bound to a key configuration. */
#define AGENT_IDENT_TTL_MS	30000	/* a principal asked is reused this long */
/*
 * Who the agent is at provider @p (kind @provider) for CMK @key_ref: one
 * ops->identity attempt bounded by @p's attempt_timeout_ms, or the answer
 * of less than AGENT_IDENT_TTL_MS ago when @cached.  Called WITHOUT
 * a->lock.  0 and @out; -EOPNOTSUPP (MISCONFIG) if the provider names no
 * principal; else the provider's error (@err).  Failures are not cached.
 */
int agent_kms_whoami(struct agent *a, struct lc_provider *p, const char *provider,
		     const char *key_ref, bool cached, char out[LC_PROVIDER_IDENTITY_MAX],
		     struct lc_error *err);
enum agent_ident_check {
	AGENT_IDENT_NOT_CHECKED,	/* no denial to check (check's report) */
	AGENT_IDENT_UNBOUND,	/* no binding (older configuration, provider names none) */
	AGENT_IDENT_SAME,	/* the bound principal: a denial stands */
	AGENT_IDENT_OTHER,	/* another principal: MISCONFIG, never a kill */
	AGENT_IDENT_UNKNOWN,	/* the check failed: a denial stands (as before binding) */
};
const char *agent_ident_check_name(enum agent_ident_check c);	/* "not checked", "unbound", ... */
/*
 * A DENIED answer about CMK @key_ref under key configuration @kcname:
 * is the agent still the principal bound to it?  (Without a->lock.)
 * AGENT_IDENT_OTHER writes "wrong KMS identity: bound X, now Y" to
 * @detail and leaves one "cmk.identity" audit record (failure,
 * misconfigured); a failed check one (failure, its class).
 */
enum agent_ident_check agent_kms_identity_check(struct agent *a, struct lc_provider *p,
						const char *kcname, const char *provider,
						const char *key_ref, char *detail, size_t dsize);
/* One audit record of the [revocation] settings, fail-closed included. */
void agent_revocation_policy_audit(struct agent *a);
/* check: probe every CMK in use, or the one given. */
int op_check(struct agent *a, struct client *c, json_object *args, json_object **result,
	     struct lc_error *err);
/* workspace.hook */
int op_workspace_hook(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);

/*
 * ops-life.c: the key-lifecycle operations running now, each under up to
 * two CMKs (the one it works under, and the one a re-key moves to), for
 * the kill switch (lib/opguard.h).  All with a->lock held.
 */
struct running_op;
/* Register an operation under the CMKs of @from and @to (either may be
 * NULL; provider, key_ref and cmk_id as a volume or key configuration
 * names them) and point c->env.guard at it.  NULL: out of memory (the
 * operation must not start). */
struct running_op *agent_op_begin(struct agent *a, struct client *c, const char *what,
				  const char *from_provider, const char *from_ref,
				  const char *from_cmk_id, const char *to_provider,
				  const char *to_ref, const char *to_cmk_id);
/* The key configurations of @from and @to (NULL or "": not known, then
 * any revocation under the CMK stops it), so that a revocation of one
 * key configuration (its canary denied) stops only its operations. */
void agent_op_keyconfigs(struct running_op *op, const char *from_kc, const char *to_kc);
/* Unregister; was it aborted by a revocation? */
bool agent_op_end(struct agent *a, struct client *c, struct running_op *op);
/* The kill: abort every running operation under the CMK (and key
 * configuration @keyconfig, if not NULL or "": matched as watch.c's
 * under() matches volumes), waiting at most @wait_ms in all for a write
 * under way in them -- with a->lock DROPPED meanwhile (0: never dropped,
 * no wait), so that revocation jobs never wait behind an operator's
 * write.  The number aborted. */
size_t agent_ops_abort(struct agent *a, const char *cmk_id, const char *provider,
		       const char *key_ref, const char *keyconfig, const char *cause,
		       unsigned int wait_ms);
/* Aborted operations that have not ended yet (they wipe their keys as
 * they end): the kill waits for 0, within its bound. */
size_t agent_ops_aborted_running(struct agent *a);

#endif /* LC_AGENT_H */
