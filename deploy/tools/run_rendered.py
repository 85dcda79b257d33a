#!/usr/bin/env python3
"""Runs the chart's rendered workloads as local processes, to prove the
wiring (deploy/check.sh, when a shopgraph binary and the test databases
are at hand).

No cluster can run here, so this does what the kubelet would with the
manifests, minus the containers: it renders the chart with fresh keys,
local PostgreSQL and MariaDB databases made for the run and free ports,
writes each pod's Secret and ConfigMap volumes into a directory, resolves
every env entry (values and secretKeyRefs) exactly as rendered, and runs
each container's args with the binary — first the migration Jobs, to
completion, then every Deployment. The only rewrites are the cluster's
Service names (to 127.0.0.1) and volume mount paths (to the directories).
Then, through the router: an admin creates a product, a user adds it to
the basket (router → basket → product, all signed with the chart's hop
keys), reads fields of all four subgraphs and checks out (payment →
basket and product); every probe path and
metrics port answers. Kafka is left out (in-process bus): none runs here.

    run_rendered.py CHART --bin PATH [--postgres URL] [--mariadb URL]

Every process it started is stopped by PID; the databases are dropped.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import helm_python as helm
import yaml
from helm_offline import quiet_symlink_notes

SUBGRAPHS = ["product", "basket", "payment", "notification"]


def free_ports(count):
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def http(url, body=None, token=None, timeout=5):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, ""


class Run:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="shopgraph-deploy-run-")
        self.processes = []
        self.databases = []
        self.tag = f"sg_deploy_{os.getpid()}"

    # --- databases -------------------------------------------------------
    def make_databases(self):
        urls = {}
        for sub in ["product", "basket", "notification"]:
            name = f"{self.tag}_{sub}"
            subprocess.run(["psql", self.args.postgres, "-qAtc", f'CREATE DATABASE "{name}"'], check=True)
            self.databases.append(("pg", name))
            urls[sub] = re.sub(r"/[^/]*$", f"/{name}", self.args.postgres)
        name = f"{self.tag}_payment"
        self.mysql(f"CREATE DATABASE `{name}`")
        self.databases.append(("my", name))
        urls["payment"] = re.sub(r"/[^/]*$", f"/{name}", self.args.mariadb)
        return urls

    def mysql(self, statement):
        m = re.match(r"mysql://([^:@/]+)(?::([^@/]*))?@([^:/]+)(?::(\d+))?/", self.args.mariadb)
        if not m:
            sys.exit(f"cannot read the MariaDB URL {self.args.mariadb}")
        user, password, host, port = m.groups()
        cmd = ["mysql", "--protocol=tcp", "-h", host, "-P", port or "3306", "-u", user, "-e", statement]
        env = dict(os.environ, MYSQL_PWD=password or "")
        subprocess.run(cmd, check=True, env=env)

    def drop_databases(self):
        for kind, name in self.databases:
            if kind == "pg":
                subprocess.run(["psql", self.args.postgres, "-qAtc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                               check=False)
            else:
                self.mysql(f"DROP DATABASE IF EXISTS `{name}`")

    # --- rendering -------------------------------------------------------
    def render(self, urls, ports):
        key = os.path.join(self.dir, "hop.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True,
                       stderr=subprocess.DEVNULL)
        public = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True,
                                capture_output=True, text=True).stdout
        self.jwt_secret = base64.b64encode(os.urandom(48)).decode()
        port = iter(ports)
        values = {
            "auth": {"jwtSecret": self.jwt_secret},
            "hop": {"signingKey": open(key, encoding="utf-8").read(), "trustedKeys": public},
            "logLevel": "warn",
            "externalServices": {
                "postgresql": {"productUrl": urls["product"], "basketUrl": urls["basket"],
                               "notificationUrl": urls["notification"]},
                "mariadb": {"paymentUrl": urls["payment"]},
                "redis": {"url": ""},
                "kafka": {"brokers": ""},
            },
            "router": {"port": next(port), "adminPort": next(port)},
            "subgraphs": {sub: {"port": next(port), "metricsPort": next(port)} for sub in SUBGRAPHS},
        }
        with quiet_symlink_notes():
            chart = helm.Chart.load(self.args.chart)
            manifests = chart.render(values, name="shop", namespace="shop", is_install=True)
        docs = []
        for path, text in manifests.items():
            if path.endswith("NOTES.txt"):
                continue
            docs.extend(d for d in yaml.safe_load_all(text) if d)
        return docs, values

    # --- processes -------------------------------------------------------
    def pod_env(self, doc, container, objects):
        """The container's environment and argv as the kubelet would give them."""
        spec = doc["spec"]["template"]["spec"]
        pod_dir = os.path.join(self.dir, doc["metadata"]["name"])
        mounts = {}
        for volume in spec.get("volumes", []):
            target = os.path.join(pod_dir, volume["name"])
            os.makedirs(target, exist_ok=True)
            if "secret" in volume:
                data = objects[("Secret", volume["secret"]["secretName"])]["data"]
                items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    with open(os.path.join(target, item["path"]), "wb") as f:
                        f.write(base64.b64decode(data[item["key"]]))
            elif "configMap" in volume:
                data = objects[("ConfigMap", volume["configMap"]["name"])]["data"]
                for k, v in data.items():
                    with open(os.path.join(target, k), "w", encoding="utf-8") as f:
                        f.write(v)
        for mount in container.get("volumeMounts", []):
            mounts[mount["mountPath"]] = os.path.join(pod_dir, mount["name"])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for entry in container.get("env", []):
            if "value" in entry:
                value = str(entry["value"])
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                secret = objects.get(("Secret", ref["name"]), {}).get("data", {})
                if ref["key"] not in secret:
                    if ref.get("optional"):
                        continue
                    sys.exit(f"{doc['metadata']['name']}: secret {ref['name']} has no key {ref['key']}")
                value = base64.b64decode(secret[ref["key"]]).decode()
            value = re.sub(r"\bshop-shopgraph-(router|product|basket|payment|notification)\b", "127.0.0.1", value)
            for path in sorted(mounts, key=len, reverse=True):
                if value.startswith(path + "/"):
                    value = mounts[path] + value[len(path):]
                    break
            env[entry["name"]] = value
        return env, container["args"]

    def start(self, name, argv, env):
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        process = subprocess.Popen([self.args.bin] + argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=self.dir, start_new_session=True)
        self.processes.append((name, process))
        return process

    def stop_all(self):
        for _, process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def fail(self, message):
        print(f"  run: FAILED: {message}")
        for name, _ in self.processes:
            path = os.path.join(self.dir, f"{name}.log")
            with open(path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-1500:]
            print(f"  --- {name} log (tail) ---\n{tail}")
        raise SystemExit(1)

    def main(self):
        urls = self.make_databases()
        docs, values = self.render(urls, free_ports(2 + 2 * len(SUBGRAPHS)))
        objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        jobs = [d for d in docs if d["kind"] == "Job"]
        deployments = [d for d in docs if d["kind"] == "Deployment"]
        if len(jobs) != 4 or len(deployments) != 5:
            self.fail(f"expected 4 migration Jobs and 5 Deployments, rendered {len(jobs)} and {len(deployments)}")
        for job in jobs:
            container = job["spec"]["template"]["spec"]["containers"][0]
            env, argv = self.pod_env(job, container, objects)
            process = self.start(job["metadata"]["name"], argv, env)
            if process.wait(timeout=120) != 0:
                self.fail(f"{job['metadata']['name']} exited {process.returncode}")
        print("  run: migration Jobs completed (shopgraph migrate, env as rendered)")

        probes = []
        for deployment in sorted(deployments, key=lambda d: "router" in d["metadata"]["name"]):
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            env, argv = self.pod_env(deployment, container, objects)
            self.start(deployment["metadata"]["name"], argv, env)
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe"):
                get = container[probe]["httpGet"]
                probes.append((deployment["metadata"]["name"], f"http://127.0.0.1:{ports[get['port']]}{get['path']}"))
            metrics = ports.get("metrics") or ports.get("admin")
            probes.append((deployment["metadata"]["name"], f"http://127.0.0.1:{metrics}/metrics"))

        deadline = time.monotonic() + 60
        pending = list(probes)
        while pending:
            for name, process in self.processes[len(jobs):]:
                if process.poll() is not None:
                    self.fail(f"{name} exited {process.returncode}")
            pending = [(n, url) for n, url in pending if http(url)[0] != 200]
            if pending and time.monotonic() > deadline:
                self.fail(f"not answering 200: {pending}")
            time.sleep(0.3)
        print(f"  run: 5 Deployments up; {len(probes)} probe and metrics endpoints answer 200")

        router = f"http://127.0.0.1:{values['router']['port']}/graphql"
        admin = self.token("deploy-admin", admin=True)
        user = self.token("deploy-user", admin=False)
        created = self.graphql(router, admin, 'mutation { createProduct(input: {name: "Deploy check", price: "9.99", '
                                              'category: "deploy", stockQuantity: 5}) { id } }')
        product_id = created["createProduct"]["id"]
        added = self.graphql(router, user, "mutation($id: ID!) { addBasketItem(productId: $id, quantity: 2) "
                                           "{ itemCount } }", {"id": product_id})
        if added["addBasketItem"]["itemCount"] != 2:
            self.fail(f"addBasketItem answered {added}")
        everything = self.graphql(router, user, "{ me { id basket { itemCount } unreadNotificationCount "
                                                "payments(first: 1) { __typename } } products(first: 5) { __typename } }")
        if everything["me"]["basket"]["itemCount"] != 2:
            self.fail(f"me answered {everything}")
        paid = self.graphql(router, user, 'mutation { checkout(input: { idempotencyKey: "deploy-check", method: CARD, '
                                          'card: { number: "4242424242424242", expMonth: 1, expYear: 2040, cvc: "123" } }) '
                                          '{ status amount { amount } } }')
        if paid["checkout"]["status"] != "COMPLETED":
            self.fail(f"checkout answered {paid}")
        print("  run: through the router: createProduct (admin), addBasketItem (basket → product), "
              "checkout (payment → basket and product), a query over all four subgraphs: ok")

    def token(self, user, admin):
        argv = [self.args.bin, "token", "--user", user, "--ttl", "10m"] + (["--admin"] if admin else [])
        env = dict(os.environ, JWT_SECRET=self.jwt_secret)
        return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout.strip()

    def graphql(self, url, token, query, variables=None):
        status, body = http(url, {"query": query, "variables": variables or {}}, token=token, timeout=15)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        if status != 200 or answer.get("errors") or not answer.get("data"):
            self.fail(f"{query!r} answered {status}: {body[:500]}")
        return answer["data"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("chart")
    parser.add_argument("--bin", required=True)
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--mariadb", default=os.environ.get("TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/mysql"))
    run = Run(parser.parse_args())
    # A stopped check still stops its processes and drops its databases.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: sys.exit(128 + number))
    try:
        run.main()
    finally:
        run.stop_all()
        run.drop_databases()
        shutil.rmtree(run.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
