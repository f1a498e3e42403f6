// SPDX-License-Identifier: GPL-2.0
/*
 * The agent's INI configuration file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/dm-lakecrypt.h>

#include "config.h"
#include "revconf.h"

#define CONFIG_FILE_MAX (1024 * 1024)

enum kind {
	K_PATH,		/* absolute path */
	K_NAME,		/* group name */
	K_WORD,		/* cipher spec: no blanks */
	K_BOOL,
	K_UINT,
	K_MODE,
	K_LOG,
	K_LEVEL,
	K_SEGSIZE,
	K_URL,		/* http:// or https://, no blanks */
	K_TEXT,		/* any printable text, blanks inside allowed */
	K_BACKEND,	/* registry backend: file | etcd */
	K_ENDPOINTS,	/* comma-separated https://host[:port] */
	K_PREFIX,	/* etcd key prefix: /.../ */
};

struct key {
	const char *section, *name;
	enum kind kind;
	size_t off, size;
	uint64_t min, max;
};

#define F(m) offsetof(struct lc_config, m), sizeof(((struct lc_config *)0)->m)

static const struct key keys[] = {
	{ "agent", "socket", K_PATH, F(socket_path), 0, 0 },
	{ "agent", "socket_mode", K_MODE, F(socket_mode), 0, 0777 },
	{ "agent", "state_dir", K_PATH, F(state_dir), 0, 0 },
	{ "agent", "audit_log", K_PATH, F(audit_log), 0, 0 },
	{ "agent", "audit_fsync", K_BOOL, F(audit_fsync), 0, 0 },
	{ "agent", "admin_group", K_NAME, F(admin_group), 0, 0 },
	{ "agent", "operator_group", K_NAME, F(operator_group), 0, 0 },
	{ "agent", "log", K_LOG, F(log_syslog), 0, 0 },
	{ "agent", "log_level", K_LEVEL, F(log_level), 0, 0 },
	{ "agent", "max_clients", K_UINT, F(max_clients), 1, 1024 },
	{ "agent", "max_clients_per_uid", K_UINT, F(max_clients_per_uid), 1, 1024 },
	{ "agent", "idle_timeout_s", K_UINT, F(idle_timeout_s), 1, 86400 },
	{ "agent", "send_timeout_s", K_UINT, F(send_timeout_s), 1, 3600 },
	{ "agent", "busy_wait_ms", K_UINT, F(busy_wait_ms), 0, 600000 },
	{ "agent", "lakecrypttab", K_PATH, F(lakecrypttab), 0, 0 },
	{ "agent", "crypttab", K_PATH, F(crypttab), 0, 0 },
	{ "kms", "retry_attempts", K_UINT, F(retry_attempts), 1, 100 },
	{ "kms", "retry_base_delay_ms", K_UINT, F(retry_base_delay_ms), 1, 600000 },
	{ "kms", "retry_max_delay_ms", K_UINT, F(retry_max_delay_ms), 1, 600000 },
	{ "kms", "deadline_ms", K_UINT, F(deadline_ms), 1, 3600000 },
	{ "revocation", "watch_interval_s", K_UINT, F(watch_interval_s), 1, 86400 },
	{ "revocation", "revoke_wait_ms", K_UINT, F(revoke_wait_ms), 1, 600000 },
	{ "revocation", "jitter_pct", K_UINT, F(jitter_pct), 0, 50 },
	{ "revocation", "confirm_denials", K_UINT, F(confirm_denials), 1, 16 },
	{ "revocation", "confirm_window_s", K_UINT, F(confirm_window_s), 1, 604800 },
	{ "revocation", "fail_closed_after_s", K_UINT, F(fail_closed_after_s), 0, 31536000 },
	{ "revocation", "canary", K_BOOL, F(canary), 0, 0 },
	{ "test", "kms_stall_file", K_PATH, F(test_kms_stall_file), 0, 0 },
	{ "test", "kms_fault_file", K_PATH, F(test_kms_fault_file), 0, 0 },
	{ "test", "watch_pause_file", K_PATH, F(test_watch_pause_file), 0, 0 },
	{ "test", "segrekey_pause_file", K_PATH, F(test_segrekey_pause_file), 0, 0 },
	{ "test", "registry_pause_file", K_PATH, F(test_registry_pause_file), 0, 0 },
	{ "test", "watch_keyconfig", K_NAME, F(test_watch_keyconfig), 0, 0 },
	{ "volume", "cipher", K_WORD, F(cipher), 0, 0 },
	{ "volume", "key_size", K_UINT, F(key_size), 1, LAKECRYPT_MAX_KEY_SIZE },
	{ "volume", "segment_size", K_SEGSIZE, F(segment_sectors), 0, 0 },
	{ "aws-kms", "endpoint", K_URL, F(aws_endpoint), 0, 0 },
	{ "aws-kms", "region", K_WORD, F(aws_region), 0, 0 },
	{ "aws-kms", "ca_bundle", K_PATH, F(aws_ca_bundle), 0, 0 },
	{ "aws-kms", "credentials", K_WORD, F(aws_credentials), 0, 0 },
	{ "aws-kms", "profile", K_WORD, F(aws_profile), 0, 0 },
	{ "aws-kms", "imds_endpoint", K_URL, F(aws_imds_endpoint), 0, 0 },
	{ "aws-kms", "connect_timeout_ms", K_UINT, F(aws_connect_timeout_ms), 1, 600000 },
	{ "aws-kms", "imds_timeout_ms", K_UINT, F(aws_imds_timeout_ms), 1, 600000 },
	{ "aws-kms", "sts_endpoint", K_URL, F(aws_sts_endpoint), 0, 0 },
	{ "kmip", "server", K_WORD, F(kmip_server), 0, 0 },
	{ "kmip", "ca_bundle", K_PATH, F(kmip_ca_bundle), 0, 0 },
	{ "kmip", "client_cert", K_PATH, F(kmip_client_cert), 0, 0 },
	{ "kmip", "client_key", K_PATH, F(kmip_client_key), 0, 0 },
	{ "kmip", "max_version", K_WORD, F(kmip_max_version), 0, 0 },
	{ "kmip", "connect_timeout_ms", K_UINT, F(kmip_connect_timeout_ms), 1, 600000 },
	{ "pkcs11", "module", K_PATH, F(pkcs11_module), 0, 0 },
	{ "pkcs11", "token_label", K_TEXT, F(pkcs11_token_label), 0, 0 },
	{ "pkcs11", "token_serial", K_WORD, F(pkcs11_token_serial), 0, 0 },
	{ "pkcs11", "pin_file", K_PATH, F(pkcs11_pin_file), 0, 0 },
	{ "pkcs11", "sessions", K_UINT, F(pkcs11_sessions), 1, 64 },
	{ "gcp-kms", "endpoint", K_URL, F(gcp_endpoint), 0, 0 },
	{ "gcp-kms", "ca_bundle", K_PATH, F(gcp_ca_bundle), 0, 0 },
	{ "gcp-kms", "credentials", K_WORD, F(gcp_credentials), 0, 0 },
	{ "gcp-kms", "key_file", K_PATH, F(gcp_key_file), 0, 0 },
	{ "gcp-kms", "metadata_endpoint", K_URL, F(gcp_metadata_endpoint), 0, 0 },
	{ "gcp-kms", "connect_timeout_ms", K_UINT, F(gcp_connect_timeout_ms), 1, 600000 },
	{ "gcp-kms", "metadata_timeout_ms", K_UINT, F(gcp_metadata_timeout_ms), 1, 600000 },
	{ "azure-kv", "credentials", K_WORD, F(azure_credentials), 0, 0 },
	{ "azure-kv", "tenant_id", K_WORD, F(azure_tenant_id), 0, 0 },
	{ "azure-kv", "client_id", K_WORD, F(azure_client_id), 0, 0 },
	{ "azure-kv", "client_secret_file", K_PATH, F(azure_client_secret_file), 0, 0 },
	{ "azure-kv", "client_certificate_file", K_PATH, F(azure_client_certificate_file), 0, 0 },
	{ "azure-kv", "authority", K_URL, F(azure_authority), 0, 0 },
	{ "azure-kv", "imds_endpoint", K_URL, F(azure_imds_endpoint), 0, 0 },
	{ "azure-kv", "resource", K_URL, F(azure_resource), 0, 0 },
	{ "azure-kv", "ca_bundle", K_PATH, F(azure_ca_bundle), 0, 0 },
	{ "azure-kv", "connect_timeout_ms", K_UINT, F(azure_connect_timeout_ms), 1, 600000 },
	{ "azure-kv", "imds_timeout_ms", K_UINT, F(azure_imds_timeout_ms), 1, 600000 },
	{ "registry", "backend", K_BACKEND, F(registry_etcd), 0, 0 },
	{ "registry", "endpoints", K_ENDPOINTS, F(registry_endpoints), 0, 0 },
	{ "registry", "ca", K_PATH, F(registry_ca), 0, 0 },
	{ "registry", "cert", K_PATH, F(registry_cert), 0, 0 },
	{ "registry", "key", K_PATH, F(registry_key), 0, 0 },
	{ "registry", "prefix", K_PREFIX, F(registry_prefix), 0, 0 },
	{ "registry", "connect_timeout_ms", K_UINT, F(registry_connect_timeout_ms), 1, 600000 },
	{ "registry", "timeout_ms", K_UINT, F(registry_timeout_ms), 1, 600000 },
	{ "registry", "watch_idle_s", K_UINT, F(registry_watch_idle_s), 1, 86400 },
	{ "registry", "retry_max_ms", K_UINT, F(registry_retry_max_ms), 100, 600000 },
	{ "registry", "backstop_interval_s", K_UINT, F(registry_backstop_interval_s), 0, 604800 },
	{ "registry", "probe_lease_s", K_UINT, F(registry_probe_lease_s), 2, 3600 },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void lc_config_defaults(struct lc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->socket_path, sizeof(cfg->socket_path), "/run/lakecrypt/agent.sock");
	snprintf(cfg->lakecrypttab, sizeof(cfg->lakecrypttab), "%s", LC_LAKECRYPTTAB_DEFAULT_PATH);
	snprintf(cfg->crypttab, sizeof(cfg->crypttab), "/etc/crypttab");
	cfg->socket_mode = 0660;
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/lakecrypt");
	snprintf(cfg->audit_log, sizeof(cfg->audit_log), "/var/log/lakecrypt/audit.log");
	cfg->audit_fsync = true;
	snprintf(cfg->admin_group, sizeof(cfg->admin_group), "lakecrypt-admin");
	snprintf(cfg->operator_group, sizeof(cfg->operator_group), "lakecrypt");
	cfg->log_syslog = false;
	cfg->log_level = LC_LOG_INFO;
	cfg->max_clients = 64;
	cfg->max_clients_per_uid = 16;
	cfg->idle_timeout_s = 60;
	cfg->send_timeout_s = 10;
	cfg->busy_wait_ms = 30000;
	cfg->retry_attempts = 5;
	cfg->retry_base_delay_ms = 100;
	cfg->retry_max_delay_ms = 5000;
	cfg->deadline_ms = 30000;
	cfg->watch_interval_s = 60;
	cfg->revoke_wait_ms = 5000;
	cfg->jitter_pct = 10;
	cfg->confirm_denials = 2;
	cfg->confirm_window_s = 300;
	cfg->fail_closed_after_s = 0;
	cfg->canary = true;
	snprintf(cfg->cipher, sizeof(cfg->cipher), "aes-xts-plain64");
	cfg->key_size = 64;
	cfg->segment_sectors = 2048;	/* 1 MiB */
	cfg->registry_etcd = false;
	snprintf(cfg->registry_prefix, sizeof(cfg->registry_prefix), "/lakecrypt/");
	cfg->registry_connect_timeout_ms = 2000;
	cfg->registry_timeout_ms = 5000;
	cfg->registry_watch_idle_s = 660;
	cfg->registry_retry_max_ms = 10000;
	cfg->registry_backstop_interval_s = 900;
	cfg->registry_probe_lease_s = 30;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Trim [*b, *e) in place. */
static void trim(const char **b, const char **e)
{
	while (*b < *e && is_blank(**b))
		(*b)++;
	while (*e > *b && is_blank((*e)[-1]))
		(*e)--;
}

static int parse_uint(const char *v, uint64_t *out)
{
	uint64_t x = 0;

	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return -EINVAL;
		if (x > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		x = x * 10 + (uint64_t)(*v - '0');
	}
	*out = x;
	return 0;
}

#define bad(...) lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, __VA_ARGS__)

/* [registry] endpoints: 1..LC_CONFIG_ENDPOINTS_MAX comma-separated
 * https://host[:port] (host a name, an IPv4 address or [IPv6]; port
 * 1..65535; no path, no user part), each at most LC_CONFIG_URL_MAX - 1
 * characters.  The etcd client (etcd.h) checks the same again. */
static int set_endpoints(char *dst, size_t size, const char *v, const char *file,
			 unsigned int line, struct lc_error *err)
{
	size_t n = 0, vlen = strlen(v);
	const char *p = v;

	if (vlen >= size)
		return bad("%s:%u: endpoints is too long: at most %zu characters", file, line,
			   size - 1);
	while (*p) {
		const char *e = strchr(p, ','), *h, *c;
		size_t len;

		if (!e)
			e = p + strlen(p);
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		len = (size_t)(e - p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (++n > LC_CONFIG_ENDPOINTS_MAX)
			return bad("%s:%u: endpoints: more than %d members", file, line,
				   LC_CONFIG_ENDPOINTS_MAX);
		if (len < 9 || len >= LC_CONFIG_URL_MAX || strncmp(p, "https://", 8))
			goto bad_ep;
		h = p + 8;
		if (memchr(h, '/', len - 8) || memchr(h, '@', len - 8) || memchr(h, ' ', len - 8) ||
		    memchr(h, '?', len - 8) || memchr(h, '#', len - 8))
			goto bad_ep;
		c = h[0] == '[' ? memchr(h, ']', len - 8) : h;
		if (!c)
			goto bad_ep;
		c = memchr(c, ':', (size_t)(p + len - c));
		if (c) {
			unsigned long port = 0;
			const char *q = c + 1;

			if (q == p + len || p + len - q > 5)
				goto bad_ep;
			for (; q < p + len; q++) {
				if (*q < '0' || *q > '9')
					goto bad_ep;
				port = port * 10 + (unsigned long)(*q - '0');
			}
			if (!port || port > 65535 || c == h)
				goto bad_ep;
		}
		p = *e ? e + 1 : e;
		if (*e && !*p)
			return bad("%s:%u: endpoints ends with a comma", file, line);
		continue;
bad_ep:
		return bad("%s:%u: endpoints: \"%.*s\" is not an etcd member: expected https://host[:port] without a path, e.g. https://10.0.0.1:2379",
			   file, line, (int)(len > 200 ? 200 : len), p);
	}
	memcpy(dst, v, vlen + 1);
	return 0;
}

static int set_value(struct lc_config *cfg, const struct key *k, const char *v, const char *file,
		     unsigned int line, struct lc_error *err)
{
	char *dst = (char *)cfg + k->off;
	size_t vlen = strlen(v);
	uint64_t n;

	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < ' ' && *p != '\t')
			return bad("%s:%u: %s has a control character in its value", file, line,
				   k->name);

	switch (k->kind) {
	case K_PATH:
		if (v[0] != '/')
			return bad("%s:%u: %s = \"%s\" is not an absolute path", file, line, k->name, v);
		if (vlen >= k->size)
			return bad("%s:%u: %s is too long: at most %zu characters", file, line,
				   k->name, k->size - 1);
		memcpy(dst, v, vlen + 1);
		return 0;
	case K_NAME:
		for (const char *p = v; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
				return bad("%s:%u: %s = \"%s\" is not a group name: expected letters, digits, '-', '_' or '.'",
					   file, line, k->name, v);
		if (vlen >= k->size)
			return bad("%s:%u: %s is too long: at most %zu characters", file, line,
				   k->name, k->size - 1);
		memcpy(dst, v, vlen + 1);
		return 0;
	case K_WORD:
		if (strpbrk(v, " \t"))
			return bad("%s:%u: %s = \"%s\" must be a single word", file, line, k->name, v);
		if (vlen >= k->size)
			return bad("%s:%u: %s is too long: at most %zu characters", file, line,
				   k->name, k->size - 1);
		memcpy(dst, v, vlen + 1);
		return 0;
	case K_TEXT:
		if (vlen >= k->size)
			return bad("%s:%u: %s is too long: at most %zu characters", file, line,
				   k->name, k->size - 1);
		memcpy(dst, v, vlen + 1);
		return 0;
	case K_URL:
		if ((strncmp(v, "https://", 8) && strncmp(v, "http://", 7)) || strpbrk(v, " \t"))
			return bad("%s:%u: %s = \"%s\" is not a URL: expected https://host[:port]",
				   file, line, k->name, v);
		if (vlen >= k->size)
			return bad("%s:%u: %s is too long: at most %zu characters", file, line,
				   k->name, k->size - 1);
		memcpy(dst, v, vlen + 1);
		return 0;
	case K_BACKEND:
		if (!strcmp(v, "etcd"))
			*(bool *)dst = true;
		else if (!strcmp(v, "file"))
			*(bool *)dst = false;
		else
			return bad("%s:%u: backend = \"%s\": expected file or etcd", file, line, v);
		return 0;
	case K_ENDPOINTS:
		return set_endpoints(dst, k->size, v, file, line, err);
	case K_PREFIX:
		if (v[0] != '/' || v[vlen - 1] != '/' || strpbrk(v, " \t") || vlen >= k->size)
			return bad("%s:%u: prefix = \"%s\": expected a key prefix that starts and ends with '/', without blanks, at most %zu characters, e.g. /lakecrypt/",
				   file, line, v, k->size - 1);
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p > 0x7e)
				return bad("%s:%u: prefix = \"%s\": expected printable ASCII",
					   file, line, v);
		memcpy(dst, v, vlen + 1);
		return 0;
	case K_BOOL:
		if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
			*(bool *)dst = true;
		else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") ||
			 !strcmp(v, "0"))
			*(bool *)dst = false;
		else
			return bad("%s:%u: %s = \"%s\" is not a boolean: expected yes or no", file,
				   line, k->name, v);
		return 0;
	case K_UINT:
		if (parse_uint(v, &n) < 0 || n < k->min || n > k->max)
			return bad("%s:%u: %s = \"%s\" is not usable: expected a whole number from %" PRIu64 " to %" PRIu64,
				   file, line, k->name, v, k->min, k->max);
		*(unsigned int *)dst = (unsigned int)n;
		return 0;
	case K_MODE: {
		unsigned long m = 0;
		const char *p = v;

		if (vlen > 4)
			goto bad_mode;
		for (; *p; p++) {
			if (*p < '0' || *p > '7')
				goto bad_mode;
			m = m * 8 + (unsigned long)(*p - '0');
		}
		if (m > k->max)
			goto bad_mode;
		*(mode_t *)dst = (mode_t)m;
		return 0;
bad_mode:
		return bad("%s:%u: %s = \"%s\" is not an octal permission mode such as 0660", file,
			   line, k->name, v);
	}
	case K_LOG:
		if (!strcmp(v, "syslog"))
			*(bool *)dst = true;
		else if (!strcmp(v, "stderr"))
			*(bool *)dst = false;
		else
			return bad("%s:%u: log = \"%s\": expected stderr or syslog", file, line, v);
		return 0;
	case K_LEVEL:
		if (!strcmp(v, "error"))
			*(enum lc_log_level *)dst = LC_LOG_ERR;
		else if (!strcmp(v, "warning"))
			*(enum lc_log_level *)dst = LC_LOG_WARNING;
		else if (!strcmp(v, "info"))
			*(enum lc_log_level *)dst = LC_LOG_INFO;
		else if (!strcmp(v, "debug"))
			*(enum lc_log_level *)dst = LC_LOG_DEBUG;
		else
			return bad("%s:%u: log_level = \"%s\": expected error, warning, info or debug",
				   file, line, v);
		return 0;
	case K_SEGSIZE: {
		char num[32];
		uint64_t mult = 1;
		size_t nl = vlen;

		if (nl && strchr("KkMmGg", v[nl - 1])) {
			char s = v[nl - 1];

			mult = (s == 'K' || s == 'k') ? 1ULL << 10 : (s == 'M' || s == 'm') ? 1ULL << 20 : 1ULL << 30;
			nl--;
		}
		if (!nl || nl >= sizeof(num))
			goto bad_seg;
		memcpy(num, v, nl);
		num[nl] = '\0';
		if (parse_uint(num, &n) < 0 || n > (1ULL << 40) / mult)
			goto bad_seg;
		n *= mult;
		if (n < LAKECRYPT_MIN_SEGMENT_SECTORS * 512ULL || n > (512ULL << 31) || (n & (n - 1)))
			goto bad_seg;
		*(uint64_t *)dst = n / 512;
		return 0;
bad_seg:
		return bad("%s:%u: segment_size = \"%s\": expected a power of two from 4K to 1024G in bytes, e.g. 1M",
			   file, line, v);
	}
	}
	return bad("%s:%u: internal error", file, line);
}

