// SPDX-License-Identifier: GPL-2.0
/*
 * lakecryptctl: argument parsing, size and number parsing, reply checking,
 * exit codes, human and JSON rendering, and the local table/dump commands.
 * The CLI's units (all but main.c) are compiled into this test directly.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../tools/lakecryptctl/ctl-args.c"
#include "../../tools/lakecryptctl/ctl-output.c"
#include "../../tools/lakecryptctl/ctl-local.c"
#include "../../tools/lakecryptctl/ctl-retry.c"

/* ---- helpers ---- */

/* The argv strings of the last parse: the cmd points into them, so they
 * live until the next parse (or the group teardown). */
static char *last_copy;

/* Split @line on spaces into argv (no quoting; "''" stands for ""). */
static int parse_line(const char *line, struct lc_ctl_cmd *cmd, char *err, size_t errlen)
{
	char *copy = strdup(line), *save = NULL, *argv[32];
	int argc = 0;

	assert_non_null(copy);
	free(last_copy);
	last_copy = copy;
	argv[argc++] = (char *)"lakecryptctl";
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		assert_true(argc < 31);
		argv[argc++] = strcmp(t, "''") ? t : t + 2;
	}
	argv[argc] = NULL;
	return lc_ctl_parse(argc, argv, cmd, err, errlen);
}

/* Parse and expect success with op @op and exactly @args_json. */
static void good(const char *line, const char *op, const char *args_json)
{
	struct lc_ctl_cmd cmd;
	char err[1024];
	int r = parse_line(line, &cmd, err, sizeof(err));

	if (r != LC_CTL_EXIT_OK)
		fail_msg("\"%s\": expected success, got %d: %s", line, r, err);
	assert_int_equal(cmd.action, LC_CTL_AGENT);
	assert_non_null(cmd.op);
	assert_string_equal(cmd.op, op);
	{
		struct json_object *want = json_tokener_parse(args_json);

		assert_non_null(want);
		if (!json_object_equal(want, cmd.args))
			fail_msg("\"%s\": args %s, expected %s", line,
				 json_object_to_json_string(cmd.args), args_json);
		json_object_put(want);
	}
	lc_ctl_cmd_free(&cmd);
}

/* Parse and expect a usage error whose message contains @needle and whose
 * help topic is @topic. */
static void bad(const char *line, const char *needle, const char *topic)
{
	struct lc_ctl_cmd cmd;
	char err[1024];
	int r = parse_line(line, &cmd, err, sizeof(err));

	if (r != LC_CTL_EXIT_USAGE)
		fail_msg("\"%s\": expected a usage error, got %d", line, r);
	if (!strstr(err, needle))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", line, err, needle);
	if (strcmp(cmd.topic, topic))
		fail_msg("\"%s\": topic \"%s\", expected \"%s\"", line, cmd.topic, topic);
	lc_ctl_cmd_free(&cmd);
}

/* Render @json with @r into a string (caller frees). */
static char *render(enum lc_ctl_render r, const char *json)
{
	struct json_object *o = json ? json_tokener_parse(json) : NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	if (json)
		assert_non_null(o);
	assert_int_equal(lc_ctl_render_human(f, r, o), 0);
	fclose(f);
	json_object_put(o);
	return buf;
}

static void expect_render(enum lc_ctl_render r, const char *json, const char *want)
{
	char *got = render(r, json);

	if (strcmp(got, want))
		fail_msg("rendered:\n%s\nexpected:\n%s", got, want);
	free(got);
}

/* ---- numbers and sizes ---- */

