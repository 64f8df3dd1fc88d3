#!/bin/sh
# Stand-in for the official image's 20-envsubst-on-templates.sh: every *.template under
# $NGINX_ENVSUBST_TEMPLATE_DIR (/etc/nginx/templates) is rendered with envsubst into
# $NGINX_ENVSUBST_OUTPUT_DIR (/etc/nginx/conf.d), keeping sub-folders and dropping the suffix; only
# variables that are set in the environment (and match NGINX_ENVSUBST_FILTER) are replaced, so nginx's
# own $variables survive. *.stream-template files go to /etc/nginx/stream-conf.d, and a stream block
# including them is appended to nginx.conf if it has none.
set -e

ME=$(basename "$0")

log() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$@"
}

template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
stream_suffix=${NGINX_ENVSUBST_STREAM_TEMPLATE_SUFFIX:-.stream-template}
stream_output_dir=${NGINX_ENVSUBST_STREAM_OUTPUT_DIR:-/etc/nginx/stream-conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}

[ -d "$template_dir" ] || exit 0

# "${A} ${B} ..." for the variables envsubst may replace.
variables=$(awk -v filter="$filter" 'END { for (name in ENVIRON) if (name ~ filter) printf "${%s} ", name }' </dev/null)

render() { # render <suffix> <output dir>
    find "$template_dir" -follow -type f -name "*$1" -print | while read -r template; do
        relative=${template#"$template_dir/"}
        output="$2/${relative%"$1"}"
        mkdir -p "$(dirname "$output")"
        log "$ME: info: Running envsubst on $template to $output"
        envsubst "$variables" <"$template" >"$output"
    done
}

if [ ! -w "$output_dir" ]; then
    log "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
    exit 0
fi
render "$suffix" "$output_dir"

if [ -n "$(find "$template_dir" -name "*$stream_suffix" -print -quit)" ]; then
    mkdir -p "$stream_output_dir"
    if [ ! -w "$stream_output_dir" ]; then
        log "$ME: ERROR: $template_dir exists, but $stream_output_dir is not writable"
        exit 0
    fi
    conf=/etc/nginx/nginx.conf
    if grep -q -E '\s*stream\s*\{' "$conf"; then
        log "$ME: $conf contains a stream block; include $stream_output_dir/*.conf to enable stream templates"
    elif ! touch "$conf" 2>/dev/null; then
        log "$ME: ERROR: can not modify $conf (read-only file system?)"
        exit 0
    else
        log "$ME: info: Appending stream block to $conf to include $stream_output_dir/*.conf"
        printf '# added by "%s" on "%s"\nstream {\n  include %s/*.conf;\n}\n' "$ME" "$(date)" "$stream_output_dir" >>"$conf"
    fi
    render "$stream_suffix" "$stream_output_dir"
fi
exit 0