/*
 * [revocation] as a whole (each key alone is range-checked above): a
 * configuration whose watcher can never confirm a revocation is refused.
 * The watcher probes every watch_interval_s, each interval drawn in
 * [i * (1 - jitter_pct/100), i * (1 + jitter_pct/100)] (rearm(),
 * agent/daemon/watch.c), so its confirm_denials denials span up to
 * (confirm_denials - 1) * watch_interval_s * (1 + jitter_pct/100)
 * seconds; more than confirm_window_s and each new denial finds the
 * first already dropped: a revoked key is never acted on.  Then the
 * agent's own confirmation policy (lc_revconf_policy_check(), with the
 * spacing the agent uses) must hold.  @line: the last line that set one
 * of the keys (0: none, the defaults).  0 or -EINVAL (MISCONFIG).
 */
static int check_revocation(const struct lc_config *cfg, const char *name, unsigned int line,
			    struct lc_error *err)
{
	uint64_t steps = cfg->confirm_denials > 1 ? cfg->confirm_denials - 1 : 0;
	uint64_t span = steps * cfg->watch_interval_s * (100 + cfg->jitter_pct);	/* s/100 */
	uint64_t window = (uint64_t)cfg->confirm_window_s * 100;			/* s/100 */
	struct lc_revconf_policy pol = {
		.confirm_denials = cfg->confirm_denials,
		.confirm_window_ms = (uint64_t)cfg->confirm_window_s * 1000,
		.fail_closed_after_ms = (uint64_t)cfg->fail_closed_after_s * 1000,
		.min_gap_ms = lc_revconf_min_gap_ms(cfg->watch_interval_s, cfg->confirm_denials,
						    cfg->confirm_window_s),
	};
	struct lc_error e;
	char where[160];

