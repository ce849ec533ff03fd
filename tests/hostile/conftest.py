"""Shared helpers of the hostile-input matrix.

The CLI in-process and in a child process (for resource limits and signals), and a fingerprint of
files that must survive a failed run unchanged.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def package_path(tmp_path_factory):
    """A PYTHONPATH folder holding an ``hsifusion`` link to the repo root (child processes)."""
    d = tmp_path_factory.mktemp("pkgpath")
    os.symlink(ROOT, d / "hsifusion")
    return str(d)


@pytest.fixture()
def cli_run(capsys):
    """``cli_run(*argv) -> (exit code, stdout, stderr)`` through ``engine.cli.main``; never a traceback."""
    from hsifusion.engine import cli

    def _run(*argv):
        code = cli.main([str(a) for a in argv])
        out = capsys.readouterr()
        assert "Traceback" not in out.err
        return code, out.out, out.err

    return _run


@pytest.fixture()
def cli_child(package_path):
    """``cli_child(argv, prelude="", **popen) -> Popen`` of ``hsifusion`` in a child Python.

    ``prelude`` is code run first (set a resource limit, slow a method down). stdout/stderr are pipes
    (text).
    """

    def _start(argv, prelude: str = "", **kw):
        code = (f"{prelude}\nimport sys\nfrom hsifusion.engine import cli\n"
                f"sys.exit(cli.main({[str(a) for a in argv]!r}))\n")
        env = dict(os.environ, PYTHONPATH=package_path, PYTHONDONTWRITEBYTECODE="1")
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)

    return _start


def _fingerprint(folder) -> dict:
    out = {}
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            with open(p, "rb") as fh:
                out[name] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture()
def fingerprint():
    """``fingerprint(folder) -> {name: sha256}`` of every file.

    A failed run must leave a folder as it was (no input overwritten, no old output lost, no temporary
    file left).
    """
    return _fingerprint
