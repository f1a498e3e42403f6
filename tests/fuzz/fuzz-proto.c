// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the control socket's input side (agent/lib/proto.c)
 * and the config parser (agent/lib/config.c): everything a local peer or a
 * config file can feed the agent.
 *
 * Input: byte 0 selects the mode, the rest is the payload.
 *   mode 0  payload goes through a socketpair into lc_proto_recv() (with a
 *           small line limit so oversize is reached), then every message
 *           through lc_proto_request_parse() and lc_proto_reply_parse()
 *   mode 1  payload is a config file: lc_config_parse()
 * A failure must come with a message; a parsed request must have an op,
 * an id >= 0 and an args object.  Anything else is a bug: trap.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "proto.h"

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_proto(const uint8_t *data, size_t size)
{
	struct lc_proto_conn c;
	int sv[2];

	if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (write(sv[0], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	close(sv[0]);
	lc_proto_conn_init(&c, sv[1], 1000);
	c.max_msg = 4096;
	for (;;) {
		struct json_object *msg = NULL;
		struct lc_proto_request req;
		struct lc_proto_reply rep;
		struct lc_error e = { 0 }, remote = { 0 };
		int r = lc_proto_recv(&c, &msg, &e);

		if (r < 0) {
			CHECK(!msg && e.code == r && e.msg[0]);
			if (r == -EBADMSG)
				continue;
			CHECK(r == -ENODATA || r == -ECONNRESET || r == -EMSGSIZE);
			break;
		}
		CHECK(json_object_is_type(msg, json_type_object));
		r = lc_proto_request_parse(msg, &req, &e);
		if (r == 0)
			CHECK(req.op && *req.op && req.id >= 0 &&
			      json_object_is_type(req.args, json_type_object));
		else
			CHECK(r == -EBADMSG && e.msg[0]);
		memset(&e, 0, sizeof(e));
		r = lc_proto_reply_parse(msg, &rep, &remote, &e);
		if (r < 0)
			CHECK((remote.code == r && !rep.ok) || (r == -EBADMSG && e.msg[0]));
		else
			CHECK(rep.ok && json_object_is_type(rep.result, json_type_object));
		json_object_put(msg);
	}
	lc_proto_conn_close(&c);
}

static void fuzz_config(const uint8_t *data, size_t size)
{
	struct lc_config cfg;
	struct lc_error e = { 0 };
	int r;

	lc_config_defaults(&cfg);
	r = lc_config_parse(&cfg, (const char *)data, size, "fuzz.conf", &e);
	if (r < 0) {
		CHECK(r == -EINVAL && e.msg[0]);
		return;
	}
	CHECK(cfg.socket_path[0] == '/' && cfg.state_dir[0] == '/' && cfg.audit_log[0] == '/');
	CHECK(cfg.retry_attempts >= 1 && cfg.retry_max_delay_ms >= cfg.retry_base_delay_ms);
	CHECK(cfg.segment_sectors >= 8 && !(cfg.segment_sectors & (cfg.segment_sectors - 1)));
	CHECK(cfg.key_size >= 1 && cfg.key_size <= 128);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_config(data + 1, size - 1);
	else
		fuzz_proto(data + 1, size - 1);
	return 0;
}