	/* The path shortened so that the advice fits in the message. */
	if (line)
		snprintf(where, sizeof(where), "%.120s:%u", name, line);
	else
		snprintf(where, sizeof(where), "%.120s", name);
	if (span > window) {
		/* What would work: the largest interval, the smallest window. */
		uint64_t max_iv = window / (steps * (100 + cfg->jitter_pct));
		uint64_t min_win = (span + 99) / 100;
		char fix[160];

		if (max_iv >= 1 && min_win <= 604800)
			snprintf(fix, sizeof(fix),
				 "set watch_interval_s to at most %" PRIu64 " or confirm_window_s to at least %" PRIu64,
				 max_iv, min_win);
		else if (max_iv >= 1)
			snprintf(fix, sizeof(fix),
				 "set watch_interval_s to at most %" PRIu64 " (no confirm_window_s up to 604800 is enough)",
				 max_iv);
		else if (min_win <= 604800)
			snprintf(fix, sizeof(fix),
				 "set confirm_window_s to at least %" PRIu64 " (no watch_interval_s is short enough)",
				 min_win);
		else
			snprintf(fix, sizeof(fix),
				 "no watch_interval_s or confirm_window_s alone is enough: lower confirm_denials or jitter_pct");
		return bad("%s: [revocation] confirm_denials = %u, watch_interval_s = %u, jitter_pct = %u: the watcher's denials span up to %" PRIu64 ".%02" PRIu64 " s ((confirm_denials - 1) * watch_interval_s * (1 + jitter_pct/100)), more than confirm_window_s = %u: a revocation would never be confirmed; %s",
			   where, cfg->confirm_denials, cfg->watch_interval_s, cfg->jitter_pct,
			   span / 100, span % 100, cfg->confirm_window_s, fix);
	}
	if (lc_revconf_policy_check(&pol, &e) < 0)
		return bad("%s: [revocation]: %s", where, e.msg);
	return 0;
}

