#!/usr/bin/env bash
# Writes the compose stack's secrets under deploy/compose/secrets/, or the
# directory given (never over existing ones): the hop key pair and a random
# JWT secret.
#
#   ./secrets.sh [DIR]
#
# The files are made readable by the containers' user (uid 10001): compose
# mounts file secrets as they are on the host. For a laptop stack only —
# production keeps them in the orchestrator's secret store (the Helm chart
# mounts them from a Secret, mode 0440).
set -euo pipefail
dir=${1:-"$(dirname "$0")/secrets"}
mkdir -p "$dir"
cd "$dir"
if [ ! -e hop.key ]; then
    openssl genpkey -algorithm ed25519 -out hop.key
    openssl pkey -in hop.key -pubout -out hop.pub
fi
if [ ! -e jwt-secret ]; then
    openssl rand -base64 48 | tr -d '\n' > jwt-secret
fi
chmod 0644 hop.key hop.pub jwt-secret
echo "secrets in $(pwd): hop.key, hop.pub, jwt-secret"
