#!/usr/bin/env python3
"""The deployment rules deploy/check.sh enforces beyond schema validity.

    policy.py manifests RENDERED.yaml [--network-policy]
    policy.py compose CONFIG.yaml
    policy.py dockerfile Dockerfile

Kubernetes manifests: every workload runs non-root on a read-only root
filesystem without privilege escalation or capabilities, under the
RuntimeDefault seccomp profile, with CPU and memory requests and limits;
every long-running container has liveness and readiness probes on the
services' health endpoints; the router has its PodDisruptionBudget and
autoscaler; each subgraph accepts only its callers (router, and basket or
payment where they call it). Everywhere: every environment variable given
to a shopgraph process is one the README's "Configuration" tables list
(the tables tests/api/config_reference.rs keeps honest).

Prints each violation and exits 1 when there is one.
"""
import argparse
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUBGRAPHS = ["product", "basket", "payment", "notification"]
# Who calls whom (README "The signed hop"): the NetworkPolicy must let
# exactly these in.
CALLERS = {
    "product": {"router", "basket", "payment"},
    "basket": {"router", "payment"},
    "payment": {"router"},
    "notification": {"router"},
}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def documented_variables():
    """Names and name patterns from the README's Configuration tables."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Configuration")
    end = text.index("\n## ", start + 1)
    names, patterns = set(), []
    for line in text[start:end].splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for name in re.findall(r"`([^`]+)`", first_cell):
            if "<" in name:
                patterns.append(re.compile("^" + re.sub(r"<[A-Z]+>", "[A-Z][A-Z0-9_]*", name) + "$"))
            elif re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                names.add(name)
    if len(names) < 50:
        sys.exit(f"policy.py: found only {len(names)} variables in README's Configuration tables")
    return names, patterns


DOCUMENTED, PATTERNS = documented_variables()


def check_variable(where, name):
    if name in DOCUMENTED or any(p.match(name) for p in PATTERNS):
        return
    problem(where, f"sets {name}, which README's Configuration tables do not list")


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_spec(doc):
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def check_container(where, container, long_running):
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not (resources.get(kind) or {}).get(resource):
                problem(where, f"no {resource} {kind[:-1]}")
    sc = container.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problem(where, "readOnlyRootFilesystem is not true")
    if sc.get("privileged"):
        problem(where, "privileged")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problem(where, "capabilities do not drop ALL")
    image = container.get("image", "")
    if not image or image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        problem(where, f"image {image!r} has no fixed tag")
    for env in container.get("env") or []:
        check_variable(where, env["name"])
    if long_running:
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        if "http" not in ports:
            problem(where, "no container port named http")
        for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
            get = (container.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") not in ("http", ports.get("http")):
                problem(where, f"{probe} is not GET {path} on the http port")


def check_manifests(path, network_policy):
    docs = load_all(path)
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    workloads = 0
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        workloads += 1
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            problem(name, "pod runAsNonRoot is not true")
        if (psc.get("runAsUser") or 1) == 0:
            problem(name, "pod runs as uid 0")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problem(name, "pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problem(name, "mounts a service account token it does not need")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problem(name, "shares a host namespace")
        for container in spec.get("initContainers", []) + spec["containers"]:
            check_container(f"{name}/{container['name']}", container,
                            long_running=doc["kind"] == "Deployment")

    if workloads == 0:
        problem(path, "no workloads rendered")
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    components = {d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component"): d
                  for d in deployments.values()}
    for component in ["router"] + SUBGRAPHS:
        if component not in components:
            problem(path, f"no Deployment for {component}")
    router = components.get("router")
    if router:
        router_name = router["metadata"]["name"]
        if not any(p["spec"]["selector"]["matchLabels"] == router["spec"]["selector"]["matchLabels"]
                   for p in by_kind.get("PodDisruptionBudget", [])):
            problem(router_name, "no PodDisruptionBudget")
        hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", [])
                if h["spec"]["scaleTargetRef"]["name"] == router_name]
        if not hpas and "replicas" not in router["spec"]:
            problem(router_name, "neither an autoscaler nor a replica count")
        if hpas and "replicas" in router["spec"]:
            problem(router_name, "has both an autoscaler and a fixed replica count")
    services = {s["spec"]["selector"].get("app.kubernetes.io/component") for s in by_kind.get("Service", [])}
    for component in ["router"] + SUBGRAPHS:
        if component not in services:
            problem(path, f"no Service for {component}")

    if network_policy:
        policies = {p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component"): p
                    for p in by_kind.get("NetworkPolicy", [])}
        for subgraph in SUBGRAPHS:
            policy = policies.get(subgraph)
            if not policy:
                problem(path, f"no NetworkPolicy for {subgraph}")
                continue
            api_rules = [r for r in policy["spec"].get("ingress", [])
                         if any(p.get("port") == "http" for p in r.get("ports", []))]
            allowed = set()
            for rule in api_rules:
                if not rule.get("from"):
                    problem(subgraph, "NetworkPolicy opens the API port to everyone")
                for peer in rule.get("from", []):
                    if set(peer) != {"podSelector"}:
                        problem(subgraph, f"NetworkPolicy admits a peer beyond the release's pods: {peer}")
                    allowed.add(peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component"))
            if allowed != CALLERS[subgraph]:
                problem(subgraph, f"NetworkPolicy admits {sorted(map(str, allowed))}, expected {sorted(CALLERS[subgraph])}")

    # A ServiceMonitor (no bundled schema: a CRD) selects Services that
    # have the port it scrapes: every router and subgraph metrics port.
    for monitor in by_kind.get("ServiceMonitor", []):
        selector = monitor["spec"]["selector"]["matchLabels"]
        ports = {e.get("port") for e in monitor["spec"].get("endpoints", [])}
        selected = [s for s in by_kind.get("Service", [])
                    if selector.items() <= (s["metadata"].get("labels") or {}).items()]
        covered = {s["spec"]["selector"].get("app.kubernetes.io/component") for s in selected
                   if ports & {p.get("name") for p in s["spec"]["ports"]}}
        if covered != {"router"} | set(SUBGRAPHS):
            problem(f"ServiceMonitor/{monitor['metadata']['name']}",
                    f"scrapes metrics of {sorted(map(str, covered))}, not of the router and every subgraph")

    # Every Secret and ConfigMap a workload reads is rendered here, unless
    # it is one the values name as managed elsewhere (existing*).
    rendered = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                note_reference(rendered, doc, "Secret", volume["secret"]["secretName"])
            if "configMap" in volume:
                note_reference(rendered, doc, "ConfigMap", volume["configMap"]["name"])
        for container in spec["containers"]:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    note_reference(rendered, doc, "Secret", ref["name"])


EXTERNAL_REFERENCES = set()


def note_reference(rendered, doc, kind, name):
    if (kind, name) not in rendered:
        EXTERNAL_REFERENCES.add(f"{kind}/{name}")


def check_compose(path):
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    shop = 0
    for name, service in config["services"].items():
        image = service.get("image", "")
        if "shopgraph" not in image:
            continue
        shop += 1
        where = f"compose service {name}"
        for key in (service.get("environment") or {}):
            check_variable(where, key)
        if service.get("read_only") is not True:
            problem(where, "root filesystem is not read-only")
        if "ALL" not in (service.get("cap_drop") or []):
            problem(where, "does not drop all capabilities")
        if service.get("privileged"):
            problem(where, "privileged")
        if service.get("user") in ("0", "root", "0:0"):
            problem(where, "runs as root")
        migrating = (service.get("command") or [None])[0] == "migrate"
        if not migrating and (service.get("healthcheck") or {}).get("disable"):
            problem(where, "healthcheck disabled")
    if shop < 8:
        problem(path, f"only {shop} shopgraph services (two routers, five subgraph processes, four migrations expected)")


def check_dockerfile(path):
    text = pathlib.Path(path).read_text(encoding="utf-8")
    final = text[text.rindex("\nFROM "):]
    for needle, message in (
        ("\nUSER ", "the final stage sets no USER"),
        ("\nHEALTHCHECK ", "no HEALTHCHECK"),
        ("tini", "no init (tini)"),
        ("org.opencontainers.image.", "no OCI labels"),
    ):
        if needle not in final:
            problem(path, message)
    if "ARG BASE_IMAGE" not in text:
        problem(path, "no ARG BASE_IMAGE")
    user = re.findall(r"\nUSER\s+(\S+)", final)
    if user and user[-1].split(":")[0] in ("0", "root"):
        problem(path, "the final stage runs as root")
    for block in re.findall(r"\nENV\s+((?:.*\\\n)*.*)", final):
        for name in re.findall(r"([A-Z][A-Z0-9_]*)=", block):
            check_variable(path, name)


def metric_names_in_code():
    """Every metric name the Rust code registers (a string literal in a
    metrics macro call)."""
    names = set()
    for path in ROOT.glob("**/*.rs"):
        if "target" in path.parts or "node_modules" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        names.update(re.findall(r'metrics::(?:counter|gauge|histogram)!\(\s*"([a-z_]+)"', text))
        names.update(re.findall(r'\.name\("([a-z_]+)"\)', text))
    return names


def check_observability(config_dir):
    """The alert rules and the dashboard query metrics the code exports,
    and Prometheus scrapes the compose services on their metrics ports."""
    config_dir = pathlib.Path(config_dir)
    known = metric_names_in_code()
    if len(known) < 20:
        problem(config_dir, f"found only {len(known)} metric names in the code")
    queries = []
    rules = yaml.safe_load((config_dir / "alerts.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            for key in ("alert", "expr", "labels", "annotations"):
                if key not in rule:
                    problem(f"alert {rule.get('alert')}", f"no {key}")
            queries.append((f"alert {rule.get('alert')}", rule.get("expr", "")))
    import json
    dashboard = json.loads((config_dir / "grafana/dashboards/shopgraph.json").read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r}", target["expr"]))
    for where, expr in queries:
        for name in re.findall(r"\b((?:router|events|event|graphql|subgraph|http)_[a-z_]+)\b", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if base not in known:
                problem(where, f"queries {name}, which no code exports")
    prometheus = yaml.safe_load((config_dir / "prometheus.yml").read_text(encoding="utf-8"))
    if "/etc/prometheus/alerts.yml" not in prometheus.get("rule_files", []):
        problem("prometheus.yml", "does not load the alert rules")
    return {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
            for job in prometheus["scrape_configs"]}


def check_scrape_targets(compose, targets):
    """Each scrape target is a compose service listening there."""
    expected = {"router": ("ADMIN_PORT", 4100), "product": ("PRODUCT_METRICS_PORT", 4101),
                "basket": ("BASKET_METRICS_PORT", 4102), "payment": ("PAYMENT_METRICS_PORT", 4103),
                "notification": ("NOTIFICATION_METRICS_PORT", 4104)}
    scraped = set()
    for job, hosts in targets.items():
        for target in hosts:
            host, port = target.rsplit(":", 1)
            service = compose["services"].get(host)
            if service is None:
                problem("prometheus.yml", f"scrapes {target}: no such compose service")
                continue
            command = service.get("command") or service.get("entrypoint") or []
            kind = next((k for k in expected if k in " ".join(command)), None)
            env = service.get("environment") or {}
            var, default = expected.get(kind, ("", 0))
            want = int(env.get(var, env.get("METRICS_PORT", default)))
            if int(port) != want:
                problem("prometheus.yml", f"scrapes {target}, but {host} serves metrics on {want}")
            host_var = "ADMIN_HOST" if kind == "router" else "METRICS_HOST"
            if env.get(host_var) != "0.0.0.0":
                problem(host, f"{host_var} is not 0.0.0.0: Prometheus cannot reach it")
            scraped.add(host)
    for name, service in compose["services"].items():
        command = " ".join(service.get("command") or service.get("entrypoint") or [])
        if "shopgraph" in service.get("image", "") and " serve " in f" {command} " and name not in scraped:
            problem("prometheus.yml", f"does not scrape {name}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["manifests", "compose", "dockerfile"])
    parser.add_argument("--observability", help="with compose: the stack's config directory")
    parser.add_argument("path")
    parser.add_argument("--network-policy", action="store_true")
    args = parser.parse_args()
    if args.what == "manifests":
        check_manifests(args.path, args.network_policy)
    elif args.what == "compose":
        check_compose(args.path)
        if args.observability:
            with open(args.path, encoding="utf-8") as f:
                compose = yaml.safe_load(f)
            check_scrape_targets(compose, check_observability(args.observability))
    else:
        check_dockerfile(args.path)
    for line in problems:
        print(f"  policy: {line}")
    if problems:
        sys.exit(1)
    extra = f" (managed outside the chart: {', '.join(sorted(EXTERNAL_REFERENCES))})" if EXTERNAL_REFERENCES else ""
    print(f"  policy: {args.path}: ok{extra}")


if __name__ == "__main__":
    main()
