// SPDX-License-Identifier: GPL-2.0
/*
 * systemd readiness notification (Type=notify), without libsystemd: one
 * datagram to $NOTIFY_SOCKET as sd_notify(3) documents ("READY=1",
 * "STATUS=...", "STOPPING=1"; a leading '@' means the abstract namespace).
 * Without $NOTIFY_SOCKET (not started by systemd) nothing is sent.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"

int agent_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen;
	size_t len;
	ssize_t n;
	int fd, e;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	e = errno;
	close(fd);
	return n < 0 ? -e : 1;
}

void agent_notify_ready(struct agent *a)
{
	char msg[PATH_MAX + 128];
	int r;

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=listening on %s, %zu open volume(s) known\nMAINPID=%ld",
		 a->cfg.socket_path, a->nvols, (long)getpid());
	r = agent_notify(msg);
	if (r < 0)
		lc_warn("cannot tell systemd the agent is ready (NOTIFY_SOCKET): %s", strerror(-r));
}
