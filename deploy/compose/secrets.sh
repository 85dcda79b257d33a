#!/usr/bin/env bash
# Writes the compose stack's secrets under deploy/compose/secrets/ (never
# over existing ones): the hop key pair and a random JWT secret.
#
# The files are made readable by the containers' user (uid 10001): compose
# mounts file secrets as they are on the host. For a laptop stack only —
# production keeps them in the orchestrator's secret store (the Helm chart
# mounts them from a Secret, mode 0440).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
if [ ! -e secrets/hop.key ]; then
    openssl genpkey -algorithm ed25519 -out secrets/hop.key
    openssl pkey -in secrets/hop.key -pubout -out secrets/hop.pub
fi
if [ ! -e secrets/jwt-secret ]; then
    openssl rand -base64 48 | tr -d '\n' > secrets/jwt-secret
fi
chmod 0644 secrets/hop.key secrets/hop.pub secrets/jwt-secret
echo "secrets in $(pwd)/secrets: hop.key, hop.pub, jwt-secret"