static void test_parse_uint(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(lc_ctl_parse_uint("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(lc_ctl_parse_uint("30", 7, 30, &v), 0);
	assert_int_equal(v, 30);
	assert_int_equal(lc_ctl_parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(lc_ctl_parse_uint("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(lc_ctl_parse_uint("31", 7, 30, &v), -ERANGE);
	assert_int_equal(lc_ctl_parse_uint("6", 7, 30, &v), -ERANGE);
	assert_int_equal(lc_ctl_parse_uint("", 0, 10, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint(NULL, 0, 10, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint("-1", 0, 10, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint("+1", 0, 10, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint(" 1", 0, 10, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint("1 ", 0, 10, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint("0x10", 0, 100, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint("1e3", 0, 10000, &v), -EINVAL);
	assert_int_equal(lc_ctl_parse_uint("7.5", 0, 10, &v), -EINVAL);
}

static void test_parse_size(void **state)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 }, { "4KiB", 4096 },
		{ "4KB", 4096 }, { "1M", 1048576 }, { "1m", 1048576 }, { "2MiB", 2097152 },
		{ "1G", 1073741824 }, { "3g", 3221225472ULL }, { "1T", 1099511627776ULL },
		{ "16777215T", 16777215ULL << 40 },
	};
	static const char *const bad_s[] = {
		"", "K", "M1", "1.5M", "-1", "+1", "1 M", " 1M", "1M ", "1X", "1Mi", "1MIB", "1iB",
		"1B", "1MBB", "0x100", "1KK",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (lc_ctl_parse_size(ok[i].s, &v))
			fail_msg("\"%s\" refused", ok[i].s);
		if (v != ok[i].v)
			fail_msg("\"%s\" = %" PRIu64 ", expected %" PRIu64, ok[i].s, v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad_s) / sizeof(bad_s[0]); i++)
		if (lc_ctl_parse_size(bad_s[i], &v) != -EINVAL)
			fail_msg("\"%s\" accepted or wrong error", bad_s[i]);
	assert_int_equal(lc_ctl_parse_size("16777216T", &v), -ERANGE);
	assert_int_equal(lc_ctl_parse_size("18446744073709551616", &v), -ERANGE);
	assert_int_equal(lc_ctl_parse_size("99999999999999999999999999999999G", &v), -ERANGE);
	assert_int_equal(lc_ctl_parse_size(NULL, &v), -EINVAL);
}

/* ---- global options ---- */

static void test_globals(void **state)
{
	struct lc_ctl_cmd cmd;
	char err[1024];

	(void)state;
	assert_int_equal(parse_line("kms list", &cmd, err, sizeof(err)), 0);
	assert_string_equal(cmd.socket, LC_PROTO_DEFAULT_SOCKET);
	assert_false(cmd.json);
	assert_int_equal(cmd.timeout_ms, LC_CTL_TIMEOUT_S * 1000);
	assert_int_equal(cmd.render, LC_R_KEYS);
	lc_ctl_cmd_free(&cmd);

	assert_int_equal(parse_line("--socket /tmp/s --json --timeout 5 kms list", &cmd, err, sizeof(err)), 0);
	assert_string_equal(cmd.socket, "/tmp/s");
	assert_true(cmd.json);
	assert_int_equal(cmd.timeout_ms, 5000);
	lc_ctl_cmd_free(&cmd);

	/* globals after the command, and --opt=value */
	assert_int_equal(parse_line("kms list --socket=/tmp/t --timeout=0 --json", &cmd, err, sizeof(err)), 0);
	assert_string_equal(cmd.socket, "/tmp/t");
	assert_true(cmd.json);
	assert_int_equal(cmd.timeout_ms, -1);
	lc_ctl_cmd_free(&cmd);

	assert_int_equal(parse_line("--version", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.action, LC_CTL_VERSION);
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("-V", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.action, LC_CTL_VERSION);
	lc_ctl_cmd_free(&cmd);

	bad("--timeout -1 kms list", "--timeout must be a whole number", "");
	bad("--timeout 86401 kms list", "--timeout must be a whole number", "");
	bad("--timeout 1s kms list", "--timeout must be a whole number", "");
	bad("kms list --timeout", "--timeout needs a value", "kms list");
	bad("kms list --socket", "--socket needs a value", "kms list");
	bad("--socket= kms list", "--socket must not be empty", "");
	bad("--bogus kms list", "unknown option \"--bogus\"", "");
	bad("--days 7 kms list", "command options go after the command", "");
	bad("", "no command given", "");
	bad("frobnicate", "unknown command \"frobnicate\": expected one of kms, keyconfig", "");
	bad("kms", "kms needs a subcommand: one of create, list", "kms");
	bad("kms frob", "unknown subcommand \"frob\"", "kms");
	bad("keyconfig", "keyconfig needs a subcommand", "keyconfig");
	bad("workspace nope", "unknown subcommand \"nope\": expected one of bind, unbind, list", "workspace");
}

static void test_help(void **state)
{
	static const char *const topics[] = {
		"", "kms", "keyconfig", "workspace", "kms create", "kms list", "kms describe",
		"kms rotate", "kms disable", "kms enable", "kms schedule-deletion",
		"kms cancel-deletion", "kms destroy", "keyconfig create", "keyconfig list",
		"keyconfig delete", "workspace bind", "workspace unbind", "workspace list",
		"format", "open", "cache", "close", "rewrap", "status", "revoke", "audit", "dump",
		"table", "revocation", "revocation list", "revocation clear",
	};
	struct lc_ctl_cmd cmd;
	char err[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		char line[96], *buf = NULL;
		size_t len = 0;
		FILE *f;

		/* "<topic> --help" parses as help for that topic */
		snprintf(line, sizeof(line), "%s --help", topics[i]);
		assert_int_equal(parse_line(line, &cmd, err, sizeof(err)), 0);
		assert_int_equal(cmd.action, LC_CTL_HELP);
		assert_string_equal(cmd.topic, topics[i]);
		lc_ctl_cmd_free(&cmd);

		f = open_memstream(&buf, &len);
		assert_non_null(f);
		assert_int_equal(lc_ctl_help(f, topics[i]), 0);
		fclose(f);
		assert_non_null(strstr(buf, "Usage: lakecryptctl"));
		if (strchr(topics[i], ' ') || (topics[i][0] && strcmp(topics[i], "kms") &&
					       strcmp(topics[i], "keyconfig") && strcmp(topics[i], "workspace") &&
					       strcmp(topics[i], "revocation"))) {
			/* every command's help documents the exit codes */
			assert_non_null(strstr(buf, "Exit codes:"));
			assert_non_null(strstr(buf, "5  denied by the KMS"));
			assert_non_null(strstr(buf, "--socket PATH"));
		}
		free(buf);
	}
	/* -h works too, and wins over wrong arguments after it */
	assert_int_equal(parse_line("kms destroy -h", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.action, LC_CTL_HELP);
	assert_string_equal(cmd.topic, "kms destroy");
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("close --help a b c", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.action, LC_CTL_HELP);
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("--help nothing-such", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.action, LC_CTL_HELP);
	assert_string_equal(cmd.topic, "");
	lc_ctl_cmd_free(&cmd);

	{
		FILE *f = fopen("/dev/null", "w");

		assert_int_equal(lc_ctl_help(f, "nope"), -ENOENT);
		assert_int_equal(lc_ctl_help(f, "kms nope"), -ENOENT);
		assert_int_equal(lc_ctl_help(f, "nope create"), -ENOENT);
		fclose(f);
	}
	{
		char hint[96];

		lc_ctl_try_hint("kms create", hint, sizeof(hint));
		assert_string_equal(hint, "Try 'lakecryptctl kms create --help'.");
		lc_ctl_try_hint("", hint, sizeof(hint));
		assert_string_equal(hint, "Try 'lakecryptctl --help'.");
	}
}

/* ---- every subcommand, good and bad ---- */

static void test_kms(void **state)
{
	(void)state;
	good("kms create", "kms.create", "{}");
	good("kms create --description db-root", "kms.create", "{\"description\":\"db-root\"}");
	good("kms create --description=x", "kms.create", "{\"description\":\"x\"}");
	bad("kms create --description", "--description needs a value", "kms create");
	bad("kms create --description ''", "--description must not be empty", "kms create");
	bad("kms create extra", "unexpected argument \"extra\"", "kms create");
	bad("kms create --description a --description b", "--description given twice", "kms create");

	good("kms list", "kms.list", "{}");
	bad("kms list x", "unexpected argument", "kms list");
	bad("kms list --all", "unknown option \"--all\"", "kms list");

	good("kms describe k-1", "kms.describe", "{\"key_id\":\"k-1\"}");
	good("kms rotate k-1", "kms.rotate", "{\"key_id\":\"k-1\"}");
	good("kms disable k-1", "kms.disable", "{\"key_id\":\"k-1\"}");
	good("kms enable k-1", "kms.enable", "{\"key_id\":\"k-1\"}");
	good("kms cancel-deletion k-1", "kms.cancel-deletion", "{\"key_id\":\"k-1\"}");
	good("kms describe -- -odd-key", "kms.describe", "{\"key_id\":\"-odd-key\"}");
	bad("kms describe", "missing KEY: expected 'lakecryptctl kms describe KEY'", "kms describe");
	bad("kms rotate", "missing KEY", "kms rotate");
	bad("kms disable", "missing KEY", "kms disable");
	bad("kms enable", "missing KEY", "kms enable");
	bad("kms cancel-deletion", "missing KEY", "kms cancel-deletion");
	bad("kms rotate a b", "unexpected argument \"b\"", "kms rotate");
	bad("kms describe ''", "KEY must not be empty", "kms describe");

	good("kms schedule-deletion k-1 --days 7", "kms.schedule-deletion",
	     "{\"key_id\":\"k-1\",\"days\":7}");
	good("kms schedule-deletion --days=30 k-1", "kms.schedule-deletion",
	     "{\"key_id\":\"k-1\",\"days\":30}");
	bad("kms schedule-deletion k-1", "--days N is required", "kms schedule-deletion");
	bad("kms schedule-deletion --days 7", "missing KEY", "kms schedule-deletion");
	bad("kms schedule-deletion k-1 --days 6", "--days must be a whole number from 7 to 30, got \"6\"",
	    "kms schedule-deletion");
	bad("kms schedule-deletion k-1 --days 31", "from 7 to 30", "kms schedule-deletion");
	bad("kms schedule-deletion k-1 --days ten", "got \"ten\"", "kms schedule-deletion");
	bad("kms schedule-deletion k-1 --days 7d", "got \"7d\"", "kms schedule-deletion");
	bad("kms schedule-deletion k-1 --days", "--days needs a value", "kms schedule-deletion");

	good("kms destroy k-1", "kms.destroy", "{\"key_id\":\"k-1\",\"now\":false}");
	good("kms destroy k-1 --now", "kms.destroy", "{\"key_id\":\"k-1\",\"now\":true}");
	bad("kms destroy --now", "missing KEY", "kms destroy");
	bad("kms destroy k-1 --now=yes", "--now takes no value", "kms destroy");
}

static void test_keyconfig_workspace(void **state)
{
	(void)state;
	good("keyconfig create kc1 --provider local --key k-1", "keyconfig.create",
	     "{\"name\":\"kc1\",\"provider\":\"local\",\"key_ref\":\"k-1\"}");
	good("keyconfig create kc1 --key k-1", "keyconfig.create",
	     "{\"name\":\"kc1\",\"provider\":\"local\",\"key_ref\":\"k-1\"}");
	bad("keyconfig create kc1", "--key KEY_REF is required", "keyconfig create");
	bad("keyconfig create --key k-1", "missing NAME", "keyconfig create");
	bad("keyconfig create kc1 --key k-1 --provider aws", "unknown provider \"aws\": expected \"local\"",
	    "keyconfig create");
	good("keyconfig create gcp-kc --provider gcp-kms --key projects/p/locations/global/keyRings/r/cryptoKeys/k",
	     "keyconfig.create",
	     "{\"name\":\"gcp-kc\",\"provider\":\"gcp-kms\",\"key_ref\":\"projects/p/locations/global/keyRings/r/cryptoKeys/k\"}");
	good("keyconfig create finance-kc --provider aws-kms --key arn:aws:kms:eu-west-1:111122223333:key/k1",
	     "keyconfig.create",
	     "{\"name\":\"finance-kc\",\"provider\":\"aws-kms\",\"key_ref\":\"arn:aws:kms:eu-west-1:111122223333:key/k1\"}");
	good("keyconfig create hsm-kc --provider pkcs11 --key id:01a2",
	     "keyconfig.create",
	     "{\"name\":\"hsm-kc\",\"provider\":\"pkcs11\",\"key_ref\":\"id:01a2\"}");
	good("keyconfig create az-kc --provider azure-kv --key https://v1.vault.azure.net/keys/cmk",
	     "keyconfig.create",
	     "{\"name\":\"az-kc\",\"provider\":\"azure-kv\",\"key_ref\":\"https:\\/\\/v1.vault.azure.net\\/keys\\/cmk\"}");
	bad("keyconfig create kc1 --key ''", "--key must not be empty", "keyconfig create");
	good("keyconfig list", "keyconfig.list", "{}");
	bad("keyconfig list kc1", "unexpected argument", "keyconfig list");
	good("keyconfig delete kc1", "keyconfig.delete", "{\"name\":\"kc1\"}");
	bad("keyconfig delete", "missing NAME", "keyconfig delete");

	good("workspace bind ws1 --keyconfig kc1", "workspace.bind",
	     "{\"workspace\":\"ws1\",\"keyconfig\":\"kc1\"}");
	bad("workspace bind ws1", "--keyconfig NAME is required", "workspace bind");
	bad("workspace bind --keyconfig kc1", "missing WORKSPACE", "workspace bind");
	good("workspace unbind ws1", "workspace.unbind", "{\"workspace\":\"ws1\"}");
	bad("workspace unbind", "missing WORKSPACE", "workspace unbind");
	bad("workspace unbind ws1 --keyconfig kc1", "unknown option \"--keyconfig\"", "workspace unbind");
	good("workspace list", "workspace.list", "{}");
	bad("workspace list ws1", "unexpected argument", "workspace list");
}

static void test_volumes(void **state)
{
	struct lc_ctl_cmd cmd;
	char err[1024];

	(void)state;
	good("format /dev/sdb --workspace ws1 --project db1 --force", "volume.format",
	     "{\"device\":\"/dev/sdb\",\"workspace\":\"ws1\",\"project\":\"db1\",\"force\":true}");
	good("format /dev/sdb --workspace ws1 --project db1", "volume.format",
	     "{\"device\":\"/dev/sdb\",\"workspace\":\"ws1\",\"project\":\"db1\"}");
	good("format /dev/sdb --workspace ws1 --project db1 --header /h --cipher aes-xts-plain64 "
	     "--key-size 64 --segment-size 1M --sector-size 4096 --force", "volume.format",
	     "{\"device\":\"/dev/sdb\",\"workspace\":\"ws1\",\"project\":\"db1\",\"header\":\"/h\","
	     "\"cipher\":\"aes-xts-plain64\",\"key_size\":64,\"segment_size\":1048576,"
	     "\"sector_size\":4096,\"force\":true}");
	good("format /dev/sdb --workspace ws1 --project db1 --segment-size 4K --force", "volume.format",
	     "{\"device\":\"/dev/sdb\",\"workspace\":\"ws1\",\"project\":\"db1\",\"segment_size\":4096,\"force\":true}");
	good("format /dev/sdb --workspace ws1 --project db1 --segment-size 1T --force", "volume.format",
	     "{\"device\":\"/dev/sdb\",\"workspace\":\"ws1\",\"project\":\"db1\",\"segment_size\":1099511627776,\"force\":true}");

	/* --batch decides the confirmation, --force only the overwrite; path is the device */
	assert_int_equal(parse_line("format /dev/sdb --workspace w --project p", &cmd, err, sizeof(err)), 0);
	assert_true(cmd.confirm);
	assert_string_equal(cmd.path, "/dev/sdb");
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("format /dev/sdb --force --workspace w --project p", &cmd, err, sizeof(err)), 0);
	assert_true(cmd.confirm);
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("format /dev/sdb --batch --workspace w --project p", &cmd, err, sizeof(err)), 0);
	assert_false(cmd.confirm);
	assert_false(json_object_object_get_ex(cmd.args, "batch", NULL));
	assert_false(json_object_object_get_ex(cmd.args, "force", NULL));
	lc_ctl_cmd_free(&cmd);
	/* The DEK size range is the agent's: 16 to 128, a usage error outside. */
	assert_int_equal(parse_line("format /dev/sdb --workspace w --project p --key-size 8", &cmd, err,
				    sizeof(err)), LC_CTL_EXIT_USAGE);
	lc_ctl_cmd_free(&cmd);
	good("migrate /dev/sdb --workspace ws1", "volume.migrate",
	     "{\"device\":\"/dev/sdb\",\"workspace\":\"ws1\"}");
	/* Operator groups and device patterns are lists. */
	good("workspace bind ws1 --keyconfig kc --operators ops,dba --devices /dev/vd[b-z],/dev/loop*",
	     "workspace.bind",
	     "{\"workspace\":\"ws1\",\"keyconfig\":\"kc\",\"operators\":[\"ops\",\"dba\"],\"devices\":[\"/dev/vd[b-z]\",\"/dev/loop*\"]}");
	assert_int_equal(parse_line("workspace bind ws1 --keyconfig kc --operators ops,,x", &cmd, err,
				    sizeof(err)), LC_CTL_EXIT_USAGE);
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("kms list", &cmd, err, sizeof(err)), 0);
	assert_false(cmd.confirm);
	lc_ctl_cmd_free(&cmd);

	bad("format --workspace w --project p", "missing DEVICE", "format");
	bad("format /dev/sdb --project p", "--workspace W is required", "format");
	bad("format /dev/sdb --workspace w", "--project P is required", "format");
	bad("format /dev/sdb --workspace w --project p --segment-size 3M",
	    "--segment-size must be a power of two from 4K to 1T, got \"3M\"", "format");
	bad("format /dev/sdb --workspace w --project p --segment-size 2K", "power of two from 4K", "format");
	bad("format /dev/sdb --workspace w --project p --segment-size 2T", "power of two from 4K", "format");
	bad("format /dev/sdb --workspace w --project p --segment-size 1.5M",
	    "--segment-size must be a size in bytes with an optional K, M, G or T suffix", "format");
	bad("format /dev/sdb --workspace w --project p --segment-size lots", "got \"lots\"", "format");
	bad("format /dev/sdb --workspace w --project p --key-size 0", "--key-size must be a whole number from 16 to 128",
	    "format");
	bad("format /dev/sdb --workspace w --project p --key-size 129", "from 16 to 128", "format");
	bad("format /dev/sdb --workspace w --project p --key-size 64B", "got \"64B\"", "format");
	bad("format /dev/sdb --workspace w --project p --sector-size 1000",
	    "--sector-size must be 512, 1024, 2048 or 4096, got \"1000\"", "format");
	bad("format /dev/sdb --workspace w --project p --sector-size 8192", "512, 1024, 2048 or 4096", "format");
	bad("format /dev/sdb --workspace w --project p --cipher", "--cipher needs a value", "format");
	bad("format /dev/sdb --workspace w --project p --force --force", "--force given twice", "format");
	bad("format /dev/sdb /dev/sdc --workspace w --project p", "unexpected argument \"/dev/sdc\"", "format");

	good("open /dev/sdb db1 --workspace ws1", "volume.open",
	     "{\"device\":\"/dev/sdb\",\"name\":\"db1\",\"workspace\":\"ws1\"}");
	good("open /dev/sdb db1 --workspace ws1 --header /hdr", "volume.open",
	     "{\"device\":\"/dev/sdb\",\"name\":\"db1\",\"workspace\":\"ws1\",\"header\":\"/hdr\"}");
	bad("open /dev/sdb --workspace ws1", "missing NAME", "open");
	bad("open /dev/sdb db1", "--workspace W is required", "open");
	/* Volume names: the agent's rule and message (lc_name_check()). */
	bad("open /dev/sdb a/b --workspace ws1", "NAME: volume name \"a/b\" is not a valid name", "open");
	bad("open /dev/sdb .. --workspace ws1", "volume name \"..\" is not a valid name", "open");
	bad("open /dev/sdb . --workspace ws1", "volume name \".\" is not a valid name", "open");
	bad("open /dev/sdb control --workspace ws1", "volume name \"control\" is reserved", "open");
	bad("close v234567890123456789012345678901234567890123456789012345678901234",
	    "must be 1 to 63 characters long", "close");
	bad("open /dev/sdb db1 --workspace ws1 --project p", "unknown option \"--project\"", "open");

	good("cache /dev/nvme0n1 c1 --workspace ws1", "cache.open",
	     "{\"device\":\"/dev/nvme0n1\",\"name\":\"c1\",\"workspace\":\"ws1\"}");
	good("cache /dev/nvme0n1 c1 --workspace ws1 --segment-size 64M", "cache.open",
	     "{\"device\":\"/dev/nvme0n1\",\"name\":\"c1\",\"workspace\":\"ws1\",\"segment_size\":67108864}");
	bad("cache /dev/nvme0n1 c1", "--workspace W is required", "cache");
	bad("cache /dev/nvme0n1 --workspace ws1", "missing NAME", "cache");
	bad("cache /dev/nvme0n1 c1 --workspace ws1 --segment-size 0", "power of two from 4K", "cache");
	bad("cache /dev/nvme0n1 c1 --workspace ws1 --header /h", "unknown option \"--header\"", "cache");

	good("close db1", "volume.close", "{\"name\":\"db1\"}");
	bad("close", "missing NAME", "close");
	bad("close a b", "unexpected argument \"b\"", "close");
	good("rewrap db1", "volume.rewrap", "{\"name\":\"db1\"}");
	bad("rewrap", "expected NAME, or --all", "rewrap");
	/* key lifecycle (ops-rotate.c) */
	good("rewrap --all", "volume.rewrap", "{\"all\":true}");
	good("rewrap --all --keyconfig kc1", "volume.rewrap", "{\"all\":true,\"keyconfig\":\"kc1\"}");
	bad("rewrap db1 --all", "both NAME and --all", "rewrap");
	bad("rewrap db1 --keyconfig kc1", "--keyconfig needs --all", "rewrap");
	good("rotate-kek db1", "volume.rotate-kek", "{\"name\":\"db1\"}");
	bad("rotate-kek", "missing NAME", "rotate-kek");
	good("shred db1 --segment 2-4 --batch", "volume.shred", "{\"name\":\"db1\",\"segments\":\"2-4\"}");
	bad("shred db1 --segment 4-2 --batch", "reversed", "shred");
	bad("shred db1 --segment 1,2 --batch", "not N or A-B", "shred");
	bad("shred db1 --batch", "--segment N|A-B is required", "shred");
	good("workspace rekey ws1 --keyconfig kc2", "workspace.rekey",
	     "{\"workspace\":\"ws1\",\"keyconfig\":\"kc2\"}");
	bad("workspace rekey ws1", "--keyconfig NAME is required", "workspace rekey");
	good("rekey /dev/sdc --workspace ws1 --from kc1", "volume.rekey",
	     "{\"device\":\"/dev/sdc\",\"workspace\":\"ws1\",\"from\":\"kc1\"}");
	bad("rekey /dev/sdc --workspace ws1", "--from KEYCONFIG is required", "rekey");

	good("status", "status", "{}");
	good("status db1", "status", "{\"name\":\"db1\"}");
	assert_int_equal(parse_line("status", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.render, LC_R_STATUS);
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("status db1", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.render, LC_R_STATUS_DETAIL);
	lc_ctl_cmd_free(&cmd);
	bad("status a b", "unexpected argument \"b\"", "status");

	good("revoke --keyconfig kc1", "revoke", "{\"keyconfig\":\"kc1\"}");
	good("revoke --cmk k-1", "revoke", "{\"cmk\":\"k-1\"}");
	bad("revoke", "nothing to revoke: expected exactly one of --keyconfig NAME or --cmk KEY", "revoke");
	bad("revoke --keyconfig kc1 --cmk k-1", "both --keyconfig and --cmk given", "revoke");
	bad("revoke kc1", "unexpected argument \"kc1\"", "revoke");

	good("revocation list", "revocation.list", "{}");
	good("revocation clear 0a1b", "revocation.clear", "{\"record\":\"0a1b\"}");
	good("revocation clear 0a1b --revision 42", "revocation.clear",
	     "{\"record\":\"0a1b\",\"revision\":42}");
	good("revocation clear 0a1b --revision 9223372036854775807 --force", "revocation.clear",
	     "{\"record\":\"0a1b\",\"revision\":9223372036854775807,\"force\":true}");
	bad("revocation", "revocation needs a subcommand: one of list, clear", "revocation");
	bad("revocation list x", "unexpected argument \"x\"", "revocation list");
	bad("revocation clear", "missing RECORD", "revocation clear");
	bad("revocation clear 0a1b --revision 0", "--revision must be a whole number from 1 to 9223372036854775807", "revocation clear");
	bad("revocation clear 0a1b --revision 9223372036854775808", "--revision must be a whole number", "revocation clear");
	bad("revocation clear 0a1b --revision x", "--revision must be a whole number", "revocation clear");
	bad("revocation clear 0a1b --force=yes", "--force takes no value", "revocation clear");
	bad("revocation delete 0a1b", "unknown subcommand \"delete\"", "revocation");

	good("audit", "audit.tail", "{}");
	good("audit --lines 10", "audit.tail", "{\"lines\":10}");
	bad("audit --lines 0", "--lines must be a whole number from 1 to 10000000", "audit");
	bad("audit --lines -5", "got \"-5\"", "audit");
	good("audit --lines 20000", "audit.tail", "{\"lines\":20000}");	/* paged */
	bad("audit --lines 10000001", "from 1 to 10000000", "audit");
}

static void test_local_parse(void **state)
{
	struct lc_ctl_cmd cmd;
	char err[1024];

	(void)state;
	assert_int_equal(parse_line("dump /dev/sdb", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.action, LC_CTL_DUMP);
	assert_string_equal(cmd.path, "/dev/sdb");
	assert_null(cmd.op);
	assert_int_equal(json_object_object_length(cmd.args), 0);
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("--json dump /h", &cmd, err, sizeof(err)), 0);
	assert_true(cmd.json);
	lc_ctl_cmd_free(&cmd);
	bad("dump", "missing DEVICE_OR_HEADER", "dump");
	bad("dump a b", "unexpected argument \"b\"", "dump");
	bad("dump ''", "DEVICE_OR_HEADER must not be empty", "dump");
	bad("dump /h --name x", "unknown option \"--name\"", "dump");

	assert_int_equal(parse_line("table /dev/sdb", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.action, LC_CTL_TABLE);
	assert_string_equal(cmd.path, "/dev/sdb");
	assert_null(cmd.name);
	assert_null(cmd.device);
	lc_ctl_cmd_free(&cmd);
	assert_int_equal(parse_line("table /h --name db1 --device /dev/sdb", &cmd, err, sizeof(err)), 0);
	assert_string_equal(cmd.name, "db1");
	assert_string_equal(cmd.device, "/dev/sdb");
	lc_ctl_cmd_free(&cmd);
	bad("table", "missing DEVICE_OR_HEADER", "table");
	bad("table /h --name a/b", "--name \"a/b\" is not a usable device name", "table");
	bad("table /h --device ''", "--device must not be empty", "table");
	bad("table /h --name", "--name needs a value", "table");
}

/* ---- replies and exit codes ---- */

static int check(const char *json, int64_t id, struct lc_ctl_error *e, struct json_object **res,
		 struct json_object **keep)
{
	*keep = json_tokener_parse(json);
	assert_non_null(*keep);
	return lc_ctl_reply_check(*keep, id, res, e);
}

static void test_reply_check(void **state)
{
	struct lc_ctl_error e;
	struct json_object *res, *msg;

	(void)state;
	assert_int_equal(check("{\"id\":3,\"ok\":true,\"result\":{\"a\":1}}", 3, &e, &res, &msg), 0);
	assert_non_null(res);
	assert_int_equal(json_object_object_length(res), 1);
	json_object_put(msg);

	assert_int_equal(check("{\"id\":3,\"ok\":false,\"error\":{\"code\":-13,\"class\":\"refused\","
			       "\"message\":\"admin only\"}}", 3, &e, &res, &msg), 1);
	assert_null(res);
	assert_int_equal(e.code, -13);
	assert_string_equal(e.cls, "refused");
	assert_string_equal(e.msg, "admin only");
	json_object_put(msg);

	/* id null is allowed on errors; control characters are neutralised */
	assert_int_equal(check("{\"id\":null,\"ok\":false,\"error\":{\"code\":-74,\"class\":\"invalid\","
			       "\"message\":\"bad\\u001b[31m\"}}", 3, &e, &res, &msg), 1);
	assert_string_equal(e.msg, "bad?[31m");
	json_object_put(msg);

	/* a positive or absurd code becomes -EIO */
	assert_int_equal(check("{\"id\":3,\"ok\":false,\"error\":{\"code\":5,\"class\":\"internal\","
			       "\"message\":\"x\"}}", 3, &e, &res, &msg), 1);
	assert_int_equal(e.code, -EIO);
	json_object_put(msg);

	static const char *const broken[] = {
		"[]",
		"{\"id\":3}",
		"{\"id\":3,\"ok\":1,\"result\":{}}",
		"{\"id\":4,\"ok\":true,\"result\":{}}",
		"{\"id\":null,\"ok\":true,\"result\":{}}",
		"{\"ok\":true,\"result\":{}}",
		"{\"id\":3,\"ok\":true}",
		"{\"id\":3,\"ok\":true,\"result\":[]}",
		"{\"id\":3,\"ok\":false}",
		"{\"id\":4,\"ok\":false,\"error\":{\"code\":-1,\"class\":\"x\",\"message\":\"m\"}}",
		"{\"id\":3,\"ok\":false,\"error\":{\"code\":-1,\"class\":\"x\"}}",
		"{\"id\":3,\"ok\":false,\"error\":{\"code\":\"-1\",\"class\":\"x\",\"message\":\"m\"}}",
		"{\"id\":3,\"ok\":false,\"error\":\"boom\"}",
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		if (check(broken[i], 3, &e, &res, &msg) != -EBADMSG)
			fail_msg("accepted %s", broken[i]);
		assert_non_null(strstr(e.msg, "malformed reply"));
		assert_null(res);
		json_object_put(msg);
	}
}

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(lc_ctl_exit_for_class("refused"), 4);
	assert_int_equal(lc_ctl_exit_for_class("denied"), 5);
	assert_int_equal(lc_ctl_exit_for_class("transient"), 6);
	assert_int_equal(lc_ctl_exit_for_class("invalid"), 1);
	assert_int_equal(lc_ctl_exit_for_class("misconfigured"), 1);
	assert_int_equal(lc_ctl_exit_for_class("internal"), 1);
	assert_int_equal(lc_ctl_exit_for_class("something-new"), 1);
	assert_int_equal(lc_ctl_exit_for_class(""), 1);
	assert_int_equal(lc_ctl_exit_for_class(NULL), 1);
	assert_int_equal(lc_ctl_exit_for_connect(-ENOENT), 3);
	assert_int_equal(lc_ctl_exit_for_connect(-ECONNREFUSED), 3);
	assert_int_equal(lc_ctl_exit_for_connect(-ETIMEDOUT), 3);
	assert_int_equal(lc_ctl_exit_for_connect(-ENAMETOOLONG), 3);
	assert_int_equal(lc_ctl_exit_for_connect(-EACCES), 4);
	assert_int_equal(lc_ctl_exit_for_connect(-EPERM), 4);
	assert_int_equal(LC_CTL_EXIT_OK, 0);
	assert_int_equal(LC_CTL_EXIT_FAILED, 1);
	assert_int_equal(LC_CTL_EXIT_USAGE, 2);
	assert_int_equal(LC_CTL_EXIT_UNREACHABLE, 3);
}

/* ---- rendering ---- */

#define KEY1 "{\"key_id\":\"k-1\",\"description\":\"db root\",\"state\":\"enabled\"," \
	     "\"primary_version\":2,\"versions\":2,\"created\":1700000000,\"deletion_date\":null}"
#define KEY2 "{\"key_id\":\"k-22\",\"description\":\"\",\"state\":\"pending_deletion\"," \
	     "\"primary_version\":1,\"versions\":1,\"created\":1700003600,\"deletion_date\":1700604800}"

static void test_render_keys(void **state)
{
	(void)state;
	expect_render(LC_R_KEY, KEY1,
		      "Key ID:          k-1\n"
		      "Description:     db root\n"
		      "State:           enabled\n"
		      "Primary version: 2\n"
		      "Versions:        2\n"
		      "Created:         2023-11-14 22:13:20 UTC\n"
		      "Deletion date:   -\n");
	/* known members in their order, unknown ones shown too, after them */
	expect_render(LC_R_KEY, "{\"state\":\"disabled\",\"new_thing\":true,\"key_id\":\"k\"}",
		      "Key ID:    k\n"
		      "State:     disabled\n"
		      "New thing: yes\n");
	expect_render(LC_R_KEYS, "{\"keys\":[" KEY1 "," KEY2 "]}",
		      "KEY ID  STATE             VERSION  CREATED                  DESCRIPTION\n"
		      "k-1     enabled           2        2023-11-14 22:13:20 UTC  db root\n"
		      "k-22    pending_deletion  1        2023-11-14 23:13:20 UTC  -\n");
	expect_render(LC_R_KEYS, "{\"keys\":[]}", "No keys.\n");
	/* a result not shaped as expected is still shown, never dropped */
	expect_render(LC_R_KEYS, "{\"other\":1}", "Other: 1\n");
}

static void test_render_config(void **state)
{
	(void)state;
	expect_render(LC_R_KEYCONFIG, "{\"name\":\"kc1\",\"provider\":\"local\",\"key_ref\":\"k-1\"}",
		      "Name:          kc1\n"
		      "Provider:      local\n"
		      "Key reference: k-1\n");
	expect_render(LC_R_KEYCONFIGS,
		      "{\"keyconfigs\":[{\"name\":\"kc1\",\"provider\":\"local\",\"key_ref\":\"k-1\"},"
		      "{\"name\":\"finance-eu\",\"provider\":\"local\",\"key_ref\":\"k-22\"}]}",
		      "NAME        PROVIDER  KEY\n"
		      "kc1         local     k-1\n"
		      "finance-eu  local     k-22\n");
	expect_render(LC_R_KEYCONFIGS, "{\"keyconfigs\":[]}", "No key configurations.\n");
	expect_render(LC_R_BINDING, "{\"keyconfig\":\"kc1\",\"workspace\":\"ws1\"}",
		      "Workspace:         ws1\n"
		      "Key configuration: kc1\n");
	expect_render(LC_R_BINDINGS,
		      "{\"workspaces\":[{\"workspace\":\"ws1\",\"keyconfig\":\"kc1\","
		      "\"operators\":[\"dba\",\"ops\"],\"devices\":[\"/dev/vd[b-c]\"]},"
		      "{\"workspace\":\"analytics\",\"keyconfig\":\"kc2\",\"operators\":[],"
		      "\"devices\":[]}]}",
		      "WORKSPACE  KEYCONFIG  OPERATORS  DEVICES\n"
		      "ws1        kc1        dba, ops   /dev/vd[b-c]\n"
		      "analytics  kc2        -          -\n");
	expect_render(LC_R_BINDINGS, "{\"workspaces\":[]}", "No workspace bindings.\n");
	expect_render(LC_R_NONE, NULL, "");
	expect_render(LC_R_NONE, "{}", "");
}

#define VOL1 "{\"name\":\"db1\",\"kind\":\"project\",\"uuid\":\"0b6c1d2e-0000-4000-8000-000000000001\"," \
	     "\"device\":\"/dev/sdb\",\"dm_device\":\"/dev/mapper/db1\",\"workspace\":\"ws1\"," \
	     "\"project\":\"db1\",\"keyconfig\":\"kc1\",\"provider\":\"local\",\"cmk_id\":\"k-1\"," \
	     "\"cmk_version\":\"2\",\"segments\":4096,\"segment_size\":1048576,\"state\":\"active\"," \
	     "\"keys_loaded\":4096,\"reads\":10,\"writes\":20,\"io_errors\":0,\"discard\":\"-\"}"
#define VOL2 "{\"name\":\"cache1\",\"kind\":\"cache\",\"uuid\":\"u2\",\"device\":\"/dev/nvme0n1\"," \
	     "\"dm_device\":\"/dev/mapper/cache1\",\"workspace\":\"ws1\",\"project\":null," \
	     "\"keyconfig\":\"kc1\",\"provider\":\"local\",\"cmk_id\":\"k-1\",\"cmk_version\":\"2\"," \
	     "\"segments\":16,\"segment_size\":67108864,\"state\":\"revoked\",\"keys_loaded\":0," \
	     "\"reads\":0,\"writes\":0,\"io_errors\":3,\"discard\":\"discarded\"}"

static void test_render_volumes(void **state)
{
	(void)state;
	expect_render(LC_R_VOLUME, VOL1,
		      "Name:              db1\n"
		      "Kind:              project\n"
		      "State:             active\n"
		      "UUID:              0b6c1d2e-0000-4000-8000-000000000001\n"
		      "Device:            /dev/sdb\n"
		      "Mapped device:     /dev/mapper/db1\n"
		      "Workspace:         ws1\n"
		      "Project:           db1\n"
		      "Key configuration: kc1\n"
		      "Provider:          local\n"
		      "CMK id:            k-1\n"
		      "CMK version:       2\n"
		      "Segments:          4096\n"
		      "Segment size:      1 MiB\n"
		      "Keys loaded:       4096\n"
		      "Reads:             10\n"
		      "Writes:            20\n"
		      "I/O errors:        0\n"
		      "Discard:           -\n");
	expect_render(LC_R_STATUS,
		      "{\"volumes\":[" VOL1 "," VOL2 "],\"kms_calls\":{\"unwrap\":1,\"wrap\":1}}",
		      "NAME    KIND     STATE    SEGMENTS  KEYS  WORKSPACE  PROJECT  CMK  VER  DEVICE\n"
		      "db1     project  active   4096      4096  ws1        db1      k-1  2    /dev/sdb\n"
		      "cache1  cache    revoked  16        0     ws1        -        k-1  2    /dev/nvme0n1\n"
		      "\n"
		      "KMS calls: unwrap=1, wrap=1\n");
	expect_render(LC_R_STATUS, "{\"volumes\":[],\"kms_calls\":{}}",
		      "No open volumes.\n\nKMS calls: none\n");
	expect_render(LC_R_STATUS, "{\"volumes\":[]}", "No open volumes.\n");
	/* the agent's counters per provider */
	expect_render(LC_R_STATUS,
		      "{\"volumes\":[],\"kms_calls\":{\"local\":{\"wrap\":1,\"unwrap\":2,\"retries\":0},"
		      "\"aws-kms\":{}}}",
		      "No open volumes.\n\nKMS calls (local): wrap=1, unwrap=2, retries=0\n"
		      "KMS calls (aws-kms): none\n");
	/* a provider the agent could not set up at start says why; available ones are quiet */
	expect_render(LC_R_STATUS,
		      "{\"volumes\":[],\"providers\":[{\"provider\":\"local\",\"available\":true},"
		      "{\"provider\":\"azure-kv\",\"available\":false,\"error\":\"no tenant_id\\n\"}]}",
		      "No open volumes.\nProvider azure-kv UNAVAILABLE: no tenant_id?\n");
	{
		char *out = render(LC_R_STATUS_DETAIL, "{\"volumes\":[" VOL2 "],\"kms_calls\":{\"unwrap\":0}}");

		assert_non_null(strstr(out, "Name:              cache1\n"));
		assert_non_null(strstr(out, "Segment size:      64 MiB\n"));
		assert_non_null(strstr(out, "Discard:           discarded\n"));
		assert_non_null(strstr(out, "\nKMS calls: unwrap=0\n"));
		free(out);
	}
	expect_render(LC_R_REVOKED, "{\"revoked\":[\"db1\",\"cache1\"]}", "Revoked db1\nRevoked cache1\n");
	expect_render(LC_R_REVOKED, "{\"revoked\":[]}", "No open volume was under it: nothing revoked.\n");
	expect_render(LC_R_REVOCATIONS, "{\"records\":[],\"revision\":7,\"prefix\":\"/lc/\"}",
		      "No revocation records under /lc/revocations/ (etcd revision 7).\n");
	{
		char *out = render(LC_R_REVOCATIONS,
				   "{\"records\":[{\"id\":\"ab\",\"key\":\"/lc/revocations/ab\",\"mod_revision\":12,"
				   "\"valid\":true,\"provider\":\"aws-kms\",\"cmk_id\":\"\",\"key_ref\":\"arn:k\","
				   "\"keyconfig\":\"\",\"scope\":\"whole CMK\",\"agent\":\"node1\",\"cause\":\"x\\u001by\","
				   "\"time\":1714564860},{\"id\":\"zz\",\"mod_revision\":13,\"valid\":false,"
				   "\"error\":\"value is not a JSON object\"}],\"revision\":20,\"prefix\":\"/lc/\"}");

		assert_non_null(strstr(out, "Id:                ab\nMod revision:      12\nProvider:          aws-kms\n"));
		assert_non_null(strstr(out, "Scope:             whole CMK\nKey configuration: -\n"));
		assert_non_null(strstr(out, "Cause:             x?y\n"));	/* no terminal escapes */
		assert_non_null(strstr(out, "Time:              2024-05-01 12:01:00 UTC\n"));
		assert_non_null(strstr(out, "Valid:        no\nError:        value is not a JSON object\n"));
		assert_non_null(strstr(out, "2 record(s) at etcd revision 20."));
		free(out);
	}
	{
		char *out = render(LC_R_CLEARED,
				   "{\"cleared\":\"/lc/revocations/ab\",\"record\":{\"mod_revision\":12},"
				   "\"kms_check\":\"not checked\",\"kms_detail\":\"no key configuration\","
				   "\"warning\":\"the CMK was not confirmed\"}");

		assert_string_equal(out, "Cleared /lc/revocations/ab (it was at mod_revision 12)\n"
				    "KMS check: not checked (no key configuration)\n"
				    "Warning: the CMK was not confirmed\n"
				    "Nothing was reopened: volumes it killed open again with a normal open, which asks the KMS.\n");
		free(out);
	}
}

static void test_render_audit(void **state)
{
	(void)state;
	expect_render(LC_R_AUDIT,
		      "{\"records\":[{\"time\":\"2024-05-01T12:00:00.123Z\",\"peer_uid\":0,\"op\":\"open\","
		      "\"workspace\":\"ws1\",\"outcome\":\"success\",\"latency_ms\":12},"
		      "{\"time\":\"2024-05-01T12:00:01.000Z\",\"peer_uid\":1000,\"op\":\"kms.create\","
		      "\"outcome\":\"refused\"},"
		      "{\"time\":\"2024-05-01T12:00:02.000Z\",\"op\":\"revoke\",\"outcome\":\"success\","
		      "\"cmk_id\":\"k-1\"}]}",
		      "TIME                      UID   OP          OUTCOME  DETAILS\n"
		      "2024-05-01T12:00:00.123Z  0     open        success  workspace=ws1 latency_ms=12\n"
		      "2024-05-01T12:00:01.000Z  1000  kms.create  refused  \n"
		      "2024-05-01T12:00:02.000Z  -     revoke      success  cmk_id=k-1\n");
	expect_render(LC_R_AUDIT, "{\"records\":[]}", "No audit records.\n");
	/* records given as raw lines are shown whole */
	{
		char *out = render(LC_R_AUDIT, "{\"records\":[\"{\\\"op\\\":\\\"open\\\"}\"]}");

		assert_non_null(strstr(out, "{\"op\":\"open\"}"));
		free(out);
	}
}

static void test_render_json(void **state)
{
	struct json_object *o = json_tokener_parse("{\"dm_device\":\"/dev/mapper/db1\",\"n\":1,\"a\":[true,null]}");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json_object *back;

	(void)state;
	assert_non_null(f);
	assert_int_equal(lc_ctl_render_json(f, o), 0);
	fclose(f);
	/* slashes are not escaped, one newline at the end, same data */
	assert_non_null(strstr(buf, "\"/dev/mapper/db1\""));
	assert_int_equal(buf[len - 1], '\n');
	back = json_tokener_parse(buf);
	assert_non_null(back);
	assert_true(json_object_equal(o, back));
	json_object_put(back);
	json_object_put(o);
	free(buf);
}

static void test_sanitize(void **state)
{
	char out[8];

	(void)state;
	lc_ctl_sanitize("a\x1b[2Jb\n", out, sizeof(out));
	assert_string_equal(out, "a?[2Jb?");
	lc_ctl_sanitize("0123456789", out, sizeof(out));
	assert_string_equal(out, "0123456");
	lc_ctl_sanitize(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	/* hostile strings in a table stay on their line */
	expect_render(LC_R_KEYS, "{\"keys\":[{\"key_id\":\"k\\nx\",\"state\":\"s\\r\",\"description\":\"\\u0007\"}]}",
		      "KEY ID  STATE  VERSION  CREATED  DESCRIPTION\n"
		      "k?x     s?     -        -        ?\n");
}

/* ---- local commands ---- */

static struct lc_header *make_header(uint32_t count, bool detached)
{
	struct lc_header *h = lc_header_new(count, 64);
	static const char ctx[] = "0b6c1d2e-0000-4000-8000-000000000001";
	uint8_t kek[120];

	assert_non_null(h);
	for (size_t i = 0; i < LC_UUID_LEN; i++)
		h->uuid[i] = (uint8_t)(0x10 + i);
	h->created = 1700000000;
	h->segment_sectors = 2048;
	h->flags = detached ? LC_HDR_F_DETACHED : 0;
	if (detached)
		h->data_offset = 0;
	else
		assert_int_equal(lc_header_layout(count, 64, NULL, NULL, &h->data_offset, NULL), 0);
	snprintf(h->workspace, sizeof(h->workspace), "ws1");
	snprintf(h->project, sizeof(h->project), "db1");
	snprintf(h->keyconfig, sizeof(h->keyconfig), "kc1");
	snprintf(h->provider, sizeof(h->provider), "local");
	snprintf(h->provider_ref, sizeof(h->provider_ref), "k-1");
	snprintf(h->cmk_id, sizeof(h->cmk_id), "k-1");
	snprintf(h->cmk_version, sizeof(h->cmk_version), "1");
	for (size_t i = 0; i < sizeof(kek); i++)
		kek[i] = (uint8_t)(0xA5 ^ i);
	h->wrapped_kek.p = malloc(sizeof(kek));
	assert_non_null(h->wrapped_kek.p);
	memcpy(h->wrapped_kek.p, kek, sizeof(kek));
	h->wrapped_kek.len = sizeof(kek);
	h->wrap_context.p = malloc(sizeof(ctx) - 1);
	assert_non_null(h->wrap_context.p);
	memcpy(h->wrap_context.p, ctx, sizeof(ctx) - 1);
	h->wrap_context.len = sizeof(ctx) - 1;
	for (uint32_t i = 0; i < count; i++) {
		h->deks[i].generation = 1;
		memset(h->deks[i].nonce, 0x11, LC_DEK_NONCE_LEN);
		memset(h->deks[i].tag, 0x22, LC_DEK_TAG_LEN);
		memset(h->deks[i].ct, 0x33, 64);
	}
	return h;
}

#define UUID "10111213-1415-1617-1819-1a1b1c1d1e1f"

static void test_table_line(void **state)
{
	struct lc_header *h = make_header(8, false);
	struct lc_error e = { 0 };
	char *line = NULL, want[512];

	(void)state;
	/* size unknown: every segment is mapped */
	assert_int_equal(lc_ctl_table_line(h, "/dev/sdb", 0, &line, &e), 0);
	snprintf(want, sizeof(want), "0 16384 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:" UUID
		 ": 2048 /dev/sdb %" PRIu64 " " UUID, h->data_offset);
	assert_string_equal(line, want);
	free(line);

	/* a smaller device: the mapping stops at its end (last segment short) */
	assert_int_equal(lc_ctl_table_line(h, "8:16", h->data_offset + 15000, &line, &e), 0);
	assert_non_null(strstr(line, "0 15000 lakecrypt "));
	assert_non_null(strstr(line, " 8:16 "));
	free(line);

	/* a larger device maps only the segments the header has */
	assert_int_equal(lc_ctl_table_line(h, "/dev/sdb", h->data_offset + 1000000, &line, &e), 0);
	assert_non_null(strstr(line, "0 16384 lakecrypt "));
	free(line);

	/* sector size: the length is rounded down to whole units, option added */
	h->sector_size = 4096;
	assert_int_equal(lc_ctl_table_line(h, "/dev/sdb", h->data_offset + 15001, &line, &e), 0);
	assert_non_null(strstr(line, "0 15000 lakecrypt "));
	assert_non_null(strstr(line, "sector_size:4096"));
	free(line);

	/* no room */
	assert_int_equal(lc_ctl_table_line(h, "/dev/sdb", h->data_offset, &line, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no room for data"));
	assert_null(line);
	assert_int_equal(lc_ctl_table_line(h, "/dev/sdb", h->data_offset + 7, &line, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "too small"));
	/* a device name the target would refuse */
	h->sector_size = 512;
	assert_int_equal(lc_ctl_table_line(h, "/dev/a b", 0, &line, &e), -EINVAL);
	lc_header_free(h);
}

static char *run_local(const char *line, int *rc, struct lc_error *e)
{
	struct lc_ctl_cmd cmd;
	char err[1024], *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(parse_line(line, &cmd, err, sizeof(err)), 0);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	*rc = lc_ctl_local(&cmd, f, e);
	fclose(f);
	lc_ctl_cmd_free(&cmd);
	return buf;
}

static void test_local_commands(void **state)
{
	char dir[] = "/tmp/lc-ctl-XXXXXX", img[64], det[64], line[256], *out;
	struct lc_header *h;
	struct lc_error e = { 0 };
	int rc;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(det, sizeof(det), "%s/hdr", dir);

	/* an image with an attached header, 8 MiB + header */
	h = make_header(8, false);
	f = fopen(img, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), (off_t)(h->data_offset * 512 + 8 * 1048576)), 0);
	fclose(f);
	assert_int_equal(lc_header_write_path(img, false, h, &e), 0);

	snprintf(line, sizeof(line), "dump %s", img);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "UUID:              " UUID "\n"));
	assert_non_null(strstr(out, "Workspace:         ws1\n"));
	assert_non_null(strstr(out, "Wrapped KEK:       120 bytes"));
	/* never key material: no raw wrapped bytes or their hex */
	assert_null(strstr(out, "a5a4a7a6"));
	free(out);

	snprintf(line, sizeof(line), "--json dump %s", img);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, 0);
	{
		struct json_object *j = json_tokener_parse(out);

		assert_non_null(j);
		json_object_put(j);
	}
	assert_null(strstr(out, "a5a4a7a6"));
	free(out);

	snprintf(line, sizeof(line), "table %s", img);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, 0);
	{
		char want[512];

		snprintf(want, sizeof(want), "0 16384 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:" UUID
			 ": 2048 %s %" PRIu64 " " UUID "\n", img, h->data_offset);
		assert_string_equal(out, want);
	}
	free(out);

	snprintf(line, sizeof(line), "table %s --name db1", img);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, 0);
	assert_true(!strncmp(out, "dmsetup create db1 --uuid LAKECRYPT-" UUID " --table '0 16384 lakecrypt ",
			     strlen("dmsetup create db1 --uuid LAKECRYPT-" UUID " --table '0 16384 lakecrypt ")));
	free(out);

	snprintf(line, sizeof(line), "table %s --name it's", img);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, 0);
	assert_true(!strncmp(out, "dmsetup create 'it'\\''s' --uuid", strlen("dmsetup create 'it'\\''s' --uuid")));
	free(out);

	snprintf(line, sizeof(line), "--json table %s --name db1", img);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, 0);
	{
		struct json_object *j = json_tokener_parse(out), *v;

		assert_non_null(j);
		assert_true(json_object_object_get_ex(j, "dm_uuid", &v));
		assert_string_equal(json_object_get_string(v), "LAKECRYPT-" UUID);
		assert_true(json_object_object_get_ex(j, "name", &v));
		assert_true(json_object_object_get_ex(j, "table", &v));
		assert_non_null(strstr(json_object_get_string(v), ":64:logon:lakecrypt:" UUID ":"));
		json_object_put(j);
	}
	free(out);
	lc_header_free(h);

	/* a detached header needs --device */
	h = make_header(4, true);
	assert_int_equal(lc_header_write_path(det, true, h, &e), 0);
	snprintf(line, sizeof(line), "table %s", det);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(e.msg, "--device DEV"));
	free(out);
	snprintf(line, sizeof(line), "table %s --device /dev/sdz", det);
	out = run_local(line, &rc, &e);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "0 8192 lakecrypt aes-xts-plain64 "));
	assert_non_null(strstr(out, " 2048 /dev/sdz 0 " UUID "\n"));
	free(out);
	lc_header_free(h);

	/* no header at all: a clear error, no output */
	snprintf(line, sizeof(line), "dump %s/nothing", dir);
	out = run_local(line, &rc, &e);
	assert_true(rc < 0);
	assert_true(e.msg[0] != '\0');
	assert_string_equal(out, "");
	free(out);
	f = fopen(det, "w");
	assert_non_null(f);
	fputs("not a header at all", f);
	fclose(f);
	snprintf(line, sizeof(line), "table %s --device /dev/sdz", det);
	out = run_local(line, &rc, &e);
	assert_true(rc < 0);
	assert_non_null(strstr(e.msg, "header"));
	assert_string_equal(out, "");
	free(out);

	unlink(img);
	unlink(det);
	rmdir(dir);
}

