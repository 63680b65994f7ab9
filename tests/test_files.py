"""astroembed.files: a target file is always its old complete version or its new one."""

import os
import stat

import pytest

from astroembed.files import atomic_path, atomic_write_text


def test_a_completed_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "part.txt"
    atomic_write_text(target, "old")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible until the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["part.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "part.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.txt"]


def test_written_files_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "config.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600: a shared model must be readable
