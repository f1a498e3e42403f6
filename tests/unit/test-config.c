// SPDX-License-Identifier: GPL-2.0
/* Agent configuration file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static int parse(struct lc_config *c, const char *text, struct lc_error *e)
{
	lc_config_defaults(c);
	return lc_config_parse(c, text, strlen(text), "agent.conf", e);
}

static void test_defaults(void **state)
{
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(parse(&c, "", &e), 0);
	assert_string_equal(c.socket_path, "/run/lakecrypt/agent.sock");
	assert_int_equal(c.socket_mode, 0660);
	assert_string_equal(c.state_dir, "/var/lib/lakecrypt");
	assert_string_equal(c.audit_log, "/var/log/lakecrypt/audit.log");
	assert_true(c.audit_fsync);
	assert_string_equal(c.admin_group, "lakecrypt-admin");
	assert_string_equal(c.operator_group, "lakecrypt");
	assert_false(c.log_syslog);
	assert_int_equal(c.log_level, LC_LOG_INFO);
	assert_int_equal(c.retry_attempts, 5);
	assert_int_equal(c.retry_base_delay_ms, 100);
	assert_int_equal(c.retry_max_delay_ms, 5000);
	assert_int_equal(c.deadline_ms, 30000);
	assert_int_equal(c.watch_interval_s, 60);
	assert_string_equal(c.cipher, "aes-xts-plain64");
	assert_int_equal(c.key_size, 64);
	assert_int_equal(c.segment_sectors, 2048);
}

static void test_full(void **state)
{
	static const char text[] =
		"# lakecrypt agent\n"
		"; another comment style\n"
		"\n"
		"[agent]\n"
		"socket = /run/lc/a.sock\n"
		"socket_mode=0600\n"
		"  state_dir\t=\t/srv/lakecrypt state  \n"
		"audit_log = /var/log/lc.log\r\n"
		"audit_fsync = no\n"
		"admin_group = sec-admins\n"
		"operator_group = dbops\n"
		"log = syslog\n"
		"log_level = debug\n"
		"[ kms ]\n"
		"retry_attempts = 3\n"
		"retry_base_delay_ms = 50\n"
		"retry_max_delay_ms = 50\n"
		"deadline_ms = 10000\n"
		"[revocation]\n"
		"watch_interval_s = 5\n"
		"[volume]\n"
		"cipher = xchacha12,aes-adiantum-plain64\n"
		"key_size = 32\n"
		"segment_size = 64k";
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	if (parse(&c, text, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(c.socket_path, "/run/lc/a.sock");
	assert_int_equal(c.socket_mode, 0600);
	assert_string_equal(c.state_dir, "/srv/lakecrypt state");
	assert_string_equal(c.audit_log, "/var/log/lc.log");
	assert_false(c.audit_fsync);
	assert_string_equal(c.admin_group, "sec-admins");
	assert_string_equal(c.operator_group, "dbops");
	assert_true(c.log_syslog);
	assert_int_equal(c.log_level, LC_LOG_DEBUG);
	assert_int_equal(c.retry_attempts, 3);
	assert_int_equal(c.retry_base_delay_ms, 50);
	assert_int_equal(c.retry_max_delay_ms, 50);
	assert_int_equal(c.deadline_ms, 10000);
	assert_int_equal(c.watch_interval_s, 5);
	assert_string_equal(c.cipher, "xchacha12,aes-adiantum-plain64");
	assert_int_equal(c.key_size, 32);
	assert_int_equal(c.segment_sectors, 128);
}

static void test_sizes(void **state)
{
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(parse(&c, "[volume]\nsegment_size = 4096\n", &e), 0);
	assert_int_equal(c.segment_sectors, 8);
	assert_int_equal(parse(&c, "[volume]\nsegment_size = 1G\n", &e), 0);
	assert_int_equal(c.segment_sectors, 2097152);
	assert_int_equal(parse(&c, "[volume]\nsegment_size = 1024G\n", &e), 0);
	assert_int_equal(c.segment_sectors, 1ULL << 31);
}

struct bad {
	const char *text, *needle;
};

static void test_bad(void **state)
{
	static const struct bad bad[] = {
		{ "socket = /x\n", "agent.conf:1: key \"socket\" before any [section]" },
		{ "[agent]\nsockt = /x\n", "agent.conf:2: unknown key \"sockt\" in [agent]: expected one of socket, socket_mode" },
		{ "[agent]\n\n# c\nsocket = /a\nsocket = /b\n", "agent.conf:5: socket is set twice in [agent] (first on line 4)" },
		{ "[agnt]\n", "agent.conf:1: unknown section [agnt]" },
		{ "[agent\n", "agent.conf:1: malformed section header" },
		{ "[]\n", "agent.conf:1: malformed section header" },
		{ "[agent]\nsocket\n", "agent.conf:2: expected \"key = value\"" },
		{ "[agent]\n= /x\n", "agent.conf:2: a key name is missing" },
		{ "[agent]\nsocket =\n", "agent.conf:2: socket has an empty value" },
		{ "[agent]\nlakecrypttab =\n", "agent.conf:2: lakecrypttab has an empty value" },
		{ "[agent]\ncrypttab = /a\ncrypttab =\n", "agent.conf:3: crypttab is set twice" },
		{ "[kms]\ncrypttab =\n", "agent.conf:2: crypttab has an empty value" },
		{ "[agent]\nsocket = relative.sock\n", "agent.conf:2: socket = \"relative.sock\" is not an absolute path" },
		{ "[agent]\nsocket = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n", "agent.conf:2: socket is too long" },
		{ "[agent]\nsocket_mode = 0999\n", "agent.conf:2: socket_mode = \"0999\" is not an octal" },
		{ "[agent]\nsocket_mode = 10000\n", "is not an octal" },
		{ "[agent]\naudit_fsync = maybe\n", "agent.conf:2: audit_fsync = \"maybe\" is not a boolean" },
		{ "[agent]\nadmin_group = lake crypt\n", "agent.conf:2: admin_group = \"lake crypt\" is not a group name" },
		{ "[agent]\nlog = journal\n", "agent.conf:2: log = \"journal\": expected stderr or syslog" },
		{ "[agent]\nlog_level = verbose\n", "agent.conf:2: log_level = \"verbose\"" },
		{ "[kms]\nretry_attempts = 0\n", "agent.conf:2: retry_attempts = \"0\" is not usable: expected a whole number from 1 to 100" },
		{ "[kms]\nretry_attempts = 101\n", "from 1 to 100" },
		{ "[kms]\nretry_attempts = -1\n", "retry_attempts = \"-1\"" },
		{ "[kms]\nretry_attempts = 3#three\n", "retry_attempts = \"3#three\"" },
		{ "[kms]\ndeadline_ms = 99999999999999999999999\n", "deadline_ms" },
		{ "[kms]\nretry_base_delay_ms = 500\n\nretry_max_delay_ms = 100\n", "agent.conf:4: retry_max_delay_ms (100) is less than retry_base_delay_ms (500)" },
		{ "[kms]\nretry_base_delay_ms = 6000\n", "agent.conf:2: retry_max_delay_ms (5000) is less than" },
		{ "[revocation]\nwatch_interval_s = 0\n", "watch_interval_s" },
		{ "[volume]\ncipher = aes xts\n", "cipher = \"aes xts\" must be a single word" },
		{ "[volume]\nkey_size = 129\n", "key_size = \"129\"" },
		{ "[volume]\nsegment_size = 3000\n", "agent.conf:2: segment_size = \"3000\": expected a power of two" },
		{ "[volume]\nsegment_size = 2K\n", "segment_size" },
		{ "[volume]\nsegment_size = 2048G\n", "segment_size" },
		{ "[volume]\nsegment_size = M\n", "segment_size" },
		{ "[volume]\nsegment_size = 1T\n", "segment_size" },
		{ "[kms]\nsocket = /x\n", "unknown key \"socket\" in [kms]: expected one of retry_attempts" },
		{ "[agent]\nstate_dir = /a\x01" "b\n", "control character" },
		{ "[aws-kms]\nendpoint = kms.eu-west-1.amazonaws.com\n", "agent.conf:2: endpoint = \"kms.eu-west-1.amazonaws.com\" is not a URL" },
		{ "[aws-kms]\nca_bundle = ca.pem\n", "ca_bundle = \"ca.pem\" is not an absolute path" },
		{ "[aws-kms]\nimds_timeout_ms = 0\n", "imds_timeout_ms = \"0\" is not usable" },
		{ "[aws-kms]\nsecret_access_key = x\n", "unknown key \"secret_access_key\" in [aws-kms]: expected one of endpoint" },
	};
	struct lc_config c;
	struct lc_error e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		if (parse(&c, bad[i].text, &e) != -EINVAL)
			fail_msg("accepted: %s", bad[i].text);
		assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
		if (!strstr(e.msg, bad[i].needle))
			fail_msg("config %zu: \"%s\" lacks \"%s\"", i, e.msg, bad[i].needle);
	}
	memset(&e, 0, sizeof(e));
	lc_config_defaults(&c);
	assert_int_equal(lc_config_parse(&c, "[agent]\0x", 9, "f", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "NUL"));
}

/* `crypttab =` empty, as lakecrypt-agent(8) tells a host without dm-crypt
 * volumes: no crypttab, not a refused configuration (issue 11 review
 * rev11a, finding 2); the only key that may be empty. */
