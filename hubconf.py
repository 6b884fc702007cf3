"""torch.hub entry points of visionblocks.

``torch.hub.load("<owner>/visionblocks", "resnet50", pretrained=True)`` builds any registered model, with the
keyword arguments of :func:`visionblocks.create_model` (``num_classes``, ``features_only``, ``pretrained`` (True,
a weights tag, or a checkpoint path or URL) ...); ``torch.hub.list`` names them all, ``torch.hub.help`` gives each
model's paper.  ``create_model`` and ``create_block`` are entry points too (``torch.hub.load(repo, "create_block",
"cbam", 256)``).
"""
dependencies = ["torch"]

import visionblocks as _vb  # noqa: E402  (torch.hub reads ``dependencies`` first)

create_model = _vb.create_model
create_block = _vb.create_block


def _weights_doc(name: str) -> str:
    """What ``pretrained`` gives for ``name``: its registered weights, and whether they can be downloaded."""
    tags = _vb.weights.list_weights(name)
    if not tags:
        return ("No published weights are registered for it: ``pretrained`` takes a checkpoint path or URL of "
                "your own.")
    w = _vb.weights.get_weights(name)
    if w.url is None:
        return (f"Its published weights ({', '.join(tags)}) have no direct download URL: download them from "
                f"{w.page} and pass ``pretrained=<path>``.")
    return f"``pretrained=True`` downloads {w.name} ({w.source}); its registered weights: {', '.join(tags)}."


def _entry(name: str):
    info = _vb.model_info(name)

    def entry(**kwargs):
        return _vb.create_model(name, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (f"{name}: {info.paper} ({info.url}).  Keyword arguments as "
                     f"``visionblocks.create_model({name!r}, **kwargs)``.  {_weights_doc(name)}")
    return entry


for _name in _vb.list_models():
    globals()[_name] = _entry(_name)
