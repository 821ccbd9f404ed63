#!/usr/bin/env python3
"""Secret detection, measured: a labelled corpus of real-looking credentials
from many providers and of look-alikes that are not secrets, scanned by
ai-review's deterministic checks and by detect-secrets (PyPI), side by side.

    pip install detect-secrets
    cargo build --release -p ai-review-executor
    python3 scripts/secret-bench.py [path/to/ai-review-executor]

The corpus is generated from a fixed seed, so every run scans the same lines.
Precision and recall are per line: a line is a positive if it holds a real
secret; a tool "flags" a line if it reports anything on it.
"""
import json
import os
import random
import string
import subprocess
import sys
import tempfile

rng = random.Random(20261124)
UP, LOW, DIG = string.ascii_uppercase, string.ascii_lowercase, string.digits
ALNUM = UP + LOW + DIG


def rand(chars, n):
    return "".join(rng.choice(chars) for _ in range(n))


POSITIVES = {
    "aws": lambda: "AKIA" + rand(UP + DIG, 16),
    "aws-sts": lambda: "ASIA" + rand(UP + DIG, 16),
    "github": lambda: rng.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + rand(ALNUM, 36),
    "github-fine": lambda: "github_pat_" + rand(ALNUM + "_", 82),
    "gitlab": lambda: "glpat-" + rand(ALNUM + "-_", 20),
    "slack-bot": lambda: "xoxb-" + rand(DIG, 12) + "-" + rand(DIG, 12) + "-" + rand(ALNUM, 24),
    "slack-webhook": lambda: "https://hooks.slack.com/services/T" + rand(UP + DIG, 10) + "/B" + rand(UP + DIG, 10) + "/" + rand(ALNUM, 24),
    "stripe": lambda: "sk_live_" + rand(ALNUM, 24),
    "google": lambda: "AIza" + rand(ALNUM + "-_", 35),
    "openai": lambda: "sk-proj-" + rand(ALNUM, 24) + "T3BlbkFJ" + rand(ALNUM, 24),
    "anthropic": lambda: "sk-ant-api03-" + rand(ALNUM + "-_", 93) + "AA",
    "npm": lambda: "npm_" + rand(ALNUM, 36),
    "sendgrid": lambda: "SG." + rand(ALNUM + "-_", 22) + "." + rand(ALNUM + "-_", 43),
    "private-key": lambda: "-----BEGIN " + rng.choice(["RSA ", "EC ", "OPENSSH ", ""]) + "PRIVATE KEY-----",
    "ai-review": lambda: "air_" + rand(ALNUM, 40),
}

NEGATIVES = [
    lambda: "AKIAIOSFODNN7EXAMPLE",
    lambda: "AKIA" + "X" * 16,
    lambda: "ghp_" + rand(ALNUM, 10),
    lambda: "sk_test_" + rand(ALNUM, 24),
    lambda: rand("0123456789abcdef", 40),  # git SHA
    lambda: rand("0123456789abcdef", 64),  # sha256
    lambda: "%08x-%04x-%04x-%04x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48)),
    lambda: "your_api_key_here",
    lambda: "glpat-xxxxxxxxxxxxxxxxxxxx",
    lambda: "AIzaSy" + "EXAMPLE" * 4 + "1234",
    lambda: "-----BEGIN PUBLIC KEY-----",
    lambda: "-----BEGIN CERTIFICATE-----",
    lambda: rand(ALNUM + "+/", 44) + "=",  # base64 blob
    lambda: "password = os.environ['DB_PASSWORD']",
    lambda: "api_key = config.get('api_key')",
    lambda: "sk-" + rand(ALNUM, 12),
    lambda: "npm_" + rand(ALNUM, 10),
]

TEMPLATES = [
    'KEY = "{}"',
    "token: {}",
    "export SECRET={}",
    '    "apiKey": "{}",',
    "curl -H 'Authorization: Bearer {}' https://api",
    "{}",
]


def corpus():
    lines, labels = [], []
    for kind, make in POSITIVES.items():
        for _ in range(20):
            secret = make()
            tpl = "{}" if kind == "private-key" else rng.choice(TEMPLATES)
            lines.append(tpl.format(secret))
            labels.append(kind)
    for make in NEGATIVES:
        for _ in range(20):
            lines.append(rng.choice(TEMPLATES).format(make()))
            labels.append(None)
    order = list(range(len(lines)))
    rng.shuffle(order)
    return [lines[i] for i in order], [labels[i] for i in order]


def ours(exe, path):
    out = subprocess.run([exe, "scan", path], check=True, capture_output=True, text=True).stdout
    return {json.loads(l)["line"] for l in out.splitlines() if l.strip()}


def detect_secrets(path):
    # detect-secrets reports paths relative to, and only scans under, its cwd.
    d, name = os.path.split(path)
    out = subprocess.run(["detect-secrets", "scan", "--all-files", name], cwd=d, check=True, capture_output=True, text=True).stdout
    results = json.loads(out)["results"]
    return {r["line_number"] for rs in results.values() for r in rs}


def score(flagged, labels):
    tp = sum(1 for i, l in enumerate(labels, 1) if l and i in flagged)
    fp = sum(1 for i, l in enumerate(labels, 1) if not l and i in flagged)
    fn = sum(1 for i, l in enumerate(labels, 1) if l and i not in flagged)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return tp, fp, fn, precision, recall


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "target/release/ai-review-executor"
    lines, labels = corpus()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    pos = sum(1 for l in labels if l)
    print(f"corpus: {len(lines)} lines, {pos} with a secret ({len(POSITIVES)} providers), {len(lines) - pos} look-alikes")
    print("| tool | TP | FP | FN | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, flagged in [("ai-review", ours(exe, path)), ("detect-secrets", detect_secrets(path))]:
        tp, fp, fn, p, r = score(flagged, labels)
        print(f"| {name} | {tp} | {fp} | {fn} | {p:.3f} | {r:.3f} |")


if __name__ == "__main__":
    main()