static void test_crypttab_empty(void **state)
{
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(parse(&c, "[agent]\ncrypttab =\n", &e), 0);
	assert_string_equal(c.crypttab, "");
	assert_int_equal(parse(&c, "[agent]\ncrypttab =   # none\n", &e), 0);
	assert_string_equal(c.crypttab, "");
	assert_int_equal(parse(&c, "[agent]\n", &e), 0);
	assert_string_equal(c.crypttab, "/etc/crypttab");
}

static void test_aws_kms(void **state)
{
	static const char text[] =
		"[aws-kms]\n"
		"endpoint = https://kms-fips.eu-west-1.amazonaws.com\n"
		"region = eu-west-1\n"
		"ca_bundle = /etc/lakecrypt/ca.pem\n"
		"credentials = profile\n"
		"profile = lakecrypt\n"
		"imds_endpoint = http://[fd00:ec2::254]\n"
		"connect_timeout_ms = 2500\n"
		"imds_timeout_ms = 1000\n";
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(parse(&c, "", &e), 0);
	assert_string_equal(c.aws_endpoint, "");
	assert_string_equal(c.aws_credentials, "");
	assert_int_equal(c.aws_imds_timeout_ms, 0);
	assert_int_equal(parse(&c, text, &e), 0);
	assert_string_equal(c.aws_endpoint, "https://kms-fips.eu-west-1.amazonaws.com");
	assert_string_equal(c.aws_region, "eu-west-1");
	assert_string_equal(c.aws_ca_bundle, "/etc/lakecrypt/ca.pem");
	assert_string_equal(c.aws_credentials, "profile");
	assert_string_equal(c.aws_profile, "lakecrypt");
	assert_string_equal(c.aws_imds_endpoint, "http://[fd00:ec2::254]");
	assert_int_equal(c.aws_connect_timeout_ms, 2500);
	assert_int_equal(c.aws_imds_timeout_ms, 1000);
}

