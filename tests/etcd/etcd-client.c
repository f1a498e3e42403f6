// SPDX-License-Identifier: GPL-2.0
/*
 * Test driver of the etcd v3 client (agent/lib/etcd.c), for
 * tests/etcd/check.sh against a real cluster:
 *
 *   etcd-client [options] put KEY VALUE          -> revision=<n>
 *   etcd-client [options] get KEY [REV]          -> kv key=<k> value=<v> mod=<n> create=<n> version=<n> lease=<n> / revision=<n> count=<n>
 *   etcd-client [options] prefix KEY             -> kv ... per key, in order
 *   etcd-client [options] del KEY [prefix]       -> deleted=<n> revision=<n>
 *   etcd-client [options] cas KEY MOD VALUE      -> revision=<n> | conflict
 *   etcd-client [options] race KEY               -> winners=<n> losers=<n>: two
 *               threads, each on its own client, CAS the key from its
 *               current mod_revision to their own value at the same moment
 *   etcd-client [options] lease-grant TTL        -> lease=<id> ttl=<s>
 *   etcd-client [options] put-lease KEY VALUE ID -> revision=<n>
 *   etcd-client [options] keepalive ID           -> ttl=<s>
 *   etcd-client [options] revoke ID
 *   etcd-client [options] compact REV
 *   etcd-client [options] watch KEY FROM N [prefix]  -> ev PUT|DELETE <key> <value> <mod>
 *               per event, progress <rev> per notification; stops after N
 *               events (N = 0: after the first progress notification)
 *   etcd-client [options] revision               -> revision=<n> (of an empty range on "\x01")
 *   etcd-client [options] get-put KEY1 KEY2 VALUE -> a range of KEY1, then a put of
 *               KEY2 on the same client (its connection reused)
 * options: --endpoints URL,URL,... --ca FILE --cert FILE --key FILE
 *          --timeout MS --connect-timeout MS --idle MS
 *          --max-ms MS: a watch stops (through its stop flag) after MS (30000)
 *          --blackhole: put a loopback listener that never answers first
 * Every run ends with one line
 *   result ok|error class=<CLASS> code=<n> ms=<n> member=<i> msg=<msg>
 * and exits 0 (ok) or 2 (error).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"

static struct lc_etcd_opts opts;
static atomic_bool stop_watch;
static long max_ms = 30000;

static void *stopper(void *arg)
{
	struct timespec t = { .tv_sec = max_ms / 1000, .tv_nsec = (max_ms % 1000) * 1000000 };

	(void)arg;
	nanosleep(&t, NULL);
	atomic_store(&stop_watch, true);
	return NULL;
}
static const char *eps[LC_ETCD_MAX_ENDPOINTS];
static char blackhole_ep[64];

static int64_t num(const char *s)
{
	return strtoll(s, NULL, 10);
}

static void print_kv(const struct lc_etcd_kv *kv)
{
	printf("kv key=%s value=%s mod=%lld create=%lld version=%lld lease=%lld\n", (const char *)kv->key,
	       (const char *)kv->value, (long long)kv->mod_revision, (long long)kv->create_revision,
	       (long long)kv->version, (long long)kv->lease);
}

struct wctx {
	long want, seen;
};

static int on_msg(void *arg, const struct lc_etcd_watch_msg *m)
{
	struct wctx *w = arg;

	switch (m->kind) {
	case LC_ETCD_W_CREATED:
		printf("created revision=%lld\n", (long long)m->revision);
		break;
	case LC_ETCD_W_EVENTS:
		for (size_t i = 0; i < m->nevents; i++) {
			const struct lc_etcd_kv *kv = &m->events[i].kv;

			printf("ev %s %s %s %lld\n", m->events[i].type == LC_ETCD_EV_PUT ? "PUT" : "DELETE",
			       (const char *)kv->key, kv->value_len ? (const char *)kv->value : "-",
			       (long long)kv->mod_revision);
			w->seen++;
		}
		break;
	case LC_ETCD_W_PROGRESS:
		printf("progress %lld\n", (long long)m->revision);
		if (!w->want)
			return 1;
		break;
	case LC_ETCD_W_COMPACTED:
		printf("compacted %lld\n", (long long)m->compact_revision);
		break;
	case LC_ETCD_W_CANCELED:
		printf("canceled %s\n", m->reason);
		break;
	}
	fflush(stdout);
	return w->want && w->seen >= w->want;
}

struct racer {
	const char *key, *value;
	int64_t mod;
	pthread_barrier_t *bar;
	int r;
	struct lc_error err;
};

static void *race_one(void *arg)
{
	struct racer *rc = arg;
	struct lc_etcd *e;

	if (lc_etcd_new(&e, &opts, &rc->err)) {
		rc->r = -1;
		pthread_barrier_wait(rc->bar);
		return NULL;
	}
	pthread_barrier_wait(rc->bar);
	rc->r = lc_etcd_cas(e, rc->key, strlen(rc->key), rc->mod, rc->value, strlen(rc->value), 0, NULL,
			    &rc->err);
	lc_etcd_free(e);
	return NULL;
}

static int blackhole(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	/* listens (the kernel completes TCP handshakes) and never reads */
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 16) ||
	    getsockname(s, (struct sockaddr *)&a, &l))
		return -1;
	snprintf(blackhole_ep, sizeof(blackhole_ep), "https://127.0.0.1:%u", ntohs(a.sin_port));
	return s;
}

