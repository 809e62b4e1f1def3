"""The pseudonym key is never weak: made atomically with 32 random bytes, short keys refused.

A creating process is SIGKILLed at each step of the creation (mid-write, before fsync, before the
link, after it); readers started together on a fresh workspace all get the same strong key.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aesdata.annotate.pseudonym import KEY_ENV, KEY_FILE, MIN_KEY_BYTES, key_strength, load_key
from aesdata.errors import AesdataError

# Creates the key in the folder argv[1], SIGKILLing itself at step argv[2].
CHILD = """
import os, signal, sys
from pathlib import Path
from aesdata.annotate import pseudonym

step = sys.argv[2]
real_write, real_link = os.write, os.link

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def half_write(fd, data):
    real_write(fd, data[: len(data) // 2])
    die()

def link_then_die(src, dst):
    real_link(src, dst)
    die()

patches = {"write": ("write", half_write), "fsync": ("fsync", lambda fd: die()),
           "link": ("link", lambda src, dst: die()), "after-link": ("link", link_then_die)}
name, fake = patches[step]
setattr(pseudonym.os, name, fake)
pseudonym.load_key(Path(sys.argv[1]))
print("not killed")
"""

READER = """
import sys, time
from pathlib import Path
from aesdata.annotate.pseudonym import load_key

go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
print(load_key(Path(sys.argv[1])).decode())
"""


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != KEY_ENV}


@pytest.mark.parametrize("step", ["write", "fsync", "link", "after-link"])
def test_a_creation_killed_at_any_step_never_leaves_a_weak_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), step], env=_clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    path = tmp_path / KEY_FILE
    if step == "after-link":
        assert key_strength(path.read_text().strip()) == MIN_KEY_BYTES  # complete before it had a name
    else:
        assert not path.exists()  # nothing under the key's name until it is complete
    key = load_key(tmp_path)
    assert key_strength(key.decode()) >= MIN_KEY_BYTES and load_key(tmp_path) == key
    assert path.stat().st_mode & 0o777 == 0o600


def test_concurrent_first_readers_all_get_the_same_strong_key(tmp_path: Path) -> None:
    for round_ in range(3):
        folder, go = tmp_path / f"ws{round_}", tmp_path / f"go{round_}"
        folder.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", READER, str(folder), str(go)], env=_clean_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
        time.sleep(0.5)  # let them all start and wait at the line
        go.touch()
        keys = set()
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            keys.add(out.strip())
        assert len(keys) == 1
        (key,) = keys
        assert key_strength(key) >= MIN_KEY_BYTES and (folder / KEY_FILE).read_text().strip() == key
        assert [p.name for p in folder.iterdir()] == [KEY_FILE]  # no temporary file left behind


@pytest.mark.parametrize("value", ["", "abc", "0123456789abcdef" * 3, "short but not hex!"])
def test_a_short_key_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(AesdataError, match=f"{KEY_ENV}: pseudonym key of .* fewer than 32") as err:
        load_key(tmp_path)
    assert "\n" not in str(err.value) and err.value.hint and "token_hex(32)" in err.value.hint
    assert not (tmp_path / KEY_FILE).exists()  # the file is not a silent fallback


@pytest.mark.parametrize("content", ["", "\n", "deadbeef\n", "x" * 31])
def test_a_short_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    (tmp_path / KEY_FILE).write_text(content)
    with pytest.raises(AesdataError, match=f"{KEY_FILE}: pseudonym key of .* fewer than 32") as err:
        load_key(tmp_path)
    assert err.value.hint and "delete the file" in err.value.hint


def test_long_keys_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "f" * 64)
    assert load_key(tmp_path) == b"f" * 64
    monkeypatch.setenv(KEY_ENV, "a passphrase of thirty-two bytes!")
    assert load_key(tmp_path) == b"a passphrase of thirty-two bytes!"
