"""Restructure ``tests/`` so that it mirrors the package (issue 12), once, on the final tree.

Run from the repository root, on a clean work tree, with the project's interpreter::

    .venv/bin/python scripts/mirror_tests.py            # rewrite tests/ (git mv / new files), print a summary
    .venv/bin/python scripts/mirror_tests.py --dry-run  # only print where every test would go

Layout it produces (rules only; no list of test functions is written down here):

* ``tests/blocks/<family>/test_<block module>.py``  one file per block module of ``visionblocks/blocks``;
* ``tests/models/test_<module>.py``                 one file per ``visionblocks/models`` module;
* ``tests/layers/test_<module>.py``                 the tests of ``tests/test_layers.py``, per layers module;
* ``tests/test_<module>.py``                        registry, features, reparam, measure, testing, bench, cli,
  docs; the contract tests and the existing subfolders (surgery/, weights/, integration/, train/) stay as they are.

A test function goes where the block/model it exercises lives: the name it carries (``test_cbam_...``), the
registry names it builds (``create_block("cbam")``, parametrize lists) and the library names it imports.  When the
evidence is a tie it lands in ``tests/blocks/<family>/test_<family>_misc.py`` (or ``tests/models/test_models_misc.py``)
and a line says so.  Module-level helpers and fixtures travel with the tests that use them; one used from several
new files moves to ``tests/_reference.py`` and is imported (never copied); short constants (one or two lines) are
copied.  The ~10 copies of a parameter randomiser become ``visionblocks.testing.randomize_params`` (same values) and
the eval-BatchNorm formula copies become ``_reference.bn_eval``.  Basenames stay unique, so no ``__init__.py`` is
needed; ``tests/conftest.py`` puts ``tests/`` on ``sys.path`` (pytest's prepend import mode), which keeps
``from _reference import ...`` working from the subfolders.  A whole file that maps to one target is ``git mv``-ed.

The script refuses to run twice (it stops when ``tests/blocks`` or ``tests/models`` exists).  Check afterwards with
``python -m pytest --collect-only -q`` (the count printed before and after must match).
"""
from __future__ import annotations

import argparse
import ast
import collections
import importlib
import io
import pkgutil
import re
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path.insert(0, str(ROOT))

# top-level files that already mirror a module (or test the whole registry) stay where they are
KEEP_PREFIXES = ("test_contract", "test_compare_script", "test_docs")
TOOL_MODULES = {"visionblocks.registry", "visionblocks.testing", "visionblocks", "visionblocks.layers"}
REFERENCE = "_reference"


# ----------------------------------------------------------------------------------------------- the package map
class Target:
    """Where a test file goes: ``path`` relative to tests/, and what it mirrors (for its docstring)."""

    def __init__(self, path: str, module: str, kind: str):
        self.path, self.module, self.kind = path, module, kind

    def __repr__(self):
        return self.path


def _modules(pkg: str):
    mod = importlib.import_module(pkg)
    for info in pkgutil.iter_modules(mod.__path__):
        if not info.name.startswith("_") and not info.ispkg:
            yield f"{pkg}.{info.name}", info.name


