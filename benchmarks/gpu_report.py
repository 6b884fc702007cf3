"""The GPU run the performance issue asks for, prepared as ONE command for a session that is lent a device
(whose time is short: every step below has its own time limit inside ``--budget``):

    python3 benchmarks/gpu_report.py --out "$OUT"            # on the device machine, from the repository root

Steps, each a subprocess (a failure or an overrun of one leaves the others' results):

1. the CUDA tests (``tests/test_sdpa_gpu.py``: softmax attention blocks reach the flash / memory-efficient SDPA
   kernels, CUDA events and ``max_memory_allocated`` in the bench);
2. ``visionblocks bench`` over every block, ``--device cuda --dtype bfloat16 --channels-last``;
3. ``visionblocks bench --models '*'``, the same setting, at 224x224;
4. ``benchmarks/compare_timm.py --device cuda --dtype bfloat16 --channels-last`` (where timm imports; its
   float64 equality check runs on the CPU first).

Writes ``OUT/benchmarks_gpu.md`` (device, torch and CUDA versions, the command of each step, its outcome and its
table), ready to commit as ``docs/benchmarks_gpu.md``, and each step's raw output beside it (``steps.log``,
``blocks.json``, ``models.json``, ``timm.jsonl``: five files, within what the device tool brings back).
``--device cpu --quick`` runs the same plumbing here on the CPU, on a few rows (a dry run of the script).
The package is imported from this checkout (``PYTHONPATH``), nothing is installed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# shares of --budget per step (a step that ends early leaves its rest to the next ones)
SHARES = {"tests": 0.12, "blocks": 0.33, "models": 0.25, "timm": 0.30}


def step_commands(device: str, quick: bool, tmp: str) -> dict[str, list[str]]:
    """The command line of each step (``tmp``: where they write their files).  ``quick``: a few rows each, small
    inputs (a dry run of the plumbing)."""
    py = sys.executable
    setting = ["--device", device, "--dtype", "bfloat16", "--channels-last"]
    size = "64" if quick else "224"
    bench = [py, "-m", "visionblocks", "bench", *setting, "--quiet", "--repeats", "10", "--min-time", "0.2"]
    blocks = ["--names", "se,cbam,self_attention", "--shape", "64,28,28"] if quick else []
    return {
        "tests": [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_sdpa_gpu.py"],
        "blocks": [*bench, *blocks, "--out", os.path.join(tmp, "blocks")],
        "models": [*bench, "--models", "resnet18" if quick else "*", "--size", size, "--out", os.path.join(tmp, "models")],
        "timm": [py, "benchmarks/compare_timm.py", *setting, "--repeats", "10", "--min-time", "0.3", "--size", size,
                 *(["--only", "se,resnet18"] if quick else []),
                 "--json", os.path.join(tmp, "timm.jsonl"), "--out", os.path.join(tmp, "timm.md"),
                 "--command-text", f"python3 benchmarks/compare_timm.py {' '.join(setting)} (benchmarks/gpu_report.py's "
                 "timm step)"],
    }


def run_step(cmd: list[str], timeout: float, log) -> tuple[str, float, str]:
    """Run ``cmd`` from the repository root with this checkout on the path; its output goes to ``log``.
    Returns (outcome, seconds, last line of output): outcome ``"ok"``, ``"exit N"`` or ``"timed out after S s"``."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
    log.write(f"\n$ {' '.join(cmd)}\n")
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        outcome, text = ("ok" if done.returncode == 0 else f"exit {done.returncode}"), done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        outcome = f"timed out after {timeout:.0f} s"
        text = "".join(t.decode(errors="replace") if isinstance(t, bytes) else (t or "") for t in (e.stdout, e.stderr))
    log.write(text)
    log.flush()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return outcome, time.monotonic() - t0, lines[-1] if lines else ""


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def describe(device: str) -> str:
    """The device, torch and CUDA versions (from this process, which imports torch once)."""
    import torch
    text = f"torch {torch.__version__}"
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(idx)
        text = (f"{torch.cuda.get_device_name(idx)} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} "
                f"multiprocessors), CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, " + text)
    elif device.startswith("cuda"):
        text += ": CUDA is not available"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        if smi.returncode == 0 and smi.stdout.strip():
            text += f", driver {smi.stdout.strip().splitlines()[0]}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return text


