// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-agent: start-up, the poll() loop, threads, shutdown.
 *
 * The loop waits on the control socket, its clients (POLLIN when a client
 * may send its next request, POLLOUT while a reply waits), a signalfd, the
 * watcher's timerfd and an eventfd that workers ring when they finish.  It
 * never waits on anything else; see agent.h for the threads and the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "fileio.h"
#include "keyring.h"

/* A stalled KMS or disk may hold threads at shutdown: wait this long. */
#define SHUTDOWN_WAIT_MS	5000

int64_t agent_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int agent_spawn(struct agent *a, void *(*fn)(void *), void *arg)
{
	pthread_attr_t at;
	pthread_t t;
	int r;

	if (a->spawn_limit && a->threads >= a->spawn_limit)
		return -EAGAIN;	/* tests: as under TasksMax */
	if (pthread_attr_init(&at))
		return -ENOMEM;
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &at, fn, arg);
	pthread_attr_destroy(&at);
	if (r)
		return -r;
	a->threads++;
	return 0;
}

void agent_thread_done(struct agent *a)
{
	a->threads--;
	pthread_cond_broadcast(&a->changed);
}

static void dir_of(const char *path, char *out, size_t size)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(out, size, "%s", dirname(tmp));
}

/* Members of the operator group reach the socket through its group,
 * looked up once here, at start-up: a group created later takes effect
 * when the agent is restarted (the warning says so). */
static void socket_group(struct agent *a)
{
	gid_t gid;

	if (a->groups->group_gid(a->groups->ctx, a->cfg.operator_group, &gid) < 0) {
		lc_warn("group %s does not exist: only root can reach %s; create the group "
			"(groupadd --system %s), then restart the agent (systemctl restart lakecrypt-agent)",
			a->cfg.operator_group, a->cfg.socket_path, a->cfg.operator_group);
		return;
	}
	if (chown(a->cfg.socket_path, (uid_t)-1, gid) < 0)
		lc_warn("cannot give %s to group %s: %s", a->cfg.socket_path, a->cfg.operator_group,
			strerror(errno));
}

static int sync_init(struct agent *a, struct lc_error *err)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->done_lock, NULL);
	/* Revoke's deadline must not move with the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->changed, &ca);
	pthread_condattr_destroy(&ca);
	a->sync_ready = true;
	a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->wake_fd < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "eventfd: %s", strerror(errno));
	return 0;
}

static int load_volumes(struct agent *a, struct lc_error *err)
{
	struct lc_volume **vols = NULL;
	size_t n = 0;

	lc_file_clean_temps(a->runtime_path);
	if (lc_volumes_rediscover(&a->env, a->runtime_path, &vols, &n, err) < 0) {
		lc_warn("open volumes of an earlier run cannot be looked for: %s", err->msg);
		return 0;
	}
	a->vols = calloc(n + 1, sizeof(*a->vols));
	if (!a->vols) {
		for (size_t i = 0; i < n; i++)
			lc_volume_free(vols[i]);
		free(vols);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		struct vol_slot *s = calloc(1, sizeof(*s));

		if (!s) {
			lc_volume_free(vols[i]);
			continue;
		}
		s->v = vols[i];
		s->revoker = -1;
		/* Taken from the file; the status shows the kernel's view. */
		s->rs = s->v->revoked ? SLOT_REVOKED : SLOT_LIVE;
		agent_slot_sid(s);	/* uuid-claim.c: what writers must not touch */
		a->vols[a->nvols++] = s;
	}
	free(vols);
	return 0;
}

