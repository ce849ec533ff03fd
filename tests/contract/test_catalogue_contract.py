"""The network catalogue is the one place a network is named.

Torch-free, complete, and consistent with each model's NetSpec and the method declarations (checked per
entry, no hand-kept list).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

from hsifusion.engine.methods import get_method, method_spec
from hsifusion.engine.params import bind
from hsifusion.models.catalogue import FIT_ONCE, KINDS, NETWORKS, SUPERVISED, entry
from hsifusion.models.registry import get_spec
from rasterkit import ROOT

IDS = [e.id for e in NETWORKS]


def test_ids_and_titles_are_unique():
    assert len(set(IDS)) == len(IDS) and len({e.title for e in NETWORKS}) == len(IDS)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in IDS)


def test_catalogue_and_method_list_load_without_torch_and_without_the_models():
    code = ("import sys\n"
            f"sys.path.insert(0, {str(ROOT / 'tools')!r})\n"
            "from repo_package import register_package\n"
            "register_package()\n"
            "from hsifusion.models import catalogue, registry\n"
            "from hsifusion.engine.methods import list_methods\n"
            "assert set(catalogue.network_ids()) <= set(list_methods())\n"
            "loaded = [m for m in sys.modules if m == 'torch' or m.startswith('hsifusion.models.')]\n"
            "print(sorted(loaded))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=""))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(sorted(["hsifusion.models.catalogue", "hsifusion.models.registry",
                                           "hsifusion.models.spec"]))


@pytest.mark.parametrize("net", IDS)
def test_entry_matches_its_model_and_its_method(net):
    e = next(x for x in NETWORKS if x.id == net)
    assert e.kind in KINDS
    spec = get_spec(net)  # checks the hooks the kind needs are declared
    if e.kind == SUPERVISED:
        assert callable(spec.loss) and callable(spec.default_optimizer)
    else:
        assert callable(spec.fit)
    if e.kind == FIT_ONCE:
        assert e.stage_shares and abs(sum(e.stage_shares) - 1.0) < 1e-9
    ms = method_spec(net)
    assert ms.family == "network" and ms.title == e.title
    assert ms.param("iterations").default == e.iterations
    assert ("lite" in {p.name for p in ms.params}) == e.lite
    assert ("checkpoint" in {p.name for p in ms.params}) == (e.kind == SUPERVISED)
    bind(ms, e.sample_budget)  # the sample budget uses declared names and values only
    assert set(e.checkpoint_fallbacks) <= set(spec.defaults)


@pytest.mark.parametrize("net", [e.id for e in NETWORKS if e.lite])
def test_lite_reaches_the_network(net):
    assert get_method(net, lite=True).hyper["lite"] is True
    assert get_method(net, lite=False).hyper.get("lite", False) is False
    assert get_method(net).hyper.get("lite", False) is entry(net).lite_by_default  # the parameter's default
    assert method_spec(net).param("lite").default is entry(net).lite_by_default


def test_no_network_id_outside_the_catalogue_models_their_tests_and_docs():
    """Algorithms, engine, provider, benchmarks and the other tests derive from the catalogue."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, IDS)) + r")\b")
    found = []
    for folder in ("algorithms", "engine", "provider", "benchmarks", "tests/contract",
                   "tests/algorithms/test_dask_param.py", "tests/engine/test_network_method.py"):
        path = ROOT / folder
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for f in files:
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def _relative_imports(path):
    """(level, module, names) of every relative import in a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.level, n.module or "", [a.name for a in n.names]) for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.level]


def test_no_import_cycles_between_registries_and_their_members():
    """Members do not import what finds them.

    Model modules do not import the registry; method modules import no names from the package that
    discovers them (``from . import register_method`` was the old cycle).
    """
    for e in NETWORKS:
        imports = _relative_imports(ROOT / "models" / f"{e.module}.py")
        assert all(not (level == 1 and module == "registry") for level, module, _ in imports), e.module
    for path in sorted((ROOT / "engine" / "methods").glob("*.py")):
        if path.name == "__init__.py":
            continue
        for level, module, names in _relative_imports(path):
            if level == 1 and module == "":  # "from . import x": only sibling modules, never __init__'s names
                assert all((path.parent / f"{n}.py").exists() for n in names), (path.name, names)