/* The line that set [registry] @key (0: not set). */
static unsigned int registry_line(const unsigned int *seen_line, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].section, "registry") && !strcmp(keys[i].name, key))
			return seen_line[i];
	return 0;
}

/*
 * [registry] as a whole: backend = etcd needs endpoints and ca, and cert
 * and key together; backend = file (the default) takes none of the etcd
 * keys (set, they would be a forgotten "backend = etcd": the agent would
 * run on its own file while the admin believes it is in the fleet).
 */
static int check_registry(const struct lc_config *cfg, const char *name,
			  const unsigned int *seen_line, struct lc_error *err)
{
	static const char *const etcd_keys[] = { "endpoints", "ca", "cert", "key", "prefix",
		"connect_timeout_ms", "timeout_ms", "watch_idle_s", "retry_max_ms",
		"backstop_interval_s", "probe_lease_s" };
	unsigned int lb = registry_line(seen_line, "backend");

	if (!cfg->registry_etcd) {
		for (size_t i = 0; i < sizeof(etcd_keys) / sizeof(etcd_keys[0]); i++) {
			unsigned int l = registry_line(seen_line, etcd_keys[i]);

			if (l)
				return bad("%s:%u: [registry] %s is set but backend is file%s: set backend = etcd to use etcd, or remove %s",
					   name, l, etcd_keys[i], lb ? "" : " (the default)",
					   etcd_keys[i]);
		}
		return 0;
	}
	if (!cfg->registry_endpoints[0])
		return bad("%s:%u: [registry] backend = etcd needs endpoints (the cluster's members, e.g. endpoints = https://10.0.0.1:2379,https://10.0.0.2:2379)",
			   name, lb);
	if (!cfg->registry_ca[0])
		return bad("%s:%u: [registry] backend = etcd needs ca (the PEM CA that signed the members' certificates)",
			   name, lb);
	if (!cfg->registry_cert[0] != !cfg->registry_key[0])
		return bad("%s:%u: [registry] cert and key go together: %s is set, %s is not",
			   name, registry_line(seen_line, cfg->registry_cert[0] ? "cert" : "key"),
			   cfg->registry_cert[0] ? "cert" : "key", cfg->registry_cert[0] ? "key" : "cert");
	return 0;
}