static void test_gcp_kms(void **state)
{
	static const char text[] =
		"[gcp-kms]\n"
		"endpoint = https://cloudkms.europe-west1.rep.googleapis.com\n"
		"ca_bundle = /etc/lakecrypt/ca.pem\n"
		"credentials = service-account\n"
		"key_file = /etc/lakecrypt/gcp-sa.json\n"
		"metadata_endpoint = http://169.254.169.254\n"
		"connect_timeout_ms = 2500\n"
		"metadata_timeout_ms = 1000\n";
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(parse(&c, "", &e), 0);
	assert_string_equal(c.gcp_endpoint, "");
	assert_string_equal(c.gcp_key_file, "");
	assert_int_equal(c.gcp_metadata_timeout_ms, 0);
	assert_int_equal(parse(&c, text, &e), 0);
	assert_string_equal(c.gcp_endpoint, "https://cloudkms.europe-west1.rep.googleapis.com");
	assert_string_equal(c.gcp_ca_bundle, "/etc/lakecrypt/ca.pem");
	assert_string_equal(c.gcp_credentials, "service-account");
	assert_string_equal(c.gcp_key_file, "/etc/lakecrypt/gcp-sa.json");
	assert_string_equal(c.gcp_metadata_endpoint, "http://169.254.169.254");
	assert_int_equal(c.gcp_connect_timeout_ms, 2500);
	assert_int_equal(c.gcp_metadata_timeout_ms, 1000);
	assert_int_equal(parse(&c, "[gcp-kms]\nkey_file = sa.json\n", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not an absolute path"));
	assert_int_equal(parse(&c, "[gcp-kms]\nprivate_key = x\n", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unknown key \"private_key\" in [gcp-kms]"));
	assert_int_equal(parse(&c, "[gcp-kms]\nmetadata_timeout_ms = 0\n", &e), -EINVAL);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/lc-config-XXXXXX";
	const char *text = "[revocation]\nwatch_interval_s = 7\n";
	struct lc_config c;
	struct lc_error e = { 0 };
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(lc_config_load(&c, path, &e), 0);
	assert_int_equal(c.watch_interval_s, 7);
	assert_int_equal(c.retry_attempts, 5);
	unlink(path);
	assert_int_equal(lc_config_load(&c, path, &e), -ENOENT);
	assert_non_null(strstr(e.msg, path));
	assert_int_equal(c.watch_interval_s, 60);	/* defaults on a missing file */
	assert_int_equal(lc_config_load(&c, "/tmp", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "regular file"));
}

/* The loop's limits, the revoke wait and the test stall. */
/* The comments of the documented example stay comments (issue 6 review:
 * "socket = /tmp/x.sock # comment" made a socket of that whole name). */
static void test_inline_comments(void **state)
{
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(parse(&c, "[agent]\nsocket = /tmp/x.sock   # control socket\n"
				   "state_dir = /srv/a#b\nmax_clients = 64\t# connections\n", &e), 0);
	assert_string_equal(c.socket_path, "/tmp/x.sock");
	assert_string_equal(c.state_dir, "/srv/a#b");	/* no blank before it: kept */
	assert_int_equal(c.max_clients, 64);
	assert_int_equal(parse(&c, "[agent]\nsocket = # nothing\n", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "empty value"));
}

static void test_limits(void **state)
{
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	lc_config_defaults(&c);
	assert_int_equal(c.max_clients, 64);
	assert_int_equal(c.max_clients_per_uid, 16);
	assert_int_equal(c.idle_timeout_s, 60);
	assert_int_equal(c.send_timeout_s, 10);
	assert_int_equal(c.revoke_wait_ms, 5000);
	assert_string_equal(c.test_kms_stall_file, "");
	assert_int_equal(parse(&c, "[agent]\nmax_clients = 10\nmax_clients_per_uid = 2\n"
				   "idle_timeout_s = 5\nsend_timeout_s = 3\n"
				   "[revocation]\nrevoke_wait_ms = 250\n"
				   "[test]\nkms_stall_file = /tmp/stall\n", &e), 0);
	assert_int_equal(c.max_clients, 10);
	assert_int_equal(c.max_clients_per_uid, 2);
	assert_int_equal(c.idle_timeout_s, 5);
	assert_int_equal(c.send_timeout_s, 3);
	assert_int_equal(c.revoke_wait_ms, 250);
	assert_string_equal(c.test_kms_stall_file, "/tmp/stall");
	lc_config_defaults(&c);
	assert_int_equal(parse(&c, "[agent]\nmax_clients = 0\n", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "max_clients"));
	assert_int_equal(parse(&c, "[agent]\nidle_timeout_s = 90000\n", &e), -EINVAL);
	/* the wait for an open of the same volume in flight */
	lc_config_defaults(&c);
	assert_int_equal(c.busy_wait_ms, 30000);
	assert_int_equal(parse(&c, "[agent]\nbusy_wait_ms = 0\n", &e), 0);
	assert_int_equal(c.busy_wait_ms, 0);
	assert_int_equal(parse(&c, "[agent]\nbusy_wait_ms = 600001\n", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "busy_wait_ms"));
	assert_int_equal(parse(&c, "[test]\nkms_stall_file = relative\n", &e), -EINVAL);
	assert_int_equal(parse(&c, "[test]\nsegrekey_pause_file = /tmp/p\n", &e), 0);
	assert_string_equal(c.test_segrekey_pause_file, "/tmp/p");
	assert_int_equal(parse(&c, "[test]\nsegrekey_pause_file = p\n", &e), -EINVAL);
	assert_int_equal(parse(&c, "[test]\nregistry_pause_file = /tmp/rp\n", &e), 0);
	assert_string_equal(c.test_registry_pause_file, "/tmp/rp");
	assert_int_equal(parse(&c, "[test]\nregistry_pause_file = rp\n", &e), -EINVAL);
	assert_int_equal(parse(&c, "[agent]\nsegrekey_pause_file = /tmp/p\n", &e), -EINVAL);
}

/* The shipped example (tools/systemd/agent.conf.example) says its
 * uncommented values are the defaults: loaded, it equals them exactly.
 * (tests/system/check.sh parses it with each provider section too.) */
static void test_example_is_defaults(void **state)
{
	static struct lc_config c, d;
	struct lc_error e = { 0 };
	char path[4096];

	(void)state;
	snprintf(path, sizeof(path), "%s", __FILE__);
	*strrchr(path, '/') = '\0';
	strncat(path, "/../../tools/systemd/agent.conf.example", sizeof(path) - strlen(path) - 1);
	if (lc_config_load(&c, path, &e) < 0)
		fail_msg("%s", e.msg);
	lc_config_defaults(&d);
	assert_memory_equal(&c, &d, sizeof(c));
}

/* [registry]: file by default and needing nothing; etcd with its keys;
 * each bad value, and the combinations that cannot work, refused with the
 * file, the line and what would do. */
static void test_registry(void **state)
{
	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "[registry]\nbackend = consul\n",
		  "agent.conf:2: backend = \"consul\": expected file or etcd" },
		{ "[registry]\nbackend = etcd\nca = /ca.pem\n",
		  "agent.conf:2: [registry] backend = etcd needs endpoints" },
		{ "[registry]\nbackend = etcd\nendpoints = https://a:2379\n",
		  "agent.conf:2: [registry] backend = etcd needs ca" },
		{ "[registry]\nbackend = etcd\nendpoints = https://a:2379\nca = /ca\ncert = /c\n",
		  "agent.conf:5: [registry] cert and key go together: cert is set, key is not" },
		{ "[registry]\nbackend = etcd\nendpoints = https://a:2379\nca = /ca\nkey = /k\n",
		  "agent.conf:5: [registry] cert and key go together: key is set, cert is not" },
		{ "[registry]\nendpoints = https://a:2379\n",
		  "agent.conf:2: [registry] endpoints is set but backend is file (the default): set backend = etcd to use etcd, or remove endpoints" },
		{ "[registry]\nbackend = file\nprefix = /x/\n",
		  "agent.conf:3: [registry] prefix is set but backend is file: set backend = etcd" },
		{ "[registry]\nendpoints = http://a:2379\n",
		  "agent.conf:2: endpoints: \"http://a:2379\" is not an etcd member: expected https://host[:port]" },
		{ "[registry]\nendpoints = https://a:2379/v3\n", "\"https://a:2379/v3\" is not an etcd member" },
		{ "[registry]\nendpoints = https://a:0\n", "\"https://a:0\" is not an etcd member" },
		{ "[registry]\nendpoints = https://a:65536\n", "\"https://a:65536\" is not an etcd member" },
		{ "[registry]\nendpoints = https://a:\n", "\"https://a:\" is not an etcd member" },
		{ "[registry]\nendpoints = https://:2379\n", "\"https://:2379\" is not an etcd member" },
		{ "[registry]\nendpoints = https://u@a:2379\n", "\"https://u@a:2379\" is not an etcd member" },
		{ "[registry]\nendpoints = https://a,,https://b\n", "\"\" is not an etcd member" },
		{ "[registry]\nendpoints = https://a,\n", "endpoints ends with a comma" },
		{ "[registry]\nendpoints = https://[::1:2379\n", "is not an etcd member" },
		{ "[registry]\nendpoints = https://a,https://b,https://c,https://d,https://e,https://f,https://g,https://h,https://i,https://j,https://k,https://l,https://m,https://n,https://o,https://p,https://q\n",
		  "endpoints: more than 16 members" },
		{ "[registry]\nprefix = lakecrypt/\n", "prefix = \"lakecrypt/\": expected a key prefix that starts and ends with '/'" },
		{ "[registry]\nprefix = /lakecrypt\n", "expected a key prefix that starts and ends with '/'" },
		{ "[registry]\nprefix = /lake crypt/\n", "expected a key prefix" },
		{ "[registry]\nca = relative.pem\n", "ca = \"relative.pem\" is not an absolute path" },
		{ "[registry]\ntimeout_ms = 0\n", "timeout_ms = \"0\" is not usable: expected a whole number from 1 to 600000" },
		{ "[registry]\nwatch_idle_s = 86401\n", "watch_idle_s = \"86401\" is not usable" },
		{ "[registry]\nretry_max_ms = 99\n", "retry_max_ms = \"99\" is not usable: expected a whole number from 100" },
		{ "[registry]\nbackend = etcd\nbackend = file\n", "backend is set twice in [registry]" },
		{ "[registry]\nserver = x\n", "unknown key \"server\" in [registry]: expected one of backend, endpoints, ca, cert, key, prefix" },
		{ "[registry]\nbackstop_interval_s = 60\n",
		  "agent.conf:2: [registry] backstop_interval_s is set but backend is file (the default)" },
		{ "[registry]\nprobe_lease_s = 10\n", "[registry] probe_lease_s is set but backend is file" },
		{ "[registry]\nprobe_lease_s = 1\n", "probe_lease_s = \"1\" is not usable: expected a whole number from 2 to 3600" },
		{ "[registry]\nbackstop_interval_s = 604801\n", "backstop_interval_s = \"604801\" is not usable" },
		{ "[test]\nwatch_keyconfig = a b\n", "watch_keyconfig = \"a b\"" },
	};
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	/* The default: the file, nothing else needed. */
	assert_int_equal(parse(&c, "", &e), 0);
	assert_false(c.registry_etcd);
	assert_string_equal(c.registry_prefix, "/lakecrypt/");
	assert_int_equal(c.registry_connect_timeout_ms, 2000);
	assert_int_equal(c.registry_timeout_ms, 5000);
	assert_int_equal(c.registry_watch_idle_s, 660);
	assert_int_equal(c.registry_retry_max_ms, 10000);
	assert_int_equal(c.registry_backstop_interval_s, 900);
	assert_int_equal(c.registry_probe_lease_s, 30);
	assert_int_equal(parse(&c, "[registry]\nbackend = file\n", &e), 0);
	assert_false(c.registry_etcd);
	assert_int_equal(parse(&c, "[registry]\nbackend = etcd\n"
				   "endpoints = https://10.0.0.1:2379, https://etcd-2.example:2379,https://[::1]:2379,https://h\n"
				   "ca = /etc/lc/ca.pem\ncert = /etc/lc/c.pem\nkey = /etc/lc/c.key\n"
				   "prefix = /fleet/eu-1/\nconnect_timeout_ms = 500\ntimeout_ms = 1500\n"
				   "watch_idle_s = 30\nretry_max_ms = 2000\n"
				   "backstop_interval_s = 0\nprobe_lease_s = 12\n", &e), 0);
	assert_true(c.registry_etcd);
	assert_int_equal(c.registry_backstop_interval_s, 0);	/* no sharing */
	assert_int_equal(c.registry_probe_lease_s, 12);
	assert_string_equal(c.registry_endpoints,
			    "https://10.0.0.1:2379, https://etcd-2.example:2379,https://[::1]:2379,https://h");
	assert_string_equal(c.registry_ca, "/etc/lc/ca.pem");
	assert_string_equal(c.registry_cert, "/etc/lc/c.pem");
	assert_string_equal(c.registry_key, "/etc/lc/c.key");
	assert_string_equal(c.registry_prefix, "/fleet/eu-1/");
	assert_int_equal(c.registry_connect_timeout_ms, 500);
	assert_int_equal(c.registry_timeout_ms, 1500);
	assert_int_equal(c.registry_watch_idle_s, 30);
	assert_int_equal(c.registry_retry_max_ms, 2000);
	/* Without a client certificate (a cluster without --client-cert-auth). */
	assert_int_equal(parse(&c, "[registry]\nbackend = etcd\nendpoints = https://a:2379\nca = /ca\n",
			       &e), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		if (parse(&c, bad[i].text, &e) != -EINVAL || e.cls != LC_ERRC_MISCONFIG ||
		    !strstr(e.msg, bad[i].needle))
			fail_msg("case %zu (%s): got \"%s\", wanted \"%s\"", i, bad[i].text, e.msg,
				 bad[i].needle);
	}
}