def build_map():
    """Targets keyed by package module, plus name -> module maps (registry names, public symbols)."""
    import visionblocks as vb
    from visionblocks import registry

    targets: dict[str, Target] = {}
    for fam_pkg, fam in _modules_pkgs("visionblocks.blocks"):
        for mod, stem in _modules(fam_pkg):
            targets[mod] = Target(f"blocks/{fam}/test_{stem}.py", mod, "block")
    for mod, stem in _modules("visionblocks.models"):
        targets[mod] = Target(f"models/test_{stem}.py", mod, "model")
    for mod, stem in _modules("visionblocks.layers"):
        targets[mod] = Target(f"layers/test_{stem}.py", mod, "layer")
    for mod, stem in _modules("visionblocks"):
        targets[mod] = Target(f"test_{stem}.py", mod, "top")
    # unique basenames across tests/ (pytest without __init__.py needs them): prefix the folder on a clash
    taken = collections.Counter(Path(t.path).name for t in targets.values())
    taken.update(p.name for p in TESTS.glob("*/**/test_*.py"))
    for t in targets.values():
        if taken[Path(t.path).name] > 1 and t.kind != "top":
            parts = Path(t.path).parts
            t.path = str(Path(*parts[:-1]) / f"test_{parts[-2]}_{parts[-1][5:]}")

    names: dict[str, str] = {}  # registry name (lower) -> module
    for n in vb.list_blocks():
        info = registry.block_info(n)
        home = info.cls.__module__
        if targets.get(home) is None or targets[home].kind != "block":  # registered by a block module
            home = next((m for m, t in targets.items() if t.kind == "block"
                         and getattr(importlib.import_module(m), info.cls.__name__, None) is info.cls), home)
        for key in (n, *info.aliases):
            names[key.lower()] = home
    for n in vb.list_models():
        names[n.lower()] = registry.model_info(n).fn.__module__
    stems: dict[str, str] = {}  # module stem -> module (blocks and models only)
    symbols: dict[str, str] = {}  # public symbol -> defining module (the most specific one we have a target for)
    for mod, t in targets.items():
        if t.kind in ("block", "model"):
            stems.setdefault(mod.rsplit(".", 1)[1].lower(), mod)
        m = importlib.import_module(mod)
        for sym in getattr(m, "__all__", None) or [s for s in vars(m) if not s.startswith("_")]:
            obj = getattr(m, sym, None)
            home = getattr(obj, "__module__", None)
            if home == mod or (sym not in symbols and home in targets):
                symbols[sym] = home if home in targets else mod
    return targets, names, stems, symbols


def _modules_pkgs(pkg: str):
    mod = importlib.import_module(pkg)
    for info in pkgutil.iter_modules(mod.__path__):
        if info.ispkg:
            yield f"{pkg}.{info.name}", info.name


