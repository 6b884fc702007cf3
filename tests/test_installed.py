"""What an installed package does where a piece is missing: an extra not installed, no source checkout beside it."""
import importlib
import sys

import pytest


def test_the_ultralytics_integration_without_ultralytics_names_the_extra(monkeypatch):
    """It was a ModuleNotFoundError from deep inside register() naming no extra."""
    monkeypatch.setitem(sys.modules, "ultralytics", None)        # as where it is not installed
    monkeypatch.setitem(sys.modules, "ultralytics.nn", None)
    monkeypatch.delitem(sys.modules, "visionblocks.integrations.ultralytics", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"needs ultralytics: pip install 'visionblocks\[ultralytics\]'") as e:
        importlib.import_module("visionblocks.integrations.ultralytics")
    assert e.value.name == "ultralytics"


@pytest.mark.parametrize("module, option", [("visionblocks.weights.docs", "--output"),
                                            ("visionblocks.docs_models", "--out")])
def test_the_docs_writers_outside_a_source_checkout_exit_2_with_one_line(module, option, tmp_path, capsys):
    """Installed from a wheel there is no docs/ beside the package: they crashed with FileNotFoundError (and
    ``--check`` called a missing file stale)."""
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main([option, str(tmp_path / "no_docs_here" / "x.md")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "is not a directory: this writes docs/" in err[-1], err
    assert not (tmp_path / "no_docs_here").exists()
