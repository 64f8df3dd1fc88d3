#!/bin/sh
# Stand-in for the official nginx image's /docker-entrypoint.sh (nginxinc/docker-nginx), same behaviour:
# only when the command is nginx or nginx-debug, run /docker-entrypoint.d/ in version order:
# *.envsh are sourced (they may export variables), executable *.sh are run, anything else is ignored.
# A script that fails stops the container (set -e). NGINX_ENTRYPOINT_QUIET_LOGS silences these lines.
set -e

log() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$@"
}

case "$1" in
    nginx|nginx-debug)
        if /usr/bin/find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read -r _; then
            log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
            log "$0: Looking for shell scripts in /docker-entrypoint.d/"
            find /docker-entrypoint.d/ -follow -type f -print | sort -V | while read -r script; do
                case "$script" in
                    *.envsh)
                        if [ -x "$script" ]; then
                            log "$0: Sourcing $script"
                            . "$script"
                        else
                            log "$0: Ignoring $script, not executable"
                        fi
                        ;;
                    *.sh)
                        if [ -x "$script" ]; then
                            log "$0: Launching $script"
                            "$script"
                        else
                            log "$0: Ignoring $script, not executable"
                        fi
                        ;;
                    *)
                        log "$0: Ignoring $script"
                        ;;
                esac
            done
            log "$0: Configuration complete; ready for start up"
        else
            log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
        fi
        ;;
esac

exec "$@"
