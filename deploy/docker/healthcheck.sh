#!/bin/sh
# The image's HEALTHCHECK: GET /health/live on the port the running
# service listens on. The service is read from PID 1's command line
# (tini -- shopgraph serve <service>); the port from the same variables
# `serve` reads (<SERVICE>_PORT, then PORT), else the service's default.
set -eu
service=$(tr '\0' '\n' < /proc/1/cmdline | awk 'found { print; exit } $0 == "serve" { found = 1 }')
case "$service" in
    router) default=4000 ;;
    product) default=4001 ;;
    basket) default=4002 ;;
    payment) default=4003 ;;
    notification) default=4004 ;;
    *) exit 0 ;; # not `serve` (migrate, sdl, …): nothing to check
esac
own=$(printf '%s_PORT' "$service" | tr '[:lower:]' '[:upper:]')
eval "port=\${$own:-\${PORT:-$default}}"
exec curl --fail --silent --show-error --max-time 2 --output /dev/null "http://127.0.0.1:${port}/health/live"
