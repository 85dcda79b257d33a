#!/usr/bin/env bash
# The deploy check (run by tests/run.sh, so by CI), offline once its tools
# are installed, no container engine or cluster needed:
#   1. the chart's files/supergraph.graphql is a link to
#      schema/supergraph.graphql (Helm reads through it; a packaged chart
#      holds the file), and the rendered ConfigMap carries it unchanged;
#   2. the Dockerfile passes hadolint and the image rules (non-root, init,
#      HEALTHCHECK, OCI labels, ARG BASE_IMAGE);
#   3. the compose stack's configuration resolves (`docker-compose config`,
#      Compose v2) and follows the rules (read-only, no capabilities,
#      health-checked services, documented variables only), its alert
#      rules and dashboard query only metrics the code exports, and
#      Prometheus scrapes every service where it serves /metrics;
#   4. the chart lints strictly (`helm lint --strict`, Helm v4's code)
#      for Kubernetes 1.30 and 1.37 with every values file, renders with
#      each (defaults + generated keys; external services + SASL_SSL with
#      secrets managed elsewhere; chart-made secrets with inline SASL
#      properties), and every rendered manifest validates strictly against
#      the Kubernetes 1.30 and 1.37 schemas, lints as YAML and passes the
#      policy (non-root, read-only root filesystem, no privilege
#      escalation, capabilities dropped, seccomp, requests and limits,
#      probes on /health/live and /health/ready, PDB and HPA for the
#      router, NetworkPolicies admitting only each subgraph's callers,
#      only variables the README's Configuration tables list);
#   5. values.schema.json refuses values that break those rules, and the
#      policy catches a manifest that breaks them (the checks can fail);
#   6. optionally (DEPLOY_CHECKOV=1), checkov passes them;
#   7. the rendered workloads run: deploy/tools/run_rendered.py starts the
#      migration Jobs and the five Deployments as local processes of the
#      shopgraph binary with exactly the rendered env, secrets and
#      ConfigMap (on databases it makes on the test servers), then checks
#      every probe and metrics endpoint and a signed request path through
#      the router. Needs the binary (built as schema/check.sh does) and
#      the PostgreSQL and MariaDB of tests/run.sh (TEST_POSTGRES_URL,
#      TEST_MARIADB_URL as there); SHOPGRAPH_BIN names a built binary,
#      DEPLOY_CHECK_RUN=0 skips the step.
#
# Not checked here: building the image and `docker compose up` (that is
# deploy/compose/ci/run.sh, the next step of tests/run.sh), a live cluster
# (see README "Deploying").
set -euo pipefail
cd "$(dirname "$0")/.."

chart=deploy/helm/shopgraph

# Tools: pinned PyPI packages in a virtualenv kept between runs.
tools=$(deploy/tools/venv.sh)
py="$tools/bin/python"
kube_versions=(1.30.0 1.37.0)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The chart's supergraph (the ConfigMap is compared after rendering).
if [ "$(readlink -f "$chart/files/supergraph.graphql")" != "$(readlink -f schema/supergraph.graphql)" ]; then
    echo "$chart/files/supergraph.graphql must be a link to schema/supergraph.graphql"
    exit 1
fi

# 2. The Dockerfile.
"$tools/bin/hadolint" --config deploy/hadolint.yaml Dockerfile
"$py" deploy/tools/policy.py dockerfile Dockerfile
sh -n deploy/docker/healthcheck.sh
echo "Dockerfile: ok (hadolint, image rules)"

# 3. The compose stack. Its secrets are files secrets.sh makes; the
# configuration resolves without them.
"$tools/bin/yamllint" --strict -c deploy/yamllint.yaml \
    deploy/compose deploy/yamllint.yaml deploy/hadolint.yaml \
    "$chart/Chart.yaml" "$chart/values.yaml" "$chart/ci"
"$tools/bin/docker-compose" --project-directory deploy/compose -f deploy/compose/compose.yaml config > "$work/compose.yaml"
"$py" deploy/tools/policy.py compose "$work/compose.yaml" --observability deploy/compose/config
echo "compose: ok (docker-compose config, yamllint, rules; alerts and dashboard query metrics the code exports, Prometheus scrapes every service on its metrics port)"

# 4. The chart, with three sets of values.
openssl genpkey -algorithm ed25519 -out "$work/hop.key" 2>/dev/null
openssl pkey -in "$work/hop.key" -pubout -out "$work/hop.pub"
openssl rand -base64 48 | tr -d '\n' > "$work/jwt-secret"
keys=(--set-file "hop.signingKey=$work/hop.key" --set-file "hop.trustedKeys=$work/hop.pub"
      --set-file "auth.jwtSecret=$work/jwt-secret")

render_and_validate() {
    local label=$1 policy_flags=$2
    shift 2
    for version in "${kube_versions[@]}"; do
        "$py" deploy/tools/helm_offline.py lint "$chart" --kube-version "v$version" "$@"
    done
    "$py" deploy/tools/helm_offline.py template "$chart" --out "$work/$label.yaml" "$@"
    "$tools/bin/yamllint" --strict -c deploy/yamllint-rendered.yaml "$work/$label.yaml"
    for version in "${kube_versions[@]}"; do
        # --strict: unknown fields are errors. The ServiceMonitor (a CRD)
        # has no bundled schema: a warning, and the policy checks it.
        "$tools/bin/kubernetes-validate" --strict --quiet -k "$version" "$work/$label.yaml"
    done
    # shellcheck disable=SC2086
    "$py" deploy/tools/policy.py manifests "$work/$label.yaml" $policy_flags
    echo "chart ($label): ok (helm lint --strict for ${kube_versions[*]}, rendered, kubernetes-validate --strict for ${kube_versions[*]}, yamllint, rules)"
}
render_and_validate defaults --network-policy "${keys[@]}"
"$py" - "$work/defaults.yaml" <<'PY'
import sys, yaml
maps = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap"]
rendered = maps[0]["data"]["supergraph.graphql"] if maps else None
if rendered != open("schema/supergraph.graphql").read().rstrip("\n"):
    sys.exit("the rendered supergraph ConfigMap differs from schema/supergraph.graphql")
