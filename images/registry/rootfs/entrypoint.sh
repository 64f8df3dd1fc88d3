#!/bin/sh
# Same as distribution/distribution-library-image's entrypoint.sh (registry:2):
# a *.yml argument means "registry serve <that file>".
set -e

case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac

exec "$@"