int main(int argc, char **argv)
{
	struct lc_error err = { 0 };
	struct lc_etcd *e = NULL;
	struct timespec a, b;
	uint64_t idle = 20000;
	char *list = NULL;
	bool bh = false;
	int i, r = 0;
	long ms;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";

		if (!strcmp(o, "--blackhole")) {
			bh = true;
			continue;
		}
		i++;
		if (!strcmp(o, "--endpoints"))
			list = strdup(v);
		else if (!strcmp(o, "--ca"))
			opts.ca_file = v;
		else if (!strcmp(o, "--cert"))
			opts.cert_file = v;
		else if (!strcmp(o, "--key"))
			opts.key_file = v;
		else if (!strcmp(o, "--timeout"))
			opts.timeout_ms = (uint64_t)num(v);
		else if (!strcmp(o, "--connect-timeout"))
			opts.connect_timeout_ms = (uint64_t)num(v);
		else if (!strcmp(o, "--max-ms"))
			max_ms = (long)num(v);
		else if (!strcmp(o, "--idle"))
			idle = (uint64_t)num(v);
		else {
			fprintf(stderr, "unknown option %s\n", o);
			return 1;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "usage: see the source\n");
		return 1;
	}
	if (bh && blackhole() >= 0)
		eps[opts.n_endpoints++] = blackhole_ep;
	for (char *t = list ? strtok(list, ",") : NULL; t && opts.n_endpoints < LC_ETCD_MAX_ENDPOINTS;
	     t = strtok(NULL, ","))
		eps[opts.n_endpoints++] = t;
	opts.endpoints = eps;

	clock_gettime(CLOCK_MONOTONIC, &a);
	r = lc_etcd_new(&e, &opts, &err);
	if (!r) {
		const char *cmd = argv[i];
		char **av = argv + i + 1;
		int ac = argc - i - 1;
		int64_t rev = 0;

#define NEED(n) do { if (ac < (n)) { fprintf(stderr, "%s: %d arguments\n", cmd, (n)); return 1; } } while (0)
		if (!strcmp(cmd, "put")) {
			NEED(2);
			r = lc_etcd_put(e, av[0], strlen(av[0]), av[1], strlen(av[1]), 0, &rev, &err);
			if (!r)
				printf("revision=%lld\n", (long long)rev);
		} else if (!strcmp(cmd, "put-lease")) {
			NEED(3);
			r = lc_etcd_put(e, av[0], strlen(av[0]), av[1], strlen(av[1]), num(av[2]), &rev, &err);
			if (!r)
				printf("revision=%lld\n", (long long)rev);
		} else if (!strcmp(cmd, "get") || !strcmp(cmd, "prefix") || !strcmp(cmd, "revision")) {
			struct lc_etcd_range_result res;
			bool pfx = !strcmp(cmd, "prefix");
			const char *k = "\x01";

			if (strcmp(cmd, "revision")) {
				NEED(1);
				k = av[0];
			}

			r = lc_etcd_range(e, k, strlen(k), pfx, !pfx && ac > 1 ? num(av[1]) : 0, 0, &res, &err);
			if (!r) {
				for (size_t j = 0; j < res.n; j++)
					print_kv(&res.kvs[j]);
				printf("revision=%lld count=%lld\n", (long long)res.revision, (long long)res.count);
				lc_etcd_range_result_free(&res);
			}
		} else if (!strcmp(cmd, "prefix-paged")) {
			struct lc_etcd_range_result res;

			NEED(2);
			r = lc_etcd_range_prefix_all(e, av[0], strlen(av[0]), (size_t)num(av[1]),
						     ac > 2 ? (size_t)num(av[2]) : 0, &res, &err);
			if (!r) {
				for (size_t j = 0; j < res.n; j++)
					print_kv(&res.kvs[j]);
				printf("revision=%lld count=%lld\n", (long long)res.revision, (long long)res.count);
				lc_etcd_range_result_free(&res);
			}
		} else if (!strcmp(cmd, "get-put")) {
			struct lc_etcd_range_result res;

			NEED(3);
			r = lc_etcd_range(e, av[0], strlen(av[0]), false, 0, 0, &res, &err);
			if (!r) {
				printf("first member=%zu\n", lc_etcd_current(e));
				lc_etcd_range_result_free(&res);
				r = lc_etcd_put(e, av[1], strlen(av[1]), av[2], strlen(av[2]), 0, &rev, &err);
				if (!r)
					printf("revision=%lld\n", (long long)rev);
			}
		} else if (!strcmp(cmd, "del")) {
			int64_t d = 0;

			NEED(1);
			r = lc_etcd_delete(e, av[0], strlen(av[0]), ac > 1 && !strcmp(av[1], "prefix"), &d, &rev, &err);
			if (!r)
				printf("deleted=%lld revision=%lld\n", (long long)d, (long long)rev);
		} else if (!strcmp(cmd, "cas")) {
			NEED(3);
			r = lc_etcd_cas(e, av[0], strlen(av[0]), num(av[1]), av[2], strlen(av[2]), 0, &rev, &err);
			if (!r)
				printf("revision=%lld\n", (long long)rev);
			else if (r == -ECANCELED) {
				printf("conflict\n");
				r = 0;
			}
		} else if (!strcmp(cmd, "race")) {
			struct lc_etcd_range_result res;
			pthread_barrier_t bar;
			struct racer rc[2] = { { .value = "writer-A" }, { .value = "writer-B" } };
			pthread_t t[2];
			int winners = 0, losers = 0;

			NEED(1);
			r = lc_etcd_range(e, av[0], strlen(av[0]), false, 0, 0, &res, &err);
			if (!r) {
				pthread_barrier_init(&bar, NULL, 2);
				for (int k = 0; k < 2; k++) {
					rc[k].key = av[0];
					rc[k].mod = res.n ? res.kvs[0].mod_revision : 0;
					rc[k].bar = &bar;
					pthread_create(&t[k], NULL, race_one, &rc[k]);
				}
				for (int k = 0; k < 2; k++) {
					pthread_join(t[k], NULL);
					if (!rc[k].r)
						winners++;
					else if (rc[k].r == -ECANCELED && rc[k].err.cls == LC_ERRC_NONE)
						losers++;
					else
						err = rc[k].err, r = rc[k].r;
					printf("writer %c: %s\n", 'A' + k, rc[k].r ? rc[k].err.msg : "won");
				}
				pthread_barrier_destroy(&bar);
				lc_etcd_range_result_free(&res);
				printf("winners=%d losers=%d\n", winners, losers);
			}
		} else if (!strcmp(cmd, "lease-grant")) {
			int64_t id, ttl;

			NEED(1);
			r = lc_etcd_lease_grant(e, num(av[0]), &id, &ttl, &err);
			if (!r)
				printf("lease=%lld ttl=%lld\n", (long long)id, (long long)ttl);
		} else if (!strcmp(cmd, "keepalive")) {
			int64_t ttl = 0;

			NEED(1);
			r = lc_etcd_lease_keepalive(e, num(av[0]), &ttl, &err);
			if (!r)
				printf("ttl=%lld\n", (long long)ttl);
		} else if (!strcmp(cmd, "revoke")) {
			NEED(1);
			r = lc_etcd_lease_revoke(e, num(av[0]), &err);
		} else if (!strcmp(cmd, "compact")) {
			NEED(1);
			r = lc_etcd_compact(e, num(av[0]), &err);
		} else if (!strcmp(cmd, "watch")) {
			struct wctx w = { 0 };
			int64_t next = 0;

			pthread_t st;

			NEED(3);
			w.want = (long)num(av[2]);
			pthread_create(&st, NULL, stopper, NULL);
			pthread_detach(st);
			r = lc_etcd_watch(e, av[0], strlen(av[0]), ac > 3 && !strcmp(av[3], "prefix"), num(av[1]), idle,
					  &stop_watch, on_msg, &w, &next, &err);
			if (atomic_load(&stop_watch))
				printf("stopped after %ld ms\n", max_ms);
			printf("next=%lld\n", (long long)next);
		} else {
			fprintf(stderr, "unknown command %s\n", cmd);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	if (!r)
		printf("result ok ms=%ld member=%zu\n", ms, e ? lc_etcd_current(e) : 0);
	else
		printf("result error class=%s code=%d ms=%ld member=%zu msg=%s\n", lc_err_class_name(err.cls), r, ms,
		       e ? lc_etcd_current(e) : 0, err.msg);
	lc_etcd_free(e);
	free(list);
	return r ? 2 : 0;
}
