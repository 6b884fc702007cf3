"""The examples of docs/plug_in.md for the integration tests (the same extraction as tests/surgery/_doc_examples.py,
which this folder does not import: it runs on its own)."""
import os
import re

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "plug_in.md")


def doc_examples() -> dict:
    text = open(DOC).read()
    return dict(re.findall(r"```(?:python|yaml)\n# example: (\S+)\n(.*?)```", text, flags=re.S))


def run_example(name: str, monkeypatch, replace: dict | None = None) -> dict:
    """Run example ``name`` (``replace``: text substitutions, e.g. a dataset path) with ``vb.insert``/``replace``/
    ``lazy``/``timm_attn`` available (set here only while ``visionblocks/__init__`` does not export them yet)."""
    import visionblocks as vb
    from visionblocks import surgery
    from visionblocks.integrations.timm import timm_attn
    for attr, value in {"insert": surgery.insert, "replace": surgery.replace, "lazy": surgery.lazy,
                        "timm_attn": timm_attn}.items():
        if not hasattr(vb, attr):
            monkeypatch.setattr(vb, attr, value, raising=False)
    code = doc_examples()[name]
    for old, new in (replace or {}).items():
        assert old in code
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, f"docs/plug_in.md:{name}", "exec"), namespace)
    return namespace