# ----------------------------------------------------------------------------------------------- source pieces
class Piece:
    """One module-level statement of a test file (a test, helper, fixture, constant or import)."""

    def __init__(self, node: ast.stmt, lines: list[str], origin: str):
        self.node, self.origin = node, origin
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        # keep the comment lines right above the statement (section rulers stay out: they name old groupings)
        while start > 1 and lines[start - 2].lstrip().startswith("#") and "----" not in lines[start - 2]:
            start -= 1
        self.text = "\n".join(lines[start - 1:node.end_lineno])
        self.name = getattr(node, "name", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            tg = node.targets if isinstance(node, ast.Assign) else [node.target]
            self.binds = {n.id for t in tg for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif self.name:
            self.binds = {self.name}
        else:
            self.binds = set()
        self.refs = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - self.binds
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.refs |= {a.arg for a in node.args.args}  # fixtures requested by argument name
            if self.name in self.refs:  # recursion
                self.refs.discard(self.name)
        self.is_test = bool(self.name) and (self.name.startswith("test") or self.name.startswith("Test")) \
            and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        self.fixture = _fixture_kind(node)

    @property
    def is_const(self):
        return isinstance(self.node, (ast.Assign, ast.AnnAssign)) and self.text.count("\n") < 2


def _fixture_kind(node):
    for d in getattr(node, "decorator_list", []):
        src = ast.unparse(d)
        if src.startswith(("pytest.fixture", "fixture")):
            return "autouse" if re.search(r"autouse\s*=\s*True", src) else "fixture"
    return None


class Imp:
    """One imported name: ``import a.b as c`` / ``from a import b as c``."""

    def __init__(self, module: str | None, name: str, asname: str | None, level: int = 0):
        self.module, self.name, self.asname, self.level = module, name, asname, level

    @property
    def bound(self):
        if self.asname:
            return self.asname
        return self.name.split(".")[0] if self.module is None else self.name

    def key(self):
        return (self.module, self.name, self.asname)


def parse_file(path: Path):
    src = path.read_text()
    tree = ast.parse(src)
    lines = src.splitlines()
    doc = ast.get_docstring(tree)
    imports, pieces = [], []
    for node in tree.body:
        if isinstance(node, ast.Import):
            imports += [Imp(None, a.name, a.asname) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports += [Imp(node.module, a.name, a.asname, node.level) for a in node.names]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node is tree.body[0]:
            continue
        else:
            pieces.append(Piece(node, lines, path.stem))
    return doc, imports, pieces


# ----------------------------------------------------------------------------------------------- classification
def _tokens(name: str) -> str:
    return "_" + re.sub(r"^test_?", "", name.lower()) + "_"


def classify(piece: Piece, helpers: dict[str, Piece], imports: dict[str, Imp], maps, allowed: set[str],
             origin: str = ""):
    """Score candidate modules for one test; returns (module or None, scores)."""
    targets, names, stems, symbols = maps
    seen, stack, nodes = set(), [piece], []
    while stack:  # the test and the local helpers it uses, transitively
        p = stack.pop()
        nodes.append(p.node)
        for r in p.refs:
            if r in helpers and r not in seen and not helpers[r].is_test:
                seen.add(r)
                stack.append(helpers[r])
    scores: collections.Counter = collections.Counter()

    def vote(mod, w):
        if mod in targets and targets[mod].kind in allowed:
            scores[mod] += w

    # 1. the name the test carries: the longest registry name / module stem among its tokens
    toks, best = _tokens(piece.name), []
    for table in (names, stems):
        for key, mod in table.items():
            if f"_{key}_" in toks:
                best.append((len(key), mod))
    if best:
        top = max(b[0] for b in best)
        mods = {m for n, m in best if n == top}
        if len(mods) == 1:
            vote(mods.pop(), 3)
    # 2. registry names it builds or parametrizes over, library names it imports
    strs, syms = set(), set()
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.lower() in names:
                strs.add(n.value.lower())
            elif isinstance(n, ast.Name) and n.id in imports:
                imp = imports[n.id]
                if imp.module and imp.module.startswith("visionblocks"):
                    syms.add((imp.module, imp.name))
            elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in imports:
                imp = imports[n.value.id]
                full = imp.name if imp.module is None else f"{imp.module}.{imp.name}"
                if full.startswith("visionblocks"):
                    syms.add((full, n.attr))
    for s in strs:
        vote(names[s], 2)
    for mod, sym in syms:
        home = mod if mod in targets and mod not in TOOL_MODULES and not mod.startswith("visionblocks.layers") \
            else symbols.get(sym)
        if home and home not in TOOL_MODULES and (targets.get(home) and targets[home].kind != "layer"
                                                   or "layer" in allowed):
            vote(home, 1 if targets.get(home) and targets[home].kind == "top" else 2)
    if not scores:
        return None, scores
    # a tie goes to the module the old file was named after (test_conv_deformable -> deformable_conv), then
    # to the kind it held (test_*_models -> models)
    src = set(origin.split("_"))
    for mod in list(scores):
        if set(mod.rsplit(".", 1)[1].split("_")) <= src:
            scores[mod] += 0.5
        if (targets[mod].kind == "model") == ("models" in src):
            scores[mod] += 0.25
    (m1, s1), *rest = scores.most_common()
    if rest and rest[0][1] == s1:
        return None, scores
    return m1, scores


# ----------------------------------------------------------------------------------------------- rewrites
def _rename(text: str, old: str, new: str) -> str:
    """Rename the name ``old`` (not attributes ``x.old``) in a piece of source."""
    out, prev = [], None
    toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    lines = text.splitlines(keepends=True)
    offs = [0]
    for ln in lines:
        offs.append(offs[-1] + len(ln))
    edits = []
    for t in toks:
        if t.type == tokenize.NAME and t.string == old and not (prev and prev.string == "."):
            edits.append((offs[t.start[0] - 1] + t.start[1], offs[t.end[0] - 1] + t.end[1]))
        if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            prev = t
    for a, b in reversed(edits):
        text = text[:a] + new + text[b:]
    return text


def _segment(text: str, node) -> tuple[int, int]:
    lines = text.splitlines(keepends=True)
    offs = [0]
    for ln in lines:
        offs.append(offs[-1] + len(ln))
    return offs[node.lineno - 1] + node.col_offset, offs[node.end_lineno - 1] + node.end_col_offset


def _is_call(n, dotted: str) -> bool:
    return isinstance(n, ast.Call) and ast.unparse(n.func) == dotted


def rewrite_randomisers(text: str) -> tuple[str, int]:
    """``g = Generator().manual_seed(s); with no_grad(): for p in m.parameters(): p.copy_/add_(randn(p.shape,
    generator=g, dtype=p.dtype) * k)`` -> ``randomize_params(m, k, s[, add=True])`` (the same values)."""
    count = 0
    while True:
        tree = ast.parse(textwrap.dedent(text)) if text.startswith((" ", "\t")) else ast.parse(text)
        hit = None
        for body_owner in ast.walk(tree):
            body = getattr(body_owner, "body", None)
            if not isinstance(body, list):
                continue
            for a, b in zip(body, body[1:]):
                m = _match_randomiser(a, b, body_owner)
                if m:
                    hit = (a, b, m)
                    break
            if hit:
                break
        if not hit:
            return text, count
        a, b, (mod, scale, seed, add) = hit
        s0, _ = _segment(text, a)
        _, e1 = _segment(text, b)
        call = f"randomize_params({mod}, {scale}, {seed}{', add=True' if add else ''})"
        text = text[:s0] + call + text[e1:]
        count += 1


def _match_randomiser(a, b, owner):
    if not (isinstance(a, ast.Assign) and len(a.targets) == 1 and isinstance(a.targets[0], ast.Name)):
        return None
    g = a.targets[0].id
    v = a.value
    if not (isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "manual_seed"
            and _is_call(v.func.value, "torch.Generator") and len(v.args) == 1):
        return None
    if not (isinstance(b, ast.With) and len(b.items) == 1 and _is_call(b.items[0].context_expr, "torch.no_grad")
            and len(b.body) == 1 and isinstance(b.body[0], ast.For)):
        return None
    loop = b.body[0]
    if not (isinstance(loop.target, ast.Name) and isinstance(loop.iter, ast.Call)
            and isinstance(loop.iter.func, ast.Attribute) and loop.iter.func.attr == "parameters"
            and not loop.iter.args and len(loop.body) == 1 and isinstance(loop.body[0], ast.Expr)):
        return None
    p = loop.target.id
    call = loop.body[0].value
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and ast.unparse(call.func.value) == p and call.func.attr in ("copy_", "add_") and len(call.args) == 1):
        return None
    prod = call.args[0]
    if not (isinstance(prod, ast.BinOp) and isinstance(prod.op, ast.Mult)):
        return None
    for rnd, scale in ((prod.left, prod.right), (prod.right, prod.left)):
        if ast.unparse(rnd) == f"torch.randn({p}.shape, generator={g}, dtype={p}.dtype)":
            break
    else:
        return None
    # the generator must not be used after the loop
    uses = [n for n in ast.walk(owner) if isinstance(n, ast.Name) and n.id == g]
    if len(uses) != 2:  # the assignment, the randn call and nothing else
        return None
    return ast.unparse(loop.iter.func.value), ast.unparse(scale), ast.unparse(v.args[0]), call.func.attr == "add_"


def _bn_term(n, attr):
    """``B.attr`` or ``B.attr.view/reshape(1, -1, 1, 1)`` -> B's source, else None."""
    if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("view", "reshape") \
            and [ast.unparse(a) for a in n.args] == ["1", "-1", "1", "1"]:
        n = n.func.value
        if isinstance(n, ast.Attribute) and n.attr == attr:
            return ast.unparse(n.value)
    return None


def _match_bn(n):
    """``(X - mean) / sqrt(var + eps) * weight + bias`` of one BatchNorm B over dim 1 of a 4-D X -> (X, B)."""
    if not (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add)):
        return None
    mul, bias = n.left, n.right
    if not (isinstance(mul, ast.BinOp) and isinstance(mul.op, ast.Mult)):
        return None
    div, weight = mul.left, mul.right
    if not (isinstance(div, ast.BinOp) and isinstance(div.op, ast.Div)):
        return None
    sub, den = div.left, div.right
    if not (isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub)):
        return None
    b = _bn_term(sub.right, "running_mean")
    if b is None or _bn_term(weight, "weight") != b or _bn_term(bias, "bias") != b:
        return None
    if isinstance(den, ast.Call) and isinstance(den.func, ast.Attribute) and den.func.attr == "sqrt" and not den.args:
        inner = den.func.value
    elif _is_call(den, "torch.sqrt") and len(den.args) == 1:
        inner = den.args[0]
    else:
        return None
    if not (isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Add) and _bn_term(inner.left, "running_var") == b
            and ast.unparse(inner.right) == f"{b}.eps"):
        return None
    return ast.unparse(sub.left), b