static int teardown(void **state)
{
	(void)state;
	free(last_copy);
	last_copy = NULL;
	return 0;
}

/* ---- open / cache retry (ctl-retry.c) ---- */

struct fake_attempts {
	int fail_first;		/* attempts that fail with @rc */
	int rc;			/* exit code of a failing attempt */
	bool again;		/* whether its failure may be retried */
	int calls;
	int timeouts[16];	/* cmd->timeout_ms each attempt saw */
};

static int fake_attempt(struct lc_ctl_cmd *cmd, struct lc_ctl_retry *st, void *ctx)
{
	struct fake_attempts *f = ctx;

	if (f->calls < 16)
		f->timeouts[f->calls] = cmd->timeout_ms;
	if (f->calls++ < f->fail_first) {
		st->again = f->again;
		return f->rc;
	}
	return LC_CTL_EXIT_OK;
}

static void test_retry(void **state)
{
	struct lc_ctl_cmd cmd = { .timeout_ms = -1, .topic = "open" };
	struct lc_ctl_retry st = { 0 };
	struct fake_attempts f = { .fail_first = 2, .rc = LC_CTL_EXIT_UNAVAILABLE, .again = true };
	char *text = NULL;
	size_t len = 0;
	FILE *diag = open_memstream(&text, &len);

	(void)state;
	assert_non_null(diag);
	/* which ops, which failures */
	assert_true(lc_ctl_op_retries("volume.open"));
	assert_true(lc_ctl_op_retries("cache.open"));
	assert_false(lc_ctl_op_retries("volume.close"));
	assert_false(lc_ctl_op_retries("status"));
	assert_false(lc_ctl_op_retries(NULL));
	assert_true(lc_ctl_class_retryable("transient"));
	assert_false(lc_ctl_class_retryable("denied"));
	assert_false(lc_ctl_class_retryable("refused"));
	assert_false(lc_ctl_class_retryable("invalid"));
	assert_false(lc_ctl_class_retryable("misconfig"));
	assert_true(lc_ctl_connect_retryable(-ENOENT, "/nonexistent/agent.sock"));
	assert_false(lc_ctl_connect_retryable(-EACCES, "/nonexistent/agent.sock"));
	assert_false(lc_ctl_connect_retryable(-ECONNREFUSED, "/dev/null"));	/* no socket */
	/* backoff: 250 ms doubling, at most 5 s, no overflow */
	assert_int_equal(lc_ctl_backoff_ms(1), 250);
	assert_int_equal(lc_ctl_backoff_ms(2), 500);
	assert_int_equal(lc_ctl_backoff_ms(5), 4000);
	assert_int_equal(lc_ctl_backoff_ms(6), 5000);
	assert_int_equal(lc_ctl_backoff_ms(4000000000u), 5000);

	/* no time limit: retried until it succeeds, each retry said */
	assert_int_equal(lc_ctl_retry(&cmd, fake_attempt, &f, &st, diag), LC_CTL_EXIT_OK);
	assert_int_equal(f.calls, 3);
	assert_int_equal(st.attempts, 3);
	assert_int_equal(f.timeouts[2], -1);
	assert_int_equal(cmd.timeout_ms, -1);
	fflush(diag);
	assert_non_null(strstr(text, "lakecryptctl: open: attempt 1 failed; retrying in 0.250 s"));
	assert_non_null(strstr(text, "lakecryptctl: open: attempt 2 failed; retrying in 0.500 s"));

	/* a failure not to retry: one attempt, its exit code */
	f = (struct fake_attempts){ .fail_first = 5, .rc = LC_CTL_EXIT_DENIED, .again = false };
	assert_int_equal(lc_ctl_retry(&cmd, fake_attempt, &f, &st, diag), LC_CTL_EXIT_DENIED);
	assert_int_equal(f.calls, 1);

	/* a time limit: each attempt gets what is left (less after a
	 * 250 ms wait), cmd->timeout_ms is restored */
	cmd.timeout_ms = 600000;
	f = (struct fake_attempts){ .fail_first = 1, .rc = LC_CTL_EXIT_UNREACHABLE, .again = true };
	assert_int_equal(lc_ctl_retry(&cmd, fake_attempt, &f, &st, diag), LC_CTL_EXIT_OK);
	assert_int_equal(f.calls, 2);
	assert_true(f.timeouts[0] <= 600000 && f.timeouts[0] > 600000 - 250);
	assert_true(f.timeouts[1] <= 600000 - 250 && f.timeouts[1] > 0);
	assert_int_equal(cmd.timeout_ms, 600000);
	/* less time left than the next delay: give up at once with the last
	 * attempt's code rather than sleep past the limit */
	cmd.timeout_ms = 100;
	f = (struct fake_attempts){ .fail_first = 100, .rc = LC_CTL_EXIT_UNREACHABLE, .again = true };
	assert_int_equal(lc_ctl_retry(&cmd, fake_attempt, &f, &st, diag), LC_CTL_EXIT_UNREACHABLE);
	assert_int_equal(f.calls, 1);
	assert_true(f.timeouts[0] <= 100 && f.timeouts[0] > 0);
	assert_int_equal(cmd.timeout_ms, 100);
	fclose(diag);
	assert_non_null(strstr(text, "giving up after"));
	free(text);
}