print("chart supergraph: ok, the ConfigMap carries schema/supergraph.graphql")
PY
render_and_validate external-tls --network-policy -f "$chart/ci/external-tls-values.yaml"
render_and_validate inline-sasl "" -f "$chart/ci/inline-sasl-values.yaml" "${keys[@]}"

# 5. The checks refuse what they should.
refuse() {
    local what=$1
    shift
    if "$py" deploy/tools/helm_offline.py template "$chart" --out "$work/refused.yaml" "$@" > "$work/refused.log" 2>&1; then
        echo "the chart rendered values it must refuse: $what"
        exit 1
    fi
}
printf 'securityContext:\n  readOnlyRootFilesystem: false\n  allowPrivilegeEscalation: false\n  runAsNonRoot: true\n  capabilities: {drop: [ALL]}\n' > "$work/v1.yaml"
refuse "a writable root filesystem" -f "$work/v1.yaml" "${keys[@]}"
printf 'auth:\n  jwtSecret: too-short\n' > "$work/v2.yaml"
refuse "a JWT secret under 32 bytes" -f "$work/v2.yaml" "${keys[@]:0:4}"
printf 'router:\n  resources:\n    limits: null\n' > "$work/v3.yaml"
refuse "a router without limits" -f "$work/v3.yaml" "${keys[@]}"
printf 'externalServices:\n  kafka:\n    clientProperties:\n      sasl.jaas.config: "a,b"\n' > "$work/v4.yaml"
refuse "a Kafka property value with a comma" -f "$work/v4.yaml" "${keys[@]}"
refuse "no hop keys and no JWT secret"
grep -q "auth.jwtSecret" "$work/refused.log" || { echo "the chart's refusal does not name auth.jwtSecret:"; cat "$work/refused.log"; exit 1; }
sed -e 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' \
    -e 's#path: /health/ready#path: /health#' \
    -e 's/name: HOP_SIGNATURE_TTL/name: HOP_SIGNATURE_TIMEOUT/' \
    "$work/defaults.yaml" > "$work/broken.yaml"
if "$py" deploy/tools/policy.py manifests "$work/broken.yaml" --network-policy > "$work/policy.log"; then
    echo "the policy passed a manifest with a writable root, a wrong probe and an unknown variable"
    exit 1
fi
for expected in "readOnlyRootFilesystem is not true" "readinessProbe is not GET /health/ready" "sets HOP_SIGNATURE_TIMEOUT"; do
    grep -q "$expected" "$work/policy.log" || { echo "the policy missed: $expected"; cat "$work/policy.log"; exit 1; }
done
echo "refusals: ok (schema and policy catch broken values and manifests)"

# 6. Optional: checkov over the Dockerfile and the rendered manifests.
# Skipped, by design: CKV_K8S_15 (pull policy Always: a values choice),
# CKV_K8S_21 (namespace: set by `helm install -n`), CKV_K8S_35 (secrets as
# env: DATABASE_URL, JWT_SECRET and KAFKA_CLIENT_PROPERTIES are read from
# the environment only; the hop keys are files), CKV_K8S_43 (digests: a
# values choice), CKV_DOCKER_7 (FROM ${BASE_IMAGE}: the tag is an ARG).
if [ "${DEPLOY_CHECKOV:-0}" = 1 ]; then
    checkov_tools="${DEPLOY_CHECKOV_DIR:-/var/tmp/shopgraph-deploy-checkov}"
    if [ ! -x "$checkov_tools/bin/checkov" ]; then
        python3 -m venv "$checkov_tools"
        "$checkov_tools/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements-checkov.txt
    fi
    mkdir -p "$work/checkov"
    cp "$work"/defaults.yaml "$work"/external-tls.yaml "$work"/inline-sasl.yaml "$work/checkov/"
    "$checkov_tools/bin/checkov" --quiet --compact --skip-download -d "$work/checkov" --framework kubernetes \
        --skip-check CKV_K8S_15,CKV_K8S_21,CKV_K8S_35,CKV_K8S_43
    "$checkov_tools/bin/checkov" --quiet --compact --skip-download -f Dockerfile --framework dockerfile \
        --skip-check CKV_DOCKER_7
    echo "checkov: ok"
fi

# 7. The rendered workloads, run.
if [ "${DEPLOY_CHECK_RUN:-1}" = 0 ]; then
    echo "rendered workloads: not run (DEPLOY_CHECK_RUN=0)"
    exit 0
fi
# SHOPGRAPH_BIN: a binary built already (else cargo builds it, a no-op
# after schema/check.sh in tests/run.sh).
if [ -z "${SHOPGRAPH_BIN:-}" ]; then
    cargo build --quiet --locked --bin shopgraph
    SHOPGRAPH_BIN="${CARGO_TARGET_DIR:-target}/debug/shopgraph"
fi
"$py" deploy/tools/run_rendered.py "$chart" --bin "$SHOPGRAPH_BIN"
echo "rendered workloads: ok (migrations, five services, probes, metrics, signed requests through the router)"