def rewrite_bn(text: str) -> tuple[str, int]:
    count = 0
    while True:
        tree = ast.parse(text)
        hit = next(((n, m) for n in ast.walk(tree) for m in [_match_bn(n)] if m), None)
        if not hit:
            return text, count
        n, (x, b) = hit
        s, e = _segment(text, n)
        text = text[:s] + f"bn_eval({x}, {b})" + text[e:]
        count += 1


def bn_alias(piece: Piece) -> str | None:
    """A helper ``def f(x, bn): return <eval BatchNorm of x by bn>`` -> 'f' (it becomes ``bn_eval as f``)."""
    node = piece.node
    if not isinstance(node, ast.FunctionDef) or len(node.args.args) != 2 or node.decorator_list:
        return None
    body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return None
    x, b = (a.arg for a in node.args.args)
    ret = body[0].value
    if _match_bn(ret) == (x, b) or ast.unparse(ret) == (
            f"F.batch_norm({x}, {b}.running_mean, {b}.running_var, {b}.weight, {b}.bias, False, 0.0, {b}.eps)"):
        return node.name
    return None


# ----------------------------------------------------------------------------------------------- output files
def _group(imp: Imp):
    top = (imp.module or imp.name).split(".")[0]
    if top == "__future__":
        return 0
    if top in sys.stdlib_module_names:
        return 1
    if top == "visionblocks":
        return 3
    if imp.level or top == REFERENCE or top.startswith("test_") or top == "conftest":
        return 4
    return 2


