"""Move the models' ``paper_note`` essays out of the registrations into one data table (issue 12), once.

Run from the repository root with the project's interpreter, on the final tree::

    .venv/bin/python scripts/move_paper_notes.py            # write visionblocks/models/paper_notes.py, edit models
    .venv/bin/python scripts/move_paper_notes.py --dry-run  # print what would change

1. Imports visionblocks and reads every model's note as the registry has it now (``model_info(name).paper_note``:
   format strings and ``_reg`` helpers are evaluated by the code itself, not by hand).
2. Writes ``visionblocks/models/paper_notes.py``: ``NOTES: dict[str, str]``, one entry per model, wrapped text.
3. Removes from ``visionblocks/models/*.py`` the ``paper_note=`` keyword of every ``register_model(...)`` call, the
   ``note`` parameter of registration helpers that forward it as ``paper_note=`` (``_reg(name, ..., note=...)``),
   that argument at every call of such a helper (keyword or positional), statements inside the helper that
   rebuild the parameter (``note = "prefix" + note``), and the module constants (``_NOTE = (...)``) that nothing
   uses any more.
4. Checks: the table round-trips to the notes read in step 1; no ``paper_note``/``note`` argument is left.

The registry must then take the note from the table (the one change outside this script, in registry.py).
Refuses to run when ``visionblocks/models/paper_notes.py`` already exists.
"""
from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "visionblocks" / "models"
TABLE = MODELS / "paper_notes.py"
WIDTH = 112


def current_notes() -> dict[str, str]:
    """The notes as the registry has them now (run in a fresh interpreter: the tree may have been edited)."""
    code = ("import json, visionblocks as vb; from visionblocks.registry import model_info; "
            "print(json.dumps({n: model_info(n).paper_note for n in vb.list_models()}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    import json
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- the table
def _literal(s: str) -> str:
    r = repr(s)
    if r.startswith("'") and '"' not in s:
        r = '"' + r[1:-1].replace("\\'", "'") + '"'
    return r


def _chunks(text: str, width: int) -> list[str]:
    """Split ``text`` into pieces whose concatenation is exactly ``text``, each about ``width`` long, at spaces."""
    words = re.findall(r"\S+\s*|\s+", text)
    out, cur = [], ""
    for w in words:
        if cur and len(_literal(cur + w)) > width:
            out.append(cur)
            cur = ""
        cur += w
    if cur or not out:
        out.append(cur)
    return out


def render_table(notes: dict[str, str]) -> str:
    lines = [
        '"""What each model\'s paper figures mean against our counts (``ModelInfo.paper_note``), one entry per model.',
        "",
        "Why a parameter or multiply-add count differs from the paper's table (rounding, a counter convention, a",
        "misprint), with the evidence.  Read through ``visionblocks.model_info(name).paper_note``; the docs table",
        "(``python -m visionblocks.docs_models``) is generated from it.  Edit the text here, not in the model files.",
        '"""',
        "from __future__ import annotations",
        "",
        '__all__ = ["NOTES"]',
        "",
        "NOTES: dict[str, str] = {",
    ]
    for name in sorted(notes):
        parts = _chunks(notes[name], WIDTH - 8)
        if len(parts) == 1 and len(f'    "{name}": {_literal(parts[0])},') <= WIDTH + 8:
            lines.append(f'    "{name}": {_literal(parts[0])},')
            continue
        lines.append(f'    "{name}": (')
        lines += [f"        {_literal(p)}" for p in parts]
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- source edits
def _offsets(src: str) -> list[int]:
    offs = [0]
    for line in src.splitlines(keepends=True):
        offs.append(offs[-1] + len(line))
    return offs


def _span(offs, node) -> tuple[int, int]:
    return offs[node.lineno - 1] + node.col_offset, offs[node.end_lineno - 1] + node.end_col_offset


def _arg_removal(src: str, offs, call: ast.Call, victim) -> tuple[int, int]:
    """The text span to delete so that ``victim`` (an arg or keyword of ``call``) and one comma go away."""
    items = sorted(list(call.args) + list(call.keywords), key=lambda n: (n.lineno, n.col_offset))
    i = next(k for k, n in enumerate(items) if n is victim)
    s, e = _span(offs, victim)
    if i > 0 and i + 1 < len(items) and "\n" in src[_span(offs, items[i - 1])[1]:s]:
        return s, _span(offs, items[i + 1])[0]  # first on its line: "victim, " (the next item moves up)
    if i > 0:  # from the end of the previous item: ", victim"
        return _span(offs, items[i - 1])[1], e
    if len(items) > 1:  # first of several: "victim, "
        return s, _span(offs, items[1])[0]
    return s, e


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def edit_module(src: str) -> tuple[str, list[str]]:
    """Remove paper notes from one models module; returns the new source and what was removed."""
    did = []
    # pass 1: register_model(..., paper_note=...) and the helpers that forward a parameter to it
    tree = ast.parse(src)
    offs = _offsets(src)
    spans, helpers = [], {}  # helper name -> (param name, positional index)
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for fn in [None] + funcs:
        scope = tree if fn is None else fn
        for call in ast.walk(scope):
            if not (isinstance(call, ast.Call) and _call_name(call) == "register_model"):
                continue
            owner = min((f for f in funcs if f.lineno <= call.lineno and f.end_lineno >= call.end_lineno),
                        key=lambda f: f.end_lineno - f.lineno, default=None)
            if owner is not fn:
                continue
            for kw in call.keywords:
                if kw.arg != "paper_note":
                    continue
                spans.append(_arg_removal(src, offs, call, kw))
                did.append(f"register_model(paper_note=) at line {call.lineno}")
                params = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs] if fn else []
                used = {n.id for n in ast.walk(kw.value) if isinstance(n, ast.Name)} & set(params)
                for p in used:
                    helpers[fn.name] = (p, params.index(p), fn)
    # the helpers: drop the parameter, statements rebuilding it, and the argument at every call
    for name, (param, index, fn) in helpers.items():
        a = fn.args
        pos = a.posonlyargs + a.args
        items = [(x, a.defaults[i - (len(pos) - len(a.defaults))] if i >= len(pos) - len(a.defaults) else None)
                 for i, x in enumerate(pos)] + list(zip(a.kwonlyargs, a.kw_defaults))
        k = next(i for i, (x, _) in enumerate(items) if x.arg == param)
        index = index if k < len(pos) else None  # None: keyword-only, never passed by position
        end_of = lambda item: _span(offs, item[1] if item[1] is not None else item[0])[1]  # noqa: E731
        own_line = k > 0 and "\n" in src[end_of(items[k - 1]):_span(offs, items[k][0])[0]]
        if own_line and k + 1 < len(items):  # first on its line: "note: str = '', " (the next one moves up)
            spans.append((_span(offs, items[k][0])[0], _span(offs, items[k + 1][0])[0]))
        elif k > 0:
            spans.append((end_of(items[k - 1]), end_of(items[k])))
        else:
            spans.append((_span(offs, items[0][0])[0], _span(offs, items[1][0])[0] if len(items) > 1
                          else end_of(items[0])))
        for st in ast.walk(fn):
            if isinstance(st, (ast.Assign, ast.AugAssign)) and any(
                    isinstance(t, ast.Name) and t.id == param for t in
                    (st.targets if isinstance(st, ast.Assign) else [st.target])):
                s, e = _span(offs, st)
                s = offs[st.lineno - 1]  # whole lines
                e = offs[st.end_lineno]
                spans.append((s, e))
        did.append(f"helper {name}(): parameter {param!r}")
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and _call_name(call) == name:
                victim = next((k for k in call.keywords if k.arg == param), None)
                if victim is None and index is not None and len(call.args) > index:
                    victim = call.args[index]
                if victim is not None:
                    spans.append(_arg_removal(src, offs, call, victim))
    src = _apply(src, spans)
    # pass 2: module constants nothing uses any more (those that were notes: strings / str.format templates)
    while True:
        tree = ast.parse(src)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        dead = [st for st in tree.body if isinstance(st, ast.Assign) and len(st.targets) == 1
                and isinstance(st.targets[0], ast.Name) and st.targets[0].id not in used
                and st.targets[0].id.isupper() and "NOTE" in st.targets[0].id and _is_text(st.value)]
        if not dead:
            break
        offs = _offsets(src)
        spans = []
        for st in dead:
            s, e = offs[st.lineno - 1], offs[st.end_lineno]
            while e < len(src) and src[e] == "\n" and src[e:e + 3] == "\n\n\n":
                e += 1
            spans.append((s, e))
            did.append(f"constant {st.targets[0].id}")
        src = _apply(src, spans)
    src = re.sub(r"\n{4,}", "\n\n\n", src)
    return src, did