int agent_setup(struct agent *a, struct lc_error *err)
{
	char kms_dir[PATH_MAX], dir[PATH_MAX];
	struct itimerspec its = { 0 };
	sigset_t mask;
	int r;

	r = sync_init(a, err);
	if (r < 0)
		return r;
	/* Threads inherit the mask: block the signals the signalfd takes
	 * before the first thread starts, or one of them would get SIGTERM. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	/* The kill switch's own thread, before anything can use up threads. */
	r = agent_reserve_start(a, err);
	if (r < 0)
		return r;
	/* The watcher's too: detection needs no new thread either. */
	r = agent_watcher_start(a, err);
	if (r < 0)
		return r;
	r = lc_mkdir_p(a->cfg.state_dir, 0700, err);
	if (r < 0)
		return r;
	if (snprintf(kms_dir, sizeof(kms_dir), "%s/%s", a->cfg.state_dir, LC_AGENT_KMS_DIR) >=
	    (int)sizeof(kms_dir))
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG, "state directory path too long");
	/* Opening erases nothing (leftovers go to quarantine/); keys past
	 * their deletion dates are erased by the watcher's purge. */
	r = lc_kms_local_open(&a->kms, kms_dir, err);
	if (r < 0)
		return r;
	r = agent_registry_open(a, err);
	if (r < 0)
		return r;
	r = lc_seqstore_open(&a->seqs, a->cfg.state_dir, err);
	if (r < 0)
		return r;
	/* Operators' detached headers live here, owned by the agent. */
	if (snprintf(a->header_dir, sizeof(a->header_dir), "%s/%s", a->cfg.state_dir,
		     LC_AGENT_HEADER_DIR) >= (int)sizeof(a->header_dir))
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG, "state directory path too long");
	r = lc_mkdir_p(a->header_dir, 0700, err);
	if (r < 0)
		return r;
	dir_of(a->cfg.audit_log, dir, sizeof(dir));
	r = lc_mkdir_p(dir, 0750, err);
	if (r < 0)
		return r;
	r = lc_audit_open(&a->audit, a->cfg.audit_log, a->cfg.audit_fsync, err);
	if (r < 0)
		return r;
	r = agent_providers_init(a, err);
	if (r < 0)
		return r;
	agent_revocation_policy_audit(a);

	if (!a->env.be) {
		a->env.be = &lc_volume_backend_kernel;
		if (lc_keyring_available(err) < 0)
			lc_warn("%s: volumes cannot be opened until this is fixed", err->msg);
	}
	a->env.provider = agent_provider;
	a->env.provider_ctx = a;
	a->env.audit = &a->audit;
	a->env.peer_uid = -1;
	a->env.seqs = &a->seqs;

	dir_of(a->cfg.socket_path, dir, sizeof(dir));
	r = lc_mkdir_p(dir, 0755, err);
	if (r < 0)
		return r;
	if (snprintf(a->runtime_path, sizeof(a->runtime_path), "%s/%s", dir,
		     LC_AGENT_RUNTIME_FILE) >= (int)sizeof(a->runtime_path))
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG, "socket path too long");
	r = agent_open_records_init(a, err);
	if (r < 0)
		return r;
	r = load_volumes(a, err);
	if (r < 0)
		return r;
	/* Mappings volumes.json does not list: adopted or fail closed. */
	r = agent_adopt_mappings(a, err);
	if (r < 0)
		return r;
	(void)agent_volumes_save(a, NULL);
	/* From here on an open records itself before its mapping exists. */
	a->env.before_create = agent_open_record;
	a->env.before_create_ctx = a;

	a->listen_fd = lc_proto_listen(a->cfg.socket_path, a->cfg.socket_mode, err);
	if (a->listen_fd < 0)
		return a->listen_fd;
	(void)fcntl(a->listen_fd, F_SETFL, fcntl(a->listen_fd, F_GETFL) | O_NONBLOCK);
	socket_group(a);

	signal(SIGPIPE, SIG_IGN);
	a->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (a->signal_fd < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "signalfd: %s", strerror(errno));
	a->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (a->timer_fd < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "timerfd: %s", strerror(errno));
	its.it_value.tv_sec = a->cfg.watch_interval_s;
	its.it_interval.tv_sec = a->cfg.watch_interval_s;
	if (timerfd_settime(a->timer_fd, 0, &its, NULL) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "timerfd: %s", strerror(errno));
	/* With the signals blocked (the thread inherits the mask) and the
	 * volumes known (records in etcd may kill some). */
	return agent_registry_start(a, err);
}

static void on_signal(struct agent *a)
{
	struct signalfd_siginfo si;
	struct lc_error e;

	while (read(a->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			if (lc_audit_reopen(&a->audit, &e) < 0)
				lc_error_log("%s", e.msg);
			else
				lc_info("audit log reopened");
			continue;
		}
		lc_info("signal %u: shutting down", si.ssi_signo);
		a->stop = true;
	}
}