def render_imports(imps: list[Imp]) -> str:
    by_group = collections.defaultdict(lambda: collections.defaultdict(list))
    plain = collections.defaultdict(list)
    for imp in imps:
        if imp.module is None:
            plain[_group(imp)].append(imp)
        else:
            by_group[_group(imp)][("." * imp.level) + imp.module].append(imp)
    out = []
    for g in range(5):
        block = []
        for imp in sorted(plain[g], key=lambda i: i.name):
            block.append(f"import {imp.name}" + (f" as {imp.asname}" if imp.asname else ""))
        for mod in sorted(by_group[g]):
            parts = sorted({i.name + (f" as {i.asname}" if i.asname else "") for i in by_group[g][mod]})
            line = f"from {mod} import {', '.join(parts)}"
            if len(line) > 120:
                line = f"from {mod} import (\n" + "".join(f"    {p},\n" for p in parts) + ")"
            block.append(line)
        if block:
            out.append("\n".join(block))
    return "\n\n".join(out)


def _docstring(target: Target | None) -> str:
    if target is None:
        return '"""Tests that name no single block or model (kept together by scripts/mirror_tests.py)."""'
    return f'"""Tests of :mod:`{target.module}`."""'


# ----------------------------------------------------------------------------------------------- main
def git(*args):
    subprocess.run(["git", *args], cwd=ROOT, check=True)