int lc_config_parse(struct lc_config *cfg, const char *text, size_t len, const char *name,
		    struct lc_error *err)
{
	unsigned int seen_line[NKEYS] = { 0 };
	const char *p = text, *end = text + len;
	char section[32] = "";
	bool have_section = false;
	unsigned int line = 0;
	int r;

	if (!name)
		name = "config";
	if (memchr(text, '\0', len))
		return bad("%s: contains a NUL byte: not a text file", name);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *b = p, *e = nl ? nl : end, *eq;
		char keyname[64], value[LC_CONFIG_PATH_MAX + 1];
		const struct key *k = NULL;
		size_t kl, vl;
		size_t i;

		p = nl ? nl + 1 : end;
		line++;
		trim(&b, &e);
		if (b == e || *b == '#' || *b == ';')
			continue;
		if (*b == '[') {
			if (e[-1] != ']' || e - b < 3)
				return bad("%s:%u: malformed section header: expected [name]", name, line);
			b++;
			e--;
			trim(&b, &e);
			if (e - b < 1 || (size_t)(e - b) >= sizeof(section))
				goto unknown_section;
			memcpy(section, b, (size_t)(e - b));
			section[e - b] = '\0';
			for (i = 0; i < NKEYS; i++)
				if (!strcmp(keys[i].section, section))
					break;
			if (i == NKEYS)
				goto unknown_section;
			have_section = true;
			continue;
unknown_section: {
			char known[256];
			size_t o = 0;

			known[0] = '\0';
			for (size_t j = 0; j < NKEYS; j++)
				if (!j || strcmp(keys[j].section, keys[j - 1].section))
					o += (size_t)snprintf(known + o, sizeof(known) - o, "%s[%s]",
							      o ? ", " : "", keys[j].section);
			return bad("%s:%u: unknown section [%.*s]: expected one of %s",
				   name, line, (int)(e - b > 32 ? 32 : e - b), b, known);
		}
		}
		eq = memchr(b, '=', (size_t)(e - b));
		if (!eq)
			return bad("%s:%u: expected \"key = value\", a [section] or a # comment", name,
				   line);
		{
			const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;

			trim(&kb, &ke);
			/* "value   # comment": a '#' after a blank ends the value. */
			for (const char *q = vb; q < ve; q++)
				if (*q == '#' && q > vb && (q[-1] == ' ' || q[-1] == '\t')) {
					ve = q;
					break;
				}
			trim(&vb, &ve);
			kl = (size_t)(ke - kb);
			vl = (size_t)(ve - vb);
			if (!kl)
				return bad("%s:%u: a key name is missing before '='", name, line);
			if (kl >= sizeof(keyname))
				return bad("%s:%u: unknown key \"%.32s...\"", name, line, kb);
			memcpy(keyname, kb, kl);
			keyname[kl] = '\0';
			if (!have_section)
				return bad("%s:%u: key \"%s\" before any [section]", name, line, keyname);
			/* Only [agent] crypttab may be empty: no crypttab(5),
			 * no name reserved by it (lakecrypt-agent(8)). */
			if (!vl && (strcmp(section, "agent") || strcmp(keyname, "crypttab")))
				return bad("%s:%u: %s has an empty value", name, line, keyname);
			if (vl >= sizeof(value))
				return bad("%s:%u: the value of %s is too long", name, line, keyname);
			memcpy(value, vb, vl);
			value[vl] = '\0';
		}
		for (i = 0; i < NKEYS; i++)
			if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, keyname)) {
				k = &keys[i];
				break;
			}
		if (!k) {
			char known[512];
			size_t o = 0;

			known[0] = '\0';
			for (size_t j = 0; j < NKEYS; j++)
				if (!strcmp(keys[j].section, section))
					o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s",
							      o ? ", " : "", keys[j].name);
			return bad("%s:%u: unknown key \"%s\" in [%s]: expected one of %s", name, line,
				   keyname, section, known);
		}
		if (seen_line[i])
			return bad("%s:%u: %s is set twice in [%s] (first on line %u)", name, line,
				   keyname, section, seen_line[i]);
		seen_line[i] = line;
		if (!vl) {	/* [agent] crypttab =: none */
			cfg->crypttab[0] = '\0';
			continue;
		}
		r = set_value(cfg, k, value, name, line, err);
		if (r < 0)
			return r;
	}

	if (cfg->retry_max_delay_ms < cfg->retry_base_delay_ms) {
		unsigned int l = 0;

		for (size_t i = 0; i < NKEYS; i++)
			if (!strcmp(keys[i].name, "retry_max_delay_ms") ||
			    !strcmp(keys[i].name, "retry_base_delay_ms"))
				l = seen_line[i] > l ? seen_line[i] : l;
		return bad("%s:%u: retry_max_delay_ms (%u) is less than retry_base_delay_ms (%u)", name,
			   l, cfg->retry_max_delay_ms, cfg->retry_base_delay_ms);
	}
	r = check_registry(cfg, name, seen_line, err);
	if (r < 0)
		return r;
	{
		unsigned int l = 0;

		for (size_t i = 0; i < NKEYS; i++)
			if (!strcmp(keys[i].section, "revocation") &&
			    (!strcmp(keys[i].name, "watch_interval_s") ||
			     !strcmp(keys[i].name, "jitter_pct") ||
			     !strcmp(keys[i].name, "confirm_denials") ||
			     !strcmp(keys[i].name, "confirm_window_s")))
				l = seen_line[i] > l ? seen_line[i] : l;
		return check_revocation(cfg, name, l, err);
	}
}

int lc_config_load(struct lc_config *cfg, const char *path, struct lc_error *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	lc_config_defaults(cfg);
	if (!path)
		path = LC_CONFIG_DEFAULT_PATH;
	/* O_NONBLOCK: a FIFO named as the config must not block the open (it
	 * is refused below as not a regular file); no effect on files. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot open config file %s: %s", path,
			      strerror(errno));
	if (fstat(fd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot stat %s: %s", path,
			      strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "config file %s must be a regular file of at most %d bytes", path,
			      CONFIG_FILE_MAX);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lc_err(err, -errno, LC_ERRC_MISCONFIG, "reading %s failed: %s", path,
				      strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return lc_config_parse(cfg, buf, len, path, err);
}