def report(device_text: str, results: dict[str, tuple[str, float, str]], cmds: dict[str, list[str]], tmp: str,
           command: str) -> str:
    """``benchmarks_gpu.md``: what ran, how it ended, and the tables each step wrote."""
    titles = {"tests": "CUDA tests", "blocks": "Blocks (`visionblocks bench`)",
              "models": "Models (`visionblocks bench --models`)", "timm": "Side by side with timm"}
    tables = {"blocks": os.path.join(tmp, "blocks", "bench.md"), "models": os.path.join(tmp, "models", "bench.md"),
              "timm": os.path.join(tmp, "timm.md")}
    out = ["# visionblocks on the GPU", "",
           f"Generated by `{command}` (benchmarks/gpu_report.py: one prepared run, each step under its own time "
           "limit; bfloat16, channels-last convolution weights and inputs, batch 8; times from CUDA events, "
           "memory from `torch.cuda.max_memory_allocated`).", "", f"Device: {device_text}", "",
           "| step | outcome | seconds | last line of its output |", "|---|---|---|---|"]
    out += [f"| {titles[k]} | {results[k][0]} | {results[k][1]:.0f} | {results[k][2].replace('|', '/')[:160]} |"
            if k in results else f"| {titles[k]} | not run (no time left) | — | |" for k in cmds]
    out.append("")
    for k, cmd in cmds.items():
        if "--command-text" in cmd:  # (the label it passes on is not part of what ran)
            cmd = cmd[:cmd.index("--command-text")] + cmd[cmd.index("--command-text") + 2:]
        shown = " ".join("python3" if c == sys.executable else os.path.relpath(c, tmp) if c.startswith(tmp) else c
                         for c in cmd)
        out += [f"## {titles[k]}", "", f"Command: `{shown}`", ""]
        body = _read(tables[k]) if k in tables else None
        if body and k == "timm":  # its own title goes; its sections become subsections
            body = "\n".join(line.replace("## ", "### ", 1) if line.startswith("## ") else line
                             for line in body.splitlines() if not line.startswith("# "))
        out += [body if body else f"(no table: {results[k][2] if k in results else 'not run'}; see steps.log)", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for benchmarks_gpu.md and the raw outputs (e.g. $OUT)")
    ap.add_argument("--device", default="cuda", help="cuda[:i] (cpu: a dry run of the plumbing)")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for all the steps together")
    ap.add_argument("--quick", action="store_true", help="a few rows per step (a dry run)")
    ap.add_argument("--steps", default=",".join(SHARES), help=f"comma-separated subset of {','.join(SHARES)}")
    a = ap.parse_args(argv)
    steps = [s for s in a.steps.split(",") if s]
    unknown = sorted(set(steps) - set(SHARES))
    if unknown or a.budget <= 0:
        print(f"gpu_report.py: error: {'unknown steps ' + ','.join(unknown) if unknown else '--budget must be > 0'}",
              file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="vb_gpu_")
    cmds = {k: v for k, v in step_commands(a.device, a.quick, tmp).items() if k in steps}
    deadline = time.monotonic() + a.budget
    results: dict[str, tuple[str, float, str]] = {}
    with open(os.path.join(a.out, "steps.log"), "w") as log:
        log.write(f"device: {describe(a.device)}\n")
        for i, k in enumerate(cmds):
            left = deadline - time.monotonic()
            share = SHARES[k] / sum(SHARES[s] for s in list(cmds)[i:])  # what is left, shared among the rest
            if left < 10:
                break
            results[k] = run_step(cmds[k], left * share, log)
            print(f"{k}: {results[k][0]} ({results[k][1]:.0f} s)", flush=True)
    for src, dst in ((os.path.join(tmp, "blocks", "bench.json"), "blocks.json"),
                     (os.path.join(tmp, "models", "bench.json"), "models.json"), (os.path.join(tmp, "timm.jsonl"), "timm.jsonl")):
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, dst))
    command = "python3 benchmarks/gpu_report.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(describe(a.device), results, cmds, tmp, command)
    with open(os.path.join(a.out, "benchmarks_gpu.md"), "w") as fh:
        fh.write(text + "\n")
    print(f"wrote {os.path.join(a.out, 'benchmarks_gpu.md')}", flush=True)
    return 0 if results and all(r[0] == "ok" for r in results.values()) and len(results) == len(cmds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
