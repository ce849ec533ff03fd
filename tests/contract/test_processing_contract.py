"""Every registered method has its Toolbox algorithm, with a Processing parameter per declared one.

Same default, range, choices and Advanced flag, and help that names it; ``train`` offers every supervised
network of the catalogue by title. Parametrised over the registry: a new method is covered unedited.
"""
from __future__ import annotations

import pytest

from hsifusion.engine.methods import list_methods, method_spec
from hsifusion.engine.params import FILE, FILE_OUT
from hsifusion.models.catalogue import DEFAULT_TRAINING_NETWORK, NETWORKS, SUPERVISED
from hsifusion.provider.helptext import help_source

METHODS = list_methods()


def algorithm_id(method: str) -> str:
    return method if method_spec(method).family == "baseline" else f"fuse_{method}"


@pytest.fixture(scope="module")
def algorithms(hsifusion_provider):
    return {a.name(): a for a in hsifusion_provider.algorithms()}


@pytest.mark.parametrize("method", METHODS)
def test_declared_parameters_are_processing_parameters(algorithms, method):
    from hsifusion.provider.compat import FLAG_ADVANCED

    spec = method_spec(method)
    alg = algorithms[algorithm_id(method)]
    assert alg.displayName() == spec.toolbox_name
    written = help_source(alg.name())  # optional; when there is one it must explain every parameter
    help_text = alg.shortHelpString()
    for p in spec.params:
        if not p.exposed:
            assert alg.parameterDefinition(p.processing_name) is None, p.name
            continue
        d = alg.parameterDefinition(p.processing_name)
        assert d is not None, p.name
        assert bool(d.flags() & FLAG_ADVANCED) == p.advanced, p.name
        assert p.processing_name in help_text, p.name
        assert not written or p.processing_name in written, f"help/{alg.name()}.md does not explain {p.processing_name}"
        if p.kind in (FILE, FILE_OUT):
            assert d.defaultValue() in (None, ""), p.name
        elif p.choices is not None:
            assert list(d.options()) == list(p.choice_labels or p.choices), p.name
            assert d.defaultValue() == p.choices.index(p.default), p.name
        elif p.type in (int, float):
            assert d.defaultValue() == p.default, p.name
            if p.minimum is not None:
                assert d.minimum() == p.minimum, p.name
            if p.maximum is not None:
                assert d.maximum() == p.maximum, p.name
        else:
            assert d.defaultValue() == p.default, p.name


def test_train_offers_every_supervised_network_by_title(algorithms):
    d = algorithms["train"].parameterDefinition("NETWORK")
    supervised = [e for e in NETWORKS if e.kind == SUPERVISED]
    assert list(d.options()) == [e.title for e in supervised]
    assert supervised[d.defaultValue()].id == DEFAULT_TRAINING_NETWORK