def collect_count() -> int:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-p",
                          "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True).stdout
    m = re.search(r"(\d+) tests? collected", out) or re.search(r"^(\d+) tests?", out, re.M)
    return int(m.group(1)) if m else -1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    ap.add_argument("--split", nargs="*", default=[], metavar="test_x",
                    help="also distribute these cross-cutting files (e.g. test_hardening) by block/model")
    ap.add_argument("--no-count", action="store_true", help="skip the before/after --collect-only counts")
    args = ap.parse_args(argv)
    if (TESTS / "blocks").exists() or (TESTS / "models").exists():
        sys.exit("tests/blocks or tests/models exists: the tests are already mirrored (this script runs once)")
    before = -1 if args.no_count or args.dry_run else collect_count()

    maps = build_map()
    targets, names, stems, symbols = maps
    families = {t.path.split("/")[1] for t in targets.values() if t.kind == "block"}
    files = sorted(p for p in TESTS.glob("test_*.py"))
    ref_path = TESTS / f"{REFERENCE}.py"

    plan: dict[str, list[tuple[Piece, str]]] = collections.defaultdict(list)  # new path -> [(piece, origin)]
    parsed = {}
    notes, moves = [], []
    for f in files:
        stem = f.stem[5:]
        grouped = stem.split("_")[0] in families | {"layers"} or any(
            t.kind in ("block", "model") and mod.rsplit(".", 1)[1] == stem for mod, t in targets.items())
        if f.name.startswith(KEEP_PREFIXES) or f"visionblocks.{stem}" in targets or not (
                grouped or f.stem in args.split):
            continue  # already mirrors a module, or checks across the registry (contract, property...): stays
        doc, imports, pieces = parse_file(f)
        parsed[f.stem] = (doc, imports, pieces)
        imap = {i.bound: i for i in imports}
        helpers = {p.name: p for p in pieces if p.name}
        layer_file = stem == "layers"
        allowed = {"layer"} if layer_file else {"block", "model", "top"}
        head = stem.split("_")[0]
        for p in pieces:
            if not p.is_test:
                continue
            mod, scores = classify(p, helpers, imap, maps, allowed, f.stem)
            if mod is not None:
                dest = targets[mod].path
            else:
                top = max(scores.values(), default=0)
                if layer_file:
                    dest = "layers/test_layers_misc.py"
                elif scores and all(targets[m].kind == "model" for m, v in scores.items() if v == top):
                    dest = "models/test_models_misc.py"
                elif head in families:
                    dest = f"blocks/{head}/test_{head}_misc.py"
                elif "models" in stem or stem.startswith(("resnet",)):
                    dest = "models/test_models_misc.py"
                else:
                    dest = f.name
                notes.append(f"  ambiguous: {f.name}::{p.name} -> tests/{dest}  "
                             f"(evidence {dict(scores) or 'none'})")
            plan[dest].append((p, f.stem))

    # ----- where each helper goes: its one user file, or _reference.py when several new files use it
    placement: dict[tuple[str, str], set[str]] = {}  # (origin, helper) -> destinations of its users
    for dest, items in plan.items():
        for p, origin in items:
            placement.setdefault((origin, p.name), set()).add(dest)
    cross = collections.defaultdict(set)  # names other test files import from an origin: they must be shared
    for origin, (_, imports, _) in parsed.items():
        for imp in imports:
            if imp.module and imp.module.startswith("test_") and imp.module in parsed:
                cross[imp.module].add(imp.name)
    changed = True
    while changed:
        changed = False
        for origin, (_, imports, pieces) in parsed.items():
            helpers = {n: p for p in pieces for n in p.binds}
            autouse = [p for p in pieces if p.fixture == "autouse"]
            for p in pieces:
                dests = set()
                if p.is_test:
                    dests = placement.get((origin, p.name), set())
                else:
                    dests = set(placement.get((origin, _pkey(p)), set()))
                if not dests:
                    continue
                needed = [helpers[r] for r in p.refs if r in helpers and helpers[r] is not p]
                if p.is_test:
                    needed += autouse
                for h in needed:
                    key = (origin, _pkey(h))
                    cur = placement.setdefault(key, set())
                    if cur == {REFERENCE} and not h.is_const:
                        continue  # already shared
                    new = cur | ({REFERENCE} if REFERENCE in dests and not h.is_const else dests)
                    if new != cur:
                        placement[key] = new
                        changed = True
            for name in cross.get(origin, ()):
                h = helpers.get(name)
                if h is not None and placement.get((origin, _pkey(h))) != {REFERENCE}:
                    placement[(origin, _pkey(h))] = placement.get((origin, _pkey(h)), set()) | {REFERENCE}
                    changed = True
            for p in pieces:  # a non-constant helper wanted by several files lives in _reference.py
                key = (origin, _pkey(p))
                if not p.is_test and not p.is_const and len(placement.get(key, ())) > 1 \
                        and placement[key] != {REFERENCE}:
                    placement[key] = {REFERENCE}
                    changed = True

    # ----- print the plan
    whole = {}
    for origin in parsed:
        dests = {d for (o, n), ds in placement.items() if o == origin for d in ds}
        tests = [p for p in parsed[origin][2] if p.is_test]
        if tests and len(dests) == 1 and REFERENCE not in dests and not cross.get(origin):
            whole[origin] = dests.pop()
    print(f"mirror_tests: {len(parsed)} grouped files -> {len(plan)} files "
          f"({len(whole)} moved whole with git mv)")
    for dest in sorted(plan):
        origins = collections.Counter(o for _, o in plan[dest])
        print(f"  tests/{dest}: " + ", ".join(f"{n} from {o}.py" for o, n in origins.items()))
    shared = sorted(f"{o}.{n}" for (o, n), ds in placement.items() if ds == {REFERENCE})
    if shared:
        print("  to tests/_reference.py: " + ", ".join(shared))
    for line in notes:
        print(line)
    if args.dry_run:
        return 0

    # ----- write
    ref_src = ref_path.read_text()
    ref_doc, ref_imports, ref_pieces = parse_file(ref_path)
    ref_bound = {n: p.text for p in ref_pieces for n in p.binds}
    ref_new_imports: list[Imp] = list(ref_imports)
    ref_new_pieces: list[str] = []
    renames: dict[tuple[str, str], str] = {}  # (origin, old) -> new name
    n_rand = n_bn = 0

    def prepare(p: Piece, origin: str) -> str:
        nonlocal n_rand, n_bn
        text = p.text
        text, k = rewrite_randomisers(text)
        n_rand += k
        text, k = rewrite_bn(text)
        n_bn += k
        for (o, old), new in renames.items():
            if o == origin and old in p.refs | p.binds:
                text = _rename(text, old, new)
        return text

    def used_imports(texts: list[str], origin: str) -> list[Imp]:
        imports = parsed[origin][1]
        refs = set()
        for t in texts:
            refs |= {n.id for n in ast.walk(ast.parse(t)) if isinstance(n, ast.Name)}
        out = []
        for imp in imports:
            if imp.bound in refs or (imp.module == "__future__"):
                if imp.module and imp.module.startswith("test_") and imp.module in parsed:
                    imp = Imp(REFERENCE, renames.get((imp.module, imp.name), imp.name), imp.asname)
                out.append(imp)
        if any("randomize_params(" in t for t in texts):
            out.append(Imp("visionblocks.testing", "randomize_params", None))
        if any(re.search(r"\bbn_eval\(", t) for t in texts):
            out.append(Imp(REFERENCE, "bn_eval", None))
        return out

    # shared helpers first (their names may need renaming on a clash in _reference.py)
    bn_aliases = {}
    for origin, (_, imports, pieces) in parsed.items():
        for p in pieces:
            if REFERENCE in placement.get((origin, _pkey(p)), ()):
                alias = bn_alias(p)
                if alias:
                    bn_aliases[(origin, alias)] = True
                    n_bn += 1
                    continue
                for name in sorted(p.binds):
                    if name in ref_bound and ref_bound[name] != p.text:
                        renames[(origin, name)] = f"{name}_{origin[5:]}"
                text = prepare(p, origin)
                if p.fixture == "autouse":  # shared: each file asks for it by name (usefixtures)
                    text = re.sub(r"pytest\.fixture\(autouse=True\)", "pytest.fixture", text, count=1)
                ref_bound.update({renames.get((origin, n), n): p.text for n in p.binds})
                for imp in used_imports([text], origin):
                    if imp.module != REFERENCE:
                        ref_new_imports.append(imp)
                    elif imp.asname and imp.asname != imp.name:  # `from _reference import x as y` inside it
                        text = _rename(text, imp.asname, imp.name)
                ref_new_pieces.append(text)
    ref_shared = {(o, n) for (o, n), ds in placement.items() if ds == {REFERENCE}}  # imported, not copied

    written, moved = [], set()
    for dest, items in sorted(plan.items()):
        origins = list(dict.fromkeys(o for _, o in items))
        tgt = next((t for t in targets.values() if t.path == dest), None)
        mixed = len(origins) > 1
        bound: dict[str, str] = {}
        body, imps = [], []
        future = False
        for origin in origins:
            _, imports, pieces = parsed[origin]
            future |= any(i.module == "__future__" for i in imports)
            autouse = {p.name for p in pieces if p.fixture == "autouse"}
            texts, shared_names = [], []
            for p in pieces:
                key = (origin, _pkey(p))
                if dest not in placement.get(key, ()):
                    continue
                if bn_alias(p):
                    imps.append(Imp(REFERENCE, "bn_eval", p.name))
                    n_bn += 1
                    continue
                for name in p.binds:
                    if name in bound and bound[name] != p.text:
                        renames[(origin, name)] = f"{name}_{origin[5:]}"
                text = prepare(p, origin)
                if p.fixture == "autouse" and mixed:
                    text = re.sub(r"pytest\.fixture\(autouse=True\)", "pytest.fixture", text, count=1)
                # an autouse fixture that now serves several files (or a file with other tests) is asked for
                # by name, so that it applies to exactly the tests it applied to before
                scoped = sorted(a for a in autouse if mixed or placement.get((origin, a)) == {REFERENCE})
                if p.is_test and scoped:
                    text = "".join(f'@pytest.mark.usefixtures("{renames.get((origin, a), a)}")\n'
                                   for a in scoped) + text
                bound.update({renames.get((origin, n), n): p.text for n in p.binds})
                texts.append(text)
            # names this origin's pieces take from _reference.py
            local_texts = "\n".join(texts)
            refs = {n.id for n in ast.walk(ast.parse(local_texts)) if isinstance(n, ast.Name)} if texts else set()
            for (o, name) in ref_shared:
                if o == origin:
                    h = next((p for p in pieces if _pkey(p) == name), None)
                    for b in (h.binds if h else {name}):
                        nb = renames.get((o, b), b)
                        if nb in refs or (h is not None and h.fixture and (b in refs or h.fixture == "autouse")):
                            if (o, b) in bn_aliases:
                                imps.append(Imp(REFERENCE, "bn_eval", b))
                            else:
                                imps.append(Imp(REFERENCE, nb, None))
            body.append(local_texts)
            imps += used_imports(texts, origin)
        # drop imports of names defined here, dedupe
        seen, final = set(), []
        for imp in imps:
            if imp.key() in seen or (imp.module == REFERENCE and imp.bound in bound and not imp.asname):
                continue
            seen.add(imp.key())
            final.append(imp)
        if not future:
            final = [i for i in final if i.module != "__future__"]
        text = _docstring(tgt) + "\n" + render_imports(final) + "\n\n\n" + "\n\n\n".join(
            b.strip("\n") for b in body if b.strip()) + "\n"
        out = TESTS / dest
        out.parent.mkdir(parents=True, exist_ok=True)
        single = len(origins) == 1 and whole.get(origins[0]) == dest
        if single and (TESTS / f"{origins[0]}.py") != out:
            git("mv", str(TESTS / f"{origins[0]}.py"), str(out))
            moved.add(origins[0])
        out.write_text(text)
        written.append(dest)

    if ref_new_pieces:
        ref_text = (f'"""{ref_doc}"""\n' if ref_doc else "") + render_imports(
            _dedupe(ref_new_imports)) + "\n\n\n" + "\n\n\n".join(
            [p.text for p in ref_pieces] + [t.strip("\n") for t in ref_new_pieces]) + "\n"
        ref_path.write_text(ref_text)
    for origin in parsed:
        if origin not in moved:
            path = TESTS / f"{origin}.py"
            if path.exists() and f"{origin}.py" not in written:
                git("rm", "-q", str(path))
    git("add", "tests")
    after = -1 if args.no_count else collect_count()
    print(f"mirror_tests: wrote {len(written)} files; randomisers -> randomize_params: {n_rand}; "
          f"BN formulas -> _reference.bn_eval: {n_bn}; shared helpers -> _reference.py: {len(ref_new_pieces)}")
    if before >= 0:
        print(f"mirror_tests: collected tests before {before}, after {after}" +
              ("" if before == after else "  <-- MISMATCH"))
    return 0 if before == after or args.no_count else 1


def _pkey(p: Piece) -> str:
    return p.name or ",".join(sorted(p.binds)) or f"<stmt@{p.node.lineno}>"


def _dedupe(imps):
    seen, out = set(), []
    for i in imps:
        if i.key() not in seen:
            seen.add(i.key())
            out.append(i)
    return out


if __name__ == "__main__":
    sys.exit(main())