void agent_run(struct agent *a)
{
	struct pollfd *pfd = calloc(4 + LC_AGENT_CONN_MAX, sizeof(*pfd));
	struct client **cl = calloc(LC_AGENT_CONN_MAX, sizeof(*cl));

	if (!pfd || !cl) {
		lc_error_log("out of memory");
		a->stop = true;
	}
	while (!a->stop) {
		size_t n = 0, nc = a->nclients;
		int timeout = agent_clients_expire(a);

		nc = a->nclients;
		pfd[n++] = (struct pollfd){ .fd = a->signal_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = a->timer_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = a->wake_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = a->listen_fd, .events = POLLIN };
		for (size_t i = 0; i < nc; i++) {
			struct client *c = a->clients[i];

			cl[i] = c;
			if (c->dead) {	/* hung up; counted until its worker ends */
				pfd[n++] = (struct pollfd){ .fd = -1 };
				continue;
			}
			if (agent_client_ready(c))
				timeout = 0;	/* pipelined: serve it without waiting */
			pfd[n++] = (struct pollfd){
				.fd = c->conn.fd,
				/* One request at a time, and only once its reply is out. */
				.events = (short)((c->out ? POLLOUT : 0) |
						  (!c->busy && !c->out ? POLLIN : 0)),
			};
		}
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			lc_error_log("poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			on_signal(a);
		if (pfd[1].revents) {
			uint64_t ticks;

			if (read(a->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
				agent_watch_tick(a);
		}
		for (size_t i = 0; i < nc; i++) {
			struct client *c = cl[i];
			short ev = pfd[4 + i].revents;
			bool keep = true;

			if (c->dead || (!ev && !agent_client_ready(c)))
				continue;
			if (ev & POLLOUT)
				keep = agent_client_flush(a, c);
			if (keep && ((ev & POLLIN) || agent_client_ready(c)) && !c->busy && !c->out)
				keep = agent_client_serve(a, c);
			else if (keep && (ev & (POLLHUP | POLLERR)) && !(ev & POLLIN))
				keep = false;
			if (!keep)
				agent_client_drop(a, c);
		}
		if (pfd[2].revents) {
			uint64_t v;

			if (read(a->wake_fd, &v, sizeof(v)) == sizeof(v))
				agent_clients_collect(a);
		}
		if (pfd[3].revents)
			agent_client_accept(a);
	}
	free(pfd);
	free(cl);
}

void agent_teardown(struct agent *a)
{
	bool stuck = false;

	agent_clients_close_all(a);
	if (a->listen_fd >= 0) {
		close(a->listen_fd);
		(void)unlink(a->cfg.socket_path);
	}
	if (a->sync_ready)
		agent_registry_stop(a);
	if (a->sync_ready) {
		struct timespec dl;

		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += SHUTDOWN_WAIT_MS / 1000;
		agent_relock(a);
		agent_reserve_stop(a);
		agent_watcher_stop(a);
		while (a->threads && pthread_cond_timedwait(&a->changed, &a->lock, &dl) != ETIMEDOUT)
			;
		stuck = a->threads > 0;
		if (stuck)
			lc_warn("%u thread(s) still wait on the KMS or a disk after %d ms: exiting without freeing what they use",
				a->threads, SHUTDOWN_WAIT_MS);
		if (a->runtime_path[0] && a->kms)
			(void)agent_volumes_save(a, NULL);
		/* Devices stay mapped; the agent forgets (and wipes) the KEKs. */
		for (size_t i = 0; i < a->nvols; i++) {
			lc_secret_free(&a->vols[i]->v->kek);
			a->vols[i]->v->have_kek = false;
		}
		agent_unlock(a);
		if (stuck)
			return;
		agent_clients_collect(a);
	} else if (a->runtime_path[0] && a->kms) {
		(void)agent_volumes_save(a, NULL);
	}
	for (size_t i = 0; i < a->nvols; i++) {
		lc_volume_free(a->vols[i]->v);
		free(a->vols[i]);
	}
	free(a->vols);
	a->vols = NULL;
	a->nvols = 0;
	agent_terminate_free(a);
	agent_watches_free(a);
	agent_probes_free(a);
	agent_providers_close(a);
	if (a->kms)
		lc_kms_local_close(a->kms);
	a->kms = NULL;
	lc_registry_close(&a->reg);
	lc_seqstore_close(&a->seqs);
	lc_audit_close(&a->audit);
	if (a->signal_fd >= 0)
		close(a->signal_fd);
	if (a->timer_fd >= 0)
		close(a->timer_fd);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	a->signal_fd = a->timer_fd = a->wake_fd = -1;
	if (a->sync_ready) {
		if (a->reserve_cv_ready)
			pthread_cond_destroy(&a->reserve_cv);
		a->reserve_cv_ready = false;
		pthread_cond_destroy(&a->changed);
		pthread_mutex_destroy(&a->lock);
		pthread_mutex_destroy(&a->done_lock);
		a->sync_ready = false;
	}
}