def _is_text(node) -> bool:
    return all(isinstance(n, (ast.Constant, ast.JoinedStr, ast.FormattedValue, ast.BinOp, ast.Add, ast.Name,
                               ast.Load)) and (not isinstance(n, ast.Constant) or isinstance(n.value, str))
               for n in ast.walk(node))


def _apply(src: str, spans) -> str:
    merged = []
    for s, e in sorted(set(spans)):
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    for s, e in reversed(merged):
        src = src[:s] + src[e:]
    return src


# ----------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    if TABLE.exists():
        sys.exit(f"{TABLE.relative_to(ROOT)} exists: the notes have already been moved")
    notes = {n: s for n, s in current_notes().items() if s}
    table = render_table(notes)
    ns: dict = {}
    exec(compile(table, str(TABLE), "exec"), ns)
    assert ns["NOTES"] == notes, "the table does not round-trip"
    print(f"move_paper_notes: {len(notes)} notes -> {TABLE.relative_to(ROOT)}")
    changed = {}
    for path in sorted(MODELS.glob("*.py")):
        src = path.read_text()
        new, did = edit_module(src)
        if new != src:
            ast.parse(new)
            changed[path] = new
            print(f"  {path.relative_to(ROOT)}: " + "; ".join(did))
    if args.dry_run:
        return 0
    TABLE.write_text(table)
    originals = {p: set(p.read_text().splitlines()) for p in changed}
    for path, new in changed.items():
        path.write_text(new)
    subprocess.run(["git", "add", str(TABLE)], cwd=ROOT, check=True)
    # checks: nothing left behind, the package still imports and registers every model
    left = [f"{p.relative_to(ROOT)}:{i}" for p in MODELS.glob("*.py") if p != TABLE
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bpaper_note\s*=", line)]
    after = current_notes()
    missing = sorted(set(notes) - set(after))
    print(f"move_paper_notes: {len(changed)} model files edited; paper_note= left: {left or 'none'}; "
          f"models missing after the edit: {missing or 'none'}")
    same = sum(after.get(n) == s for n, s in notes.items())
    print(f"move_paper_notes: registry notes equal to the table after the edit: {same}/{len(notes)} "
          f"({'registry reads the table' if same == len(notes) else 'registry.py does not read the table yet'})")
    long = [f"{p.relative_to(ROOT)}:{i}" for p, old in originals.items()
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120 and line not in old]
    if long:
        print("move_paper_notes: lines over 120 characters now (rewrap by hand): " + ", ".join(long))
    return 1 if left or missing else 0


if __name__ == "__main__":
    sys.exit(main())
