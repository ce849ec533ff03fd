"""The command line's method options are generated from the declarations.

One option per declared parameter, argparse choices for declared choices, and a typed error (exit 1, no
traceback) naming the valid parameters for a misspelt ``-p`` name or an option of another method.
"""
from __future__ import annotations

import pytest

from hsifusion.engine import cli
from hsifusion.engine.methods import list_methods, method_spec, method_specs

METHODS = list_methods()
ARGS = ["--hsi", "missing_lr.tif", "--msi", "missing_msi.tif", "-o", "never_written.tif"]


def run(capsys, argv):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_every_declared_parameter_is_an_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fuse", "--help"])
    text = capsys.readouterr().out
    for spec in method_specs():
        for p in spec.params:
            if p.exposed:
                assert p.cli_flag in text, (spec.id, p.name)


@pytest.mark.parametrize("method", METHODS)
def test_misspelt_parameter_is_refused_naming_the_valid_ones(capsys, method):
    spec = method_spec(method)
    if not spec.params:
        pytest.skip("declares no parameter")
    name = spec.params[0].name
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    code, err = run(capsys, ["fuse", method, *ARGS, "-p", f"{typo}=1"])
    assert code == 1 and "Traceback" not in err
    assert f"did you mean {name}" in err and all(p.name in err for p in spec.params)


def test_d14_examples(capsys):
    code, err = run(capsys, ["fuse", "gsa", *ARGS, "-p", "mtf_gian=0.1"])
    assert code == 1 and "mtf_gain" in err and "Traceback" not in err
    code, err = run(capsys, ["fuse", "upsample", *ARGS, "--mode", "cubicspline"])
    assert code == 2 and "invalid choice: 'cubicspline'" in err
    assert all(m in err for m in method_spec("upsample").param("mode").choices)


@pytest.mark.parametrize("method", METHODS)
def test_options_of_other_methods_are_refused(capsys, method):
    own = {p.name for p in method_spec(method).params}
    foreign = next((p for s in method_specs() for p in s.params
                    if p.exposed and p.name not in own and p.type in (int, float)), None)
    if foreign is None:
        pytest.skip("takes every numeric option")
    code, err = run(capsys, ["fuse", method, *ARGS, foreign.cli_flag, str(foreign.default)])
    assert code == 1 and f"{foreign.cli_flag}: only for" in err and f"not for {method}" in err
