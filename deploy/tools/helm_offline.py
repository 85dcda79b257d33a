#!/usr/bin/env python3
"""`helm lint` and `helm template` without a helm binary, for deploy/check.sh.

Uses helm-python-sdk, which binds Helm v4's own Go code (no cluster, no
network). `lint` fails on any warning or error (strict); `template` writes
the rendered manifests, one YAML stream, to --out.

    helm_offline.py lint CHART --kube-version v1.30.0 [-f VALUES]... [--set-file K=PATH]...
    helm_offline.py template CHART --out FILE [-f VALUES]... [--set-file K=PATH]...
"""
import argparse
import contextlib
import os
import sys
import tempfile

import helm_python as helm


@contextlib.contextmanager
def quiet_symlink_notes():
    """Helm's Go code logs an INFO line to stderr each time it reads the
    chart's files/supergraph.graphql link; keep every other line."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if "found symbolic link in path" not in line:
                    print(line, file=sys.stderr)


def merged_values(args):
    """The -f files, then the --set-file entries, merged as helm does."""
    values = {}
    for path in args.values:
        with open(path, encoding="utf-8") as f:
            deep_merge(values, helm.values_from_yaml(f.read()))
    for expression in args.set_file:
        deep_merge(values, helm.parse_set_file(expression))
    return values


def deep_merge(into, other):
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["lint", "template"])
    parser.add_argument("chart")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--set-file", action="append", default=[])
    parser.add_argument("--kube-version", default="v1.30.0")
    parser.add_argument("--name", default="shop")
    parser.add_argument("--namespace", default="shop")
    parser.add_argument("--out")
    args = parser.parse_args()
    values = merged_values(args)
    with quiet_symlink_notes():
        run(args, values)


def run(args, values):
    if args.command == "lint":
        report = helm.lint(args.chart, values, strict=True, namespace=args.namespace,
                           kube_version=args.kube_version)
        problems = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
        for message in problems:
            print(f"  lint: [{message.get('severity')}] {message.get('path')}: {message.get('error')}")
        for error in report.get("errors") or []:
            print(f"  lint error: {error}")
        if problems or report.get("errors"):
            sys.exit(1)
        return

    chart = helm.Chart.load(args.chart)
    chart.validate_schema(values)
    manifests = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for path in sorted(manifests):
            text = manifests[path].strip()
            if not text or path.endswith("NOTES.txt"):
                continue
            out.write(f"---\n# Source: {path}\n{text}\n")


if __name__ == "__main__":
    main()
