#!/bin/sh
# Stand-in for joxit/docker-registry-ui 2.5.7's /docker-entrypoint.d/90-docker-registry-ui.sh (its
# bin/90-docker-registry-ui.sh), same edits with the same sed expressions, so the same quirks:
#  - index.html (the working directory, /usr/share/nginx/html): each ${NAME} placeholder becomes the
#    variable's raw value through `sed "s~\${NAME}~value~"`: a `&` in a value comes out as the placeholder
#    itself ("R&D" -> "R${REGISTRY_TITLE}D"), a `~` or a backslash breaks or changes the expression;
#    DELETE_IMAGES becomes true unless it is unset, empty or "false".
#  - only with NGINX_PROXY_PASS_URL: default.conf gets the /v2 proxy block (headers from
#    NGINX_PROXY_HEADER_* and NGINX_PROXY_PASS_HEADER_* of the environment and /etc/nginx/.env), with
#    NGINX_RESOLVER a `resolver` and a proxy_pass through a variable (resolved per request), without it a
#    plain proxy_pass (resolved once, at start: an unknown host stops nginx).
#  - not root: listen 8080 (when NGINX_LISTEN_PORT is 80), no `user` directive, pid in /tmp.
# No `set -e`: a failing sed (e.g. no write permission) is reported and the script goes on.

for name in REGISTRY_URL REGISTRY_TITLE PULL_URL SINGLE_REGISTRY CATALOG_ELEMENTS_LIMIT SHOW_CONTENT_DIGEST \
  SHOW_TAG_HISTORY DEFAULT_REGISTRIES READ_ONLY_REGISTRIES SHOW_CATALOG_NB_TAGS HISTORY_CUSTOM_LABELS \
  USE_CONTROL_CACHE_HEADER TAGLIST_ORDER CATALOG_DEFAULT_EXPANDED CATALOG_MIN_BRANCHES CATALOG_MAX_BRANCHES \
  TAGLIST_PAGE_SIZE REGISTRY_SECURED; do
  sed -i "s~\${$name}~$(printenv "$name")~" index.html
done

grep -o 'THEME[A-Z_]*' index.html | while read theme_var; do
  sed -i "s~\${$theme_var}~$(printenv "$theme_var")~" index.html
done

case "${DELETE_IMAGES}" in
  ""|false) sed -i "s/\${DELETE_IMAGES}/false/" index.html ;;
  *) sed -i "s/\${DELETE_IMAGES}/true/" index.html ;;
esac

# "proxy_set_header Name \"value\"; " for each <prefix>Name=value (environment, then /etc/nginx/.env),
# "_" in the name becoming "-"; with a second argument, "proxy_pass_header \"Name\"; " instead.
proxy_directives() {
  (
    env
    if [ -f /etc/nginx/.env ]; then
      cat /etc/nginx/.env
      echo ""
    fi
  ) | while read line; do
    case "$line" in
      "$1"*)
        header=$(echo ${line%%=*} | sed "s/^$1//" | sed 's/_/-/g')
        if [ -n "$2" ]; then
          echo -n "proxy_pass_header \"${header}\"; "
        else
          echo -n "proxy_set_header ${header} \"${line#*=}\"; "
        fi
        ;;
    esac
  done
}

if [ -n "${NGINX_PROXY_PASS_URL}" ]; then
  sed -i "s,\${NGINX_PROXY_PASS_URL},${NGINX_PROXY_PASS_URL}," /etc/nginx/conf.d/default.conf
  sed -i "s^\${NGINX_PROXY_HEADERS}^$(proxy_directives NGINX_PROXY_HEADER_)^" /etc/nginx/conf.d/default.conf
  sed -i "s^\${NGINX_PROXY_PASS_HEADERS}^$(proxy_directives NGINX_PROXY_PASS_HEADER_ pass)^" /etc/nginx/conf.d/default.conf
  # "#! " (with the space) opens the proxy block without touching the "#!r" line.
  sed -i "s,#! , ," /etc/nginx/conf.d/default.conf
  if [ -n "${NGINX_RESOLVER}" ]; then
    sed -i "s,\${NGINX_RESOLVER},${NGINX_RESOLVER}," /etc/nginx/conf.d/default.conf
    sed -i "s,#r,," /etc/nginx/conf.d/default.conf
  else
    sed -i "s,#!r, ," /etc/nginx/conf.d/default.conf
  fi
fi

if [ "$(whoami)" != "root" ]; then
  if [ "$NGINX_LISTEN_PORT" = "80" ]; then
    NGINX_LISTEN_PORT="8080"
  fi
  sed -i "/user  nginx;/d" /etc/nginx/nginx.conf
  sed -i "s,/var/run/nginx.pid,/tmp/nginx.pid," /etc/nginx/nginx.conf
fi

if [ "$NGINX_LISTEN_PORT" != "80" ]; then
  sed -i "s,listen       80;,listen       $NGINX_LISTEN_PORT;," /etc/nginx/conf.d/default.conf
fi