/* [revocation] as a whole: the watcher's own denials must be able to
 * confirm.  Denials from probes watch_interval_s apart, each interval up
 * to jitter_pct longer, span up to (confirm_denials - 1) *
 * watch_interval_s * (1 + jitter_pct/100): more than confirm_window_s and
 * a disabled key is never revoked (hostile review R5: 600 s ticks with
 * the default 300 s window left denials at 1 for two hours). */
static void test_revocation_watch_fits(void **state)
{
	static const struct {
		const char *text, *needle;
	} bad[] = {
		/* R5: watch_interval_s = 600, the defaults otherwise */
		{ "[revocation]\nwatch_interval_s = 600\n",
		  "agent.conf:2: [revocation] confirm_denials = 2, watch_interval_s = 600, jitter_pct = 10: the watcher's denials span up to 660.00 s ((confirm_denials - 1) * watch_interval_s * (1 + jitter_pct/100)), more than confirm_window_s = 300: a revocation would never be confirmed; set watch_interval_s to at most 272 or confirm_window_s to at least 660" },
		/* R5b: confirm_denials = 7, the defaults otherwise (60 s +- 10 %) */
		{ "[revocation]\nconfirm_denials = 7\n",
		  "confirm_denials = 7, watch_interval_s = 60, jitter_pct = 10: the watcher's denials span up to 396.00 s" },
		{ "[revocation]\nconfirm_denials = 7\n",
		  "set watch_interval_s to at most 45 or confirm_window_s to at least 396" },
		/* R5b as reproduced, without jitter: 6 * 60 s > 300 s */
		{ "[revocation]\nconfirm_denials = 7\njitter_pct = 0\n",
		  "agent.conf:3: [revocation] confirm_denials = 7, watch_interval_s = 60, jitter_pct = 0: the watcher's denials span up to 360.00 s" },
		/* one past the boundaries accepted below */
		{ "[revocation]\nwatch_interval_s = 250\njitter_pct = 21\n",
		  "span up to 302.50 s" },
		{ "[revocation]\nconfirm_denials = 6\njitter_pct = 0\nwatch_interval_s = 61\n",
		  "agent.conf:4: [revocation] confirm_denials = 6, watch_interval_s = 61, jitter_pct = 0: the watcher's denials span up to 305.00 s" },
		{ "[revocation]\nwatch_interval_s = 3600\n", "confirm_window_s to at least 3960" },
		/* no interval is short enough */
		{ "[revocation]\nconfirm_denials = 16\nconfirm_window_s = 10\n",
		  "set confirm_window_s to at least 990 (no watch_interval_s is short enough)" },
		/* no window is long enough */
		{ "[revocation]\nconfirm_denials = 16\nwatch_interval_s = 86400\nconfirm_window_s = 3600\n",
		  "set watch_interval_s to at most 218 (no confirm_window_s up to 604800 is enough)" },
		/* neither */
		{ "[revocation]\nconfirm_denials = 16\njitter_pct = 50\nwatch_interval_s = 86400\nconfirm_window_s = 10\n",
		  "no watch_interval_s or confirm_window_s alone is enough: lower confirm_denials or jitter_pct" },
		/* the keys may come in any order, and the line is the last one's */
		{ "[revocation]\nconfirm_window_s = 100\n\n[agent]\nlog = stderr\n[revocation]\nwatch_interval_s = 120\n",
		  "agent.conf:7: [revocation]" },
	};
	static const char *good[] = {
		"",						/* the defaults: 66 s <= 300 s */
		"[revocation]\nwatch_interval_s = 272\n",	/* 299.2 s */
		"[revocation]\nwatch_interval_s = 250\njitter_pct = 20\n",	/* exactly 300 s */
		"[revocation]\nconfirm_denials = 6\njitter_pct = 0\n",	/* exactly 5 * 60 s */
		"[revocation]\nconfirm_denials = 7\nwatch_interval_s = 45\n",
		"[revocation]\nconfirm_denials = 7\nconfirm_window_s = 396\n",
		"[revocation]\nwatch_interval_s = 3600\nconfirm_window_s = 3960\n",
		/* one denial kills: nothing to fit */
		"[revocation]\nconfirm_denials = 1\nwatch_interval_s = 86400\nconfirm_window_s = 1\njitter_pct = 50\n",
		/* the largest settings that fit */
		"[revocation]\nconfirm_denials = 16\njitter_pct = 50\nwatch_interval_s = 26880\nconfirm_window_s = 604800\n",
	};
	struct lc_config c;
	struct lc_error e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		if (parse(&c, bad[i].text, &e) != -EINVAL)
			fail_msg("accepted: %s", bad[i].text);
		assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
		if (!strstr(e.msg, bad[i].needle))
			fail_msg("config %zu: \"%s\" lacks \"%s\"", i, e.msg, bad[i].needle);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&e, 0, sizeof(e));
		if (parse(&c, good[i], &e))
			fail_msg("refused: %s: %s", good[i], e.msg);
	}
}

