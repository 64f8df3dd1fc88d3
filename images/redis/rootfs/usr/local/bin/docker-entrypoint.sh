#!/bin/sh
# The official redis:7 image's entrypoint (docker-library/redis), on Debian's redis-server.
set -e

# The first argument is an option (`-f`, `--some-option`) or a config file (`something.conf`): run redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# Started as root (no `--user`): give the working directory (/data) to redis and run again as redis.
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --clear-groups -- "$0" "$@"
fi

# The umask redis' own systemd unit sets, unless the container was given another one.
if [ "$(umask)" = '0022' ]; then
	umask 0077
fi

# Upstream builds redis-server with protected mode off by default (its Dockerfile edits the default in
# config.c: a container's port is reachable only where it is published). Debian's binary defaults to on,
# which refuses every client outside the container when there is no password. The same default here: the
# option goes before the caller's options, so theirs win, and after a config file only when the file does not
# set protected-mode itself (command-line options override the file). Not seen through: a config read from
# stdin (`-`) or pulled in by `include`.
if [ "$1" = 'redis-server' ]; then
	shift
	if [ $# -gt 0 ] && { [ "${1#-}" = "$1" ] || [ "$1" = '-' ]; }; then
		config=$1
		shift
		if [ "$config" != '-' ] && [ -r "$config" ] \
			&& ! grep -qiE '^[[:space:]]*protected-mode[[:space:]]' "$config"; then
			set -- --protected-mode no "$@"
		fi
		set -- redis-server "$config" "$@"
	else
		set -- redis-server --protected-mode no "$@"
	fi
fi

exec "$@"
