"""The code examples of docs/plug_in.md, by the name on their first line (``# example: <name>``)."""
import os
import re

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "plug_in.md")


def doc_examples() -> dict:
    text = open(DOC).read()
    blocks = re.findall(r"```(?:python|yaml)\n# example: (\S+)\n(.*?)```", text, flags=re.S)
    return {name: code for name, code in blocks}


def with_surgery_exports():
    """``visionblocks`` with ``insert``/``replace``/``lazy``/``timm_attn``: the doc examples use them as ``vb.*``
    (set here only while the package's ``__init__`` does not export them yet)."""
    import visionblocks as vb
    from visionblocks import surgery
    missing = {name: getattr(surgery, name) for name in ("insert", "replace", "lazy") if not hasattr(vb, name)}
    if not hasattr(vb, "timm_attn"):
        from visionblocks.integrations.timm import timm_attn
        missing["timm_attn"] = timm_attn
    return missing