/* A fake clock for lc_ctl_retry(): attempts take no time, sleeps move it. */
static int64_t fake_ms;
static int64_t fake_now(void)
{
	return fake_ms;
}

static void fake_sleep(int ms)
{
	fake_ms += ms;
}

struct timed_attempts {
	int calls;
	int64_t at[32];		/* fake time of each attempt */
	int64_t up_at;		/* the agent answers from then on (0: never) */
};

static int timed_attempt(struct lc_ctl_cmd *cmd, struct lc_ctl_retry *st, void *ctx)
{
	struct timed_attempts *t = ctx;

	(void)cmd;
	if (t->calls < 32)
		t->at[t->calls] = fake_ms;
	t->calls++;
	if (t->up_at && fake_ms >= t->up_at)
		return LC_CTL_EXIT_OK;
	st->again = true;
	return LC_CTL_EXIT_UNREACHABLE;
}

/*
 * Retries go on to the end of --timeout (final issue-11 review): with the
 * backoff at 5 s the next delay may pass the end; the last attempt then
 * comes a quarter of the timeout (at most 2 s) before it, and an agent up
 * shortly before is found.
 */
static void test_retry_to_the_end(void **state)
{
	struct lc_ctl_clock real = lc_ctl_retry_clock;
	struct lc_ctl_cmd cmd = { .timeout_ms = 10000, .topic = "open" };
	struct lc_ctl_retry st = { 0 };
	struct timed_attempts t = { 0 };
	char *text = NULL;
	size_t len = 0;
	FILE *diag = open_memstream(&text, &len);

	(void)state;
	assert_non_null(diag);
	lc_ctl_retry_clock = (struct lc_ctl_clock){ fake_now, fake_sleep };
	fake_ms = 1000000;
	assert_int_equal(lc_ctl_retry(&cmd, timed_attempt, &t, &st, diag), LC_CTL_EXIT_UNREACHABLE);
	/* 0, .25, .75, 1.75, 3.75, 7.75, then 8 s (2 s, a quarter of the
	 * 10 s at most 2 s, kept for the last one to be answered): not
	 * 7.75 and out */
	assert_int_equal(t.calls, 7);
	assert_int_equal(t.at[5] - 1000000, 7750);
	assert_int_equal(t.at[6] - 1000000, 8000);
	assert_true(fake_ms - 1000000 <= 10000);
	/* the agent comes up at 7.9 s: found */
	t = (struct timed_attempts){ .up_at = 1000000 + 7900 };
	fake_ms = 1000000;
	assert_int_equal(lc_ctl_retry(&cmd, timed_attempt, &t, &st, diag), LC_CTL_EXIT_OK);
	assert_int_equal(t.calls, 7);
	/* no time limit, an agent that answers the 40th attempt: every retry
	 * said up to the 12th, then every 12th (24, 36): 14 lines */
	cmd.timeout_ms = -1;
	t = (struct timed_attempts){ 0 };
	fake_ms = 1000000;
	{
		char *q = NULL;
		size_t ql = 0;
		FILE *qd = open_memstream(&q, &ql);
		int lines = 0;

		assert_non_null(qd);
		t.up_at = 1000000 + 7750 + 5000 * 34;	/* the 40th attempt */
		assert_int_equal(lc_ctl_retry(&cmd, timed_attempt, &t, &st, qd), LC_CTL_EXIT_OK);
		fclose(qd);
		for (const char *p = q; (p = strstr(p, "retrying in")); p++)
			lines++;
		assert_int_equal(t.calls, 40);
		assert_int_equal(lines, 14);
		assert_non_null(strstr(q, "attempt 12 failed"));
		assert_non_null(strstr(q, "from now on every 12th retry is said"));
		assert_null(strstr(q, "attempt 13 failed"));
		assert_non_null(strstr(q, "attempt 36 failed"));
		free(q);
	}
	lc_ctl_retry_clock = real;
	fclose(diag);
	assert_non_null(strstr(text, "giving up after 7 attempts"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_globals),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_kms),
		cmocka_unit_test(test_keyconfig_workspace),
		cmocka_unit_test(test_volumes),
		cmocka_unit_test(test_local_parse),
		cmocka_unit_test(test_reply_check),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_render_keys),
		cmocka_unit_test(test_render_config),
		cmocka_unit_test(test_render_volumes),
		cmocka_unit_test(test_render_audit),
		cmocka_unit_test(test_render_json),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_table_line),
		cmocka_unit_test(test_local_commands),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_retry_to_the_end),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
