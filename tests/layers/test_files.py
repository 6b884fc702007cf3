"""layers.write_all_or_none: a set of files is written completely or not at all."""
import os
import stat

import pytest

from visionblocks.layers import write_all_or_none


def _text(content):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(content)
    return write


def test_writes_every_file_with_the_usual_permissions(tmp_path):
    paths = write_all_or_none([(str(tmp_path / "a.csv"), _text("a")), (str(tmp_path / "b.json"), _text("b"))],
                              fsync=True)
    assert [open(p).read() for p in paths] == ["a", "b"]
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.json"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(paths[0]).st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_a_failure_leaves_the_old_files_and_no_temporary_one(tmp_path):
    (tmp_path / "a.csv").write_text("old a")
    (tmp_path / "b.json").write_text("old b")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left") as e:
        write_all_or_none([(str(tmp_path / "a.csv"), _text("new a")), (str(tmp_path / "b.json"), fail)])
    assert e.value.filename == str(tmp_path / "b.json")  # the file being written is named
    assert (tmp_path / "a.csv").read_text() == "old a" and (tmp_path / "b.json").read_text() == "old b"
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.json"]


def test_the_temporary_file_keeps_the_extension(tmp_path):
    seen = []
    write_all_or_none([(str(tmp_path / "plot.png"), lambda tmp: (seen.append(tmp), open(tmp, "wb").close()))])
    assert seen[0].endswith(".png") and os.path.dirname(seen[0]) == str(tmp_path)


def test_a_symbolic_link_is_written_through_and_permissions_are_kept(tmp_path):
    target = tmp_path / "run1.pt"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "last.pt"
    os.symlink(target, link)
    write_all_or_none([(str(link), _text("new"))])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert os.stat(target).st_mode & 0o777 == 0o640


def test_a_writer_that_cannot_create_its_file_is_an_oserror(tmp_path):
    # torch.save raises RuntimeError where it cannot open the file (a missing or read-only folder): the OSError the
    # docstring promises, naming the path, now comes from creating the temporary file first
    torch = pytest.importorskip("torch")
    path = str(tmp_path / "missing" / "ckpt.pt")
    with pytest.raises(OSError) as info:
        write_all_or_none([(path, lambda tmp: torch.save({}, tmp))])
    assert info.value.filename == path and not (tmp_path / "missing").exists()
