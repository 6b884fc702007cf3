"""Before/after behaviour check for refactors: every registered block and model, same weights, same outputs.

    python scripts/behaviour_snapshot.py save DIR      # on the old code
    python scripts/behaviour_snapshot.py check DIR     # on the new code: loads each saved state dict

``save`` builds every entry in float64 (seed 0), runs it in eval mode on a seeded input and stores the state
dict, the input and the output.  ``check`` builds the entry again, loads the saved state dict (by key; when a
refactor renamed keys, by position among tensors of equal shape, which it reports), runs the same input and
compares: the maximum relative difference must be <= 1e-12.  Aliased (renamed) entries are looked up through
the registry, so a block that moved keeps its old name as the key.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

import visionblocks as vb


def _entries():
    for name in vb.list_blocks():
        yield "block", name
    for name in vb.list_models():
        yield "model", name


def _build(kind: str, name: str):
    torch.manual_seed(0)
    if kind == "block":
        info = vb.block_info(name)
        m = info.build_example().double().eval()
        g = torch.Generator().manual_seed(1)
        if info.example.make_inputs is not None:
            inputs = tuple(t.double() if t.is_floating_point() else t
                           for t in info.example.make_inputs(generator=g))
        else:
            inputs = (torch.randn(info.example.input_shape, generator=g, dtype=torch.float64),)
    else:
        info = vb.model_info(name)
        m = vb.create_model(name).double().eval()
        size = info.test_input_size or info.input_size[1:]
        g = torch.Generator().manual_seed(1)
        inputs = (torch.randn((1, 3, *size), generator=g, dtype=torch.float64),)
    return m, inputs


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def _randomise(m):
    # BN statistics and affine parameters away from their identity initialisation, so folds and norms matter
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for k, t in m.state_dict().items():
            if t.is_floating_point() and ("running_var" in k):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            elif t.is_floating_point() and ("running_mean" in k or k.endswith("bn.bias")):
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.1)


def save(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, name in _entries():
        m, inputs = _build(kind, name)
        _randomise(m)
        with torch.no_grad():
            out = _flat(m(*inputs))
        torch.save({"state_dict": m.state_dict(), "inputs": inputs, "outputs": out}, out_dir / f"{kind}-{name}.pt")
        print(f"saved {kind} {name}", flush=True)


def _load(m, sd) -> str:
    own = m.state_dict()
    if list(own) == list(sd):
        m.load_state_dict(sd)
        return "same keys"
    if set(own) == set(sd):
        m.load_state_dict(sd)
        return "same keys, other order"
    if len(own) != len(sd) or any(a.shape != b.shape for a, b in zip(own.values(), sd.values())):
        raise RuntimeError(f"state dict differs: {len(sd)} saved tensors, {len(own)} now; "
                           f"only-saved {sorted(set(sd) - set(own))[:5]}, only-now {sorted(set(own) - set(sd))[:5]}")
    m.load_state_dict(dict(zip(own, sd.values())))
    renamed = [(a, b) for a, b in zip(sd, own) if a != b]
    return f"{len(renamed)} keys renamed, e.g. {renamed[0][0]} -> {renamed[0][1]}"


def check(in_dir: Path) -> int:
    worst, bad = 0.0, []
    files = sorted(in_dir.glob("*.pt"))
    for f in files:
        kind, name = f.stem.split("-", 1)
        saved = torch.load(f, weights_only=False)
        try:
            m, _ = _build(kind, name)
            how = _load(m, saved["state_dict"])
            with torch.no_grad():
                out = _flat(m(*saved["inputs"]))
            diff = max(((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()
                       for a, b in zip(out, saved["outputs"])) if out else 0.0
            if len(out) != len(saved["outputs"]) or diff > 1e-12:
                bad.append(f"{kind} {name}: rel diff {diff:.3g}")
            worst = max(worst, diff)
            if how != "same keys":
                print(f"{kind} {name}: {how}")
        except Exception as e:  # noqa: BLE001 - report every entry
            bad.append(f"{kind} {name}: {type(e).__name__}: {e}")
    print(f"{len(files)} entries checked; worst relative difference {worst:.3g}")
    for b in bad:
        print("FAIL", b)
    return 1 if bad else 0


if __name__ == "__main__":
    cmd, path = sys.argv[1], Path(sys.argv[2])
    sys.exit(save(path) if cmd == "save" else check(path))