/* Over a grid of settings: refused exactly when the watcher's span
 * exceeds the window, and the advice is exact: the interval it names
 * works and one more second does not; so for the window. */
static void test_revocation_advice_exact(void **state)
{
	static const unsigned int dn[] = { 1, 2, 3, 7, 16 }, jp[] = { 0, 10, 33, 50 },
		iv[] = { 1, 2, 7, 60, 272, 600, 3600, 86400 },
		win[] = { 1, 10, 300, 3960, 604800 };
	struct lc_config c;
	struct lc_error e;
	char text[256];
	unsigned int refused = 0, n = 0;

	(void)state;
	for (size_t a = 0; a < 5; a++)
		for (size_t b = 0; b < 4; b++)
			for (size_t d = 0; d < 8; d++)
				for (size_t w = 0; w < 5; w++) {
					uint64_t span = (uint64_t)(dn[a] - 1) * iv[d] * (100 + jp[b]);
					bool fits = span <= (uint64_t)win[w] * 100;
					unsigned long x;
					const char *p;
					int r;

					snprintf(text, sizeof(text),
						 "[revocation]\nconfirm_denials = %u\njitter_pct = %u\nwatch_interval_s = %u\nconfirm_window_s = %u\n",
						 dn[a], jp[b], iv[d], win[w]);
					memset(&e, 0, sizeof(e));
					r = parse(&c, text, &e);
					n++;
					if (fits) {
						if (r)
							fail_msg("refused: %s: %s", text, e.msg);
						continue;
					}
					refused++;
					if (r != -EINVAL)
						fail_msg("accepted: %s", text);
					if ((p = strstr(e.msg, "watch_interval_s to at most "))) {
						x = strtoul(p + 28, NULL, 10);
						snprintf(text, sizeof(text),
							 "[revocation]\nconfirm_denials = %u\njitter_pct = %u\nwatch_interval_s = %lu\nconfirm_window_s = %u\n",
							 dn[a], jp[b], x, win[w]);
						if (parse(&c, text, &e))
							fail_msg("advice refused: %s: %s", text, e.msg);
						snprintf(text, sizeof(text),
							 "[revocation]\nconfirm_denials = %u\njitter_pct = %u\nwatch_interval_s = %lu\nconfirm_window_s = %u\n",
							 dn[a], jp[b], x + 1, win[w]);
						assert_int_equal(parse(&c, text, &e), -EINVAL);
					} else {
						assert_true(win[w] * 100ULL < (uint64_t)(dn[a] - 1) * (100 + jp[b]));
					}
					snprintf(text, sizeof(text),
						 "[revocation]\nconfirm_denials = %u\njitter_pct = %u\nwatch_interval_s = %u\nconfirm_window_s = %u\n",
						 dn[a], jp[b], iv[d], win[w]);
					assert_int_equal(parse(&c, text, &e), -EINVAL);
					if ((p = strstr(e.msg, "confirm_window_s to at least "))) {
						x = strtoul(p + 29, NULL, 10);
						snprintf(text, sizeof(text),
							 "[revocation]\nconfirm_denials = %u\njitter_pct = %u\nwatch_interval_s = %u\nconfirm_window_s = %lu\n",
							 dn[a], jp[b], iv[d], x);
						if (parse(&c, text, &e))
							fail_msg("advice refused: %s: %s", text, e.msg);
						snprintf(text, sizeof(text),
							 "[revocation]\nconfirm_denials = %u\njitter_pct = %u\nwatch_interval_s = %u\nconfirm_window_s = %lu\n",
							 dn[a], jp[b], iv[d], x - 1);
						assert_int_equal(parse(&c, text, &e), -EINVAL);
					} else {
						assert_true(span > 604800ULL * 100);
					}
				}
	/* the grid has both kinds */
	assert_true(refused > 50 && refused < n - 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_crypttab_empty),
		cmocka_unit_test(test_revocation_watch_fits),
		cmocka_unit_test(test_revocation_advice_exact),
		cmocka_unit_test(test_aws_kms),
		cmocka_unit_test(test_gcp_kms),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_inline_comments),
		cmocka_unit_test(test_example_is_defaults),
		cmocka_unit_test(test_registry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
