#!/usr/bin/env python3
"""The runs and the table of `scripts/peers` (which installs the peers and builds ringnn
first; see there). Standard library only.

Every repeat runs each engine once per model, the order rotated from one repeat to the
next so that no engine always runs first or last on a machine whose speed drifts; the
table gives the median over the repeats. Each run's parsed figures go to runs.jsonl and
its whole output to logs/, both under --out.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ENGINES = ["ringnn-plain", "ringnn-a2b", "ringnn-fss", "crypten", "spu"]

# Training samples per run and model (batch 128, one epoch). Fewer for the slow peers'
# LeNet (CrypTen about 12 samples/s, SPU about 5 here): their throughput is steady after
# the first step. More for Plain, whose first steps would otherwise weigh. Test images are only there for the accuracy column's sanity.
SAMPLES = {
    "mlp": {"ringnn-plain": 60000, "ringnn-a2b": 6400, "ringnn-fss": 6400, "crypten": 6400,
            "spu": 6400},
    "lenet": {"ringnn-plain": 6400, "ringnn-a2b": 1280, "ringnn-fss": 1280, "crypten": 640,
              "spu": 256},
}
TEST = {
    "mlp": {"ringnn-plain": 1000, "ringnn-a2b": 1000, "ringnn-fss": 1000, "crypten": 1000,
            "spu": 1000},
    "lenet": {"ringnn-plain": 500, "ringnn-a2b": 500, "ringnn-fss": 500, "crypten": 200,
              "spu": 1000},
}
TIMEOUT_S = 1200


def command(a, engine, model):
    n, t = SAMPLES[model][engine], TEST[model][engine]
    common = ["--epochs", "1", "--train-limit", str(n), "--test-limit", str(t)]
    if engine == "ringnn-plain":
        # One thread, as each peer party has (Plain's bits do not depend on it).
        return [a.ringnn, "train", "--model", model, "--data", "mnist", "--data-dir", a.data,
                "--engine", "plain", "--exp", "pwl4", "--batch", "128", "--lr", "0.01",
                "--momentum", "0.9", "--threads", "1", "--json"] + common
    if engine.startswith("ringnn"):
        return [a.ringnn, "train", "--model", model, "--data", "mnist", "--data-dir", a.data,
                "--engine", "mpc", "--comparison", engine.split("-")[1], "--exp", "pwl4",
                "--batch", "128", "--lr", "0.01", "--momentum", "0.9", "--json"] + common
    peer_model = "secureml" if model == "mlp" else "lenet"
    mnist = os.path.join(a.data, "mnist")
    if engine == "crypten":
        return [os.path.join(a.envs, "crypten", "bin", "python"),
                os.path.join(a.peers, "crypten_mnist.py"), "--model", peer_model,
                "--threads", "1", "--convert", "direct", "--data-dir", mnist] + common
    return [os.path.join(a.envs, "spu", "bin", "python"),
            os.path.join(a.peers, "spu", "spu_mnist.py"), "--model", peer_model,
            "--data-dir", mnist, "--log-dir", os.path.join(a.out, "logs", "spu")] + common


def parse(engine, stdout):
    """The figures of one run from its output, or an error string."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    if engine.startswith("ringnn"):
        if not lines:
            return "no output"
        try:
            r = json.loads(lines[-1])
        except json.JSONDecodeError:
            return "last line is not ringnn's JSON result"
        if r.get("engine") == "plain":
            return {"samples_per_s": r["samples_per_sec"], "test_accuracy": r["test_accuracy"],
                    "train_samples": r["train_samples"]}
        steps = max(r["steps"], 1)
        batch = r["train_samples"] / steps
        return {
            "samples_per_s": r["samples_per_sec"],
            "online_samples_per_s": r["online_samples_per_sec"],
            # What one server sends plus what it receives (the other's sends), per sample.
            "bytes_per_sample": sum(r["bytes_per_step"]) / batch,
            # What each server receives from the dealer (test predictions' share included).
            "dealer_bytes_per_sample": sum(r["offline_bytes"]) / 2 / r["train_samples"],
            "rounds_per_step": r["rounds_per_step"],
            "test_accuracy": r["test_accuracy"],
            "train_samples": r["train_samples"],
        }
    res = [l for l in lines if l.startswith("RESULT ")]
    if not res:
        return "no RESULT line"
    r = json.loads(res[-1][len("RESULT "):])
    if "error" in r:
        return r["error"]
    per_party = r["train_bytes_per_sample_per_party"]
    out = {
        "samples_per_s": r["samples_per_s"],
        "bytes_per_sample": max(per_party),
        "test_accuracy": r["test_acc"],
        "train_samples": r["train_samples"],
    }
    if engine == "crypten":
        out["rounds_per_step"] = r["train_rounds_per_party"][0] / max(
            1, -(-r["train_samples"] // r["batch_size"]))
    else:
        out["rounds_per_step"] = max(r["train_send_actions_per_step_per_party"])
    return out


def text_of(b):
    """What a timed-out child wrote (bytes, str or None) as text."""
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def median(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, unit=""):
    if v is None:
        return "–"
    if unit == "B":
        return f"{v / 1e6:.2f} MB" if v >= 1e6 else f"{v / 1e3:.1f} KB"
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def table(runs, models, repeats):
    out = ["| model | engine | runs | samples/s all in (median; each) | online samples/s | "
           "bytes/sample/server, sent + received | dealer bytes/sample/server | rounds/step | "
           "test accuracy (%) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for model in models:
        best_peer = None
        for engine in [e for e in ENGINES if any(r["engine"] == e and r["model"] == model for r in runs)]:
            ok = [r for r in runs if r["model"] == model and r["engine"] == engine and "error" not in r]
            bad = [r for r in runs if r["model"] == model and r["engine"] == engine and "error" in r]
            sps = median(ok, "samples_per_s")
            if engine in ("crypten", "spu") and sps is not None:
                best_peer = max(best_peer or 0, sps)
            each = ", ".join(fmt(r["samples_per_s"]) for r in ok)
            acc = median(ok, "test_accuracy")
            out.append(
                f"| {model} | {engine} | {len(ok)}{f' ({len(bad)} failed)' if bad else ''} | "
                f"{fmt(sps)} ({each}) | {fmt(median(ok, 'online_samples_per_s'))} | "
                f"{fmt(median(ok, 'bytes_per_sample'), 'B')} | "
                f"{fmt(median(ok, 'dealer_bytes_per_sample'), 'B')} | "
                f"{fmt(median(ok, 'rounds_per_step'))} | "
                f"{'–' if acc is None else f'{100 * acc:.1f}'} |")
        plain = median([r for r in runs if r["model"] == model and r["engine"] == "ringnn-plain"
                        and "error" not in r], "samples_per_s")
        for engine in ("ringnn-a2b", "ringnn-fss"):
            ok = [r for r in runs if r["model"] == model and r["engine"] == engine and "error" not in r]
            sps, online = median(ok, "samples_per_s"), median(ok, "online_samples_per_s")
            if sps is not None and best_peer:
                out.append(f"| {model} | {engine} / faster peer | | {sps / best_peer:.1f}x | "
                           f"{online / best_peer:.1f}x | | | | |")
            if online and plain:
                out.append(f"| {model} | ringnn-plain / {engine} online | | | "
                           f"{plain / online:.1f}x slower | | | | |")
    out.append("")
    out.append(f"Medians of {repeats} repeat(s), every engine once per repeat in a rotated order. "
               "ringnn: dealer and both servers as processes over mutual TLS on loopback, "
               "e^x pwl4 at f = 13, all in = training seconds with the dealer's material made "
               "during the step, online = steps whose material was ready; dealer bytes include "
               "the test predictions' material. Peers: triples free (CrypTen TFP, SPU trusted "
               "first party), one thread per party; SPU's bytes include input sharing.")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ringnn", required=True)
    p.add_argument("--peers", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--envs", required=True)
    p.add_argument("--models", default="mlp,lenet")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="out/peers")
    p.add_argument("--engines", default=",".join(ENGINES))
    a = p.parse_args()
    engines = a.engines.split(",")
    for e in engines:
        if e not in ENGINES:
            p.error(f"--engines: '{e}' is not one of {', '.join(ENGINES)}")
    a.out = os.path.abspath(a.out)
    a.ringnn, a.peers, a.data, a.envs = map(os.path.abspath, (a.ringnn, a.peers, a.data, a.envs))
    os.makedirs(os.path.join(a.out, "logs", "spu"), exist_ok=True)
    models = a.models.split(",")
    store = os.path.join(a.out, "runs.jsonl")
    runs = []
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    for rep in range(a.repeats):
        order = engines[rep % len(engines):] + engines[:rep % len(engines)]
        for model in models:
            for engine in order:
                cmd = command(a, engine, model)
                log = os.path.join(a.out, "logs", f"{model}-{engine}-{rep + 1}.log")
                print(f"peers: [{rep + 1}/{a.repeats}] {model} {engine}", file=sys.stderr, flush=True)
                t0 = time.time()
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                          timeout=TIMEOUT_S, cwd=a.out)
                    output, errors, rc = proc.stdout, proc.stderr, proc.returncode
                except subprocess.TimeoutExpired as e:
                    output, errors = text_of(e.stdout), text_of(e.stderr)
                    rc = f"timeout after {TIMEOUT_S} s"
                with open(log, "w") as f:
                    f.write(" ".join(cmd) + "\n" + output + "\n--- stderr ---\n" + errors)
                got = parse(engine, output) if rc == 0 else f"exit status {rc} (see {log})"
                row = {"started": start, "repeat": rep + 1, "model": model, "engine": engine,
                       "wall_seconds": round(time.time() - t0, 1)}
                if isinstance(got, str):
                    row["error"] = got
                    print(f"peers:   failed: {got}", file=sys.stderr, flush=True)
                else:
                    row.update(got)
                    b = got.get("bytes_per_sample")
                    print(f"peers:   {got['samples_per_s']:.1f} samples/s"
                          + (f", {b / 1e3:.1f} KB/sample/server" if b is not None else ""),
                          file=sys.stderr, flush=True)
                runs.append(row)
                with open(store, "a") as f:
                    f.write(json.dumps(row) + "\n")
    text = table(runs, models, a.repeats)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    print(f"peers: wrote {os.path.join(a.out, 'table.md')} and {store}", file=sys.stderr)
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
