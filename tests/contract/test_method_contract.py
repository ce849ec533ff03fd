"""What every registered fusion method owes the engine, checked for each one without a hand-kept list.

Declared defaults within their declared rules, unknown or misspelt parameters refused by name, sane tile
geometry, a describe() for the output metadata, generated help, and tiled == untiled.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from hsifusion.engine import api
from hsifusion.engine.errors import InputError
from hsifusion.engine.methods import get_method, list_methods, method_spec
from hsifusion.engine.params import help_text
from hsifusion.models.catalogue import PER_TILE, entry, network_ids
from invariance import assert_tile_invariant
from rasterkit import read, synthetic_pair

METHODS = list_methods()
# Quickest settings, applied where a method declares the parameter (cpu, one step, small patch, lite).
QUICK = {"device": "cpu", "iterations": 1, "batch_size": 1, "patch_size": 16, "lite": True}
RATIO = 2


def quick_params(method: str) -> dict:
    names = {p.name for p in method_spec(method).params}
    return {k: v for k, v in QUICK.items() if k in names}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return synthetic_pair(tmp_path_factory.mktemp("contract"), ratio=RATIO, lr_size=(32, 8), bands=8, msi_bands=3)


def test_the_registry_is_discovered_not_listed():
    assert {"upsample"} | set(network_ids()) <= set(METHODS)
    assert len([m for m in METHODS if method_spec(m).family == "classical"]) >= 4


@pytest.mark.parametrize("method", METHODS)
def test_declared_defaults_satisfy_their_own_rules(method):
    spec = method_spec(method)
    for p in spec.params:
        assert p.check(p.default, method) == p.default, p.name
        if p.type in (int, float) and p.default is not None:
            assert isinstance(p.default, p.type) and not isinstance(p.default, bool), p.name
            assert p.minimum is None or p.default >= p.minimum, p.name
            assert p.maximum is None or p.default <= p.maximum, p.name
        if p.choices is not None:
            assert p.default in p.choices, p.name
        assert p.label, p.name


@pytest.mark.parametrize("method", METHODS)
def test_generated_help_explains_every_exposed_parameter(method):
    """The help a method gets when it has no help file: one "NAME: label (--flag; default ...)" line each."""
    text = help_text(method_spec(method)).splitlines()
    for p in method_spec(method).params:
        lines = [line for line in text if line.startswith(f"{p.processing_name}: ")]
        assert len(lines) == (1 if p.exposed else 0), p.name
        assert not p.exposed or (p.label in lines[0] and p.cli_flag in lines[0]), p.name


@pytest.mark.parametrize("method", METHODS)
def test_unknown_and_misspelt_parameters_are_refused_by_name(method):
    spec = method_spec(method)
    with pytest.raises(InputError) as e:
        get_method(method, no_such_parameter=1)
    assert "no_such_parameter" in str(e.value)
    for p in spec.params:
        assert p.name in str(e.value)
    for p in spec.params:
        typo = p.name[:-1] + ("x" if p.name[-1] != "x" else "y")
        with pytest.raises(InputError, match=f"did you mean {p.name}"):
            get_method(method, **{typo: p.default})


@pytest.mark.parametrize("method", METHODS)
def test_values_outside_the_declaration_are_refused(method):
    spec = method_spec(method)
    for p in spec.params:
        bad = []
        if p.type in (int, float):
            bad.append("not a number")
            if p.minimum is not None:
                bad.append(p.minimum - 1)
            if p.maximum is not None:
                bad.append(p.maximum + 1)
        if p.choices is not None:
            bad.append("no-such-choice")
        for value in bad:
            with pytest.raises(InputError, match=p.name):
                get_method(method, **{p.name: value})


@pytest.mark.parametrize("method", METHODS)
def test_geometry_and_description(method):
    m = get_method(method, **quick_params(method))
    for r in (2, 3, 4, 8):
        margin, step, smallest = m.margin(r), m.align(r), m.min_hr_size(r)
        assert isinstance(margin, int) and margin >= 0
        assert isinstance(step, int) and step >= r and step % r == 0
        assert isinstance(smallest, int) and smallest >= r
    d = m.describe()
    assert d["method"] == method
    json.dumps(d)  # recorded in the output's metadata


@pytest.mark.parametrize("method", METHODS)
def test_tiled_equals_untiled(pair, tmp_path, method):
    """Within the one tile tolerance of tests/invariance.py (float32 sums in another order per tile shape).

    Per-tile networks are exempt by declaration: they are optimised on each tile.
    """
    if method in network_ids() and entry(method).kind == PER_TILE:
        pytest.skip("per-tile optimisation: each tile is its own optimisation problem")
    hsi, msi = pair
    params = quick_params(method)
    m = get_method(method, **params)
    tile = max(16, m.align(RATIO), m.min_hr_size(RATIO))  # the smallest tile the method takes, >= 16 px
    whole, tiled = str(tmp_path / "whole.tif"), str(tmp_path / "tiled.tif")
    one = api.fuse(hsi, msi, whole, method, params, tile_size=4096)
    many = api.fuse(hsi, msi, tiled, method, params, tile_size=tile)
    assert one["TILES"] == 1 and many["TILES"] > 1
    a, b = read(whole), read(tiled)
    assert np.isfinite(a).all()
    assert_tile_invariant(b, a, method)
