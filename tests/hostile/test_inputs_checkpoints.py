"""Hostile inputs, checkpoints: every field is checked and a bad one is named.

Every field of a checkpoint is data from anywhere. A NaN or zero scale,
NaN weights, missing keys, wrong types or a file that is not a checkpoint must each be a CheckpointError
naming the field (exit status 1 on the CLI), never an all-NaN output with status 0 or a traceback; the
message never advises loading with ``weights_only=False``.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from hsifusion.engine.errors import CheckpointError
from hsifusion.engine.learning.checkpoint import load_checkpoint, save_checkpoint
from hsifusion.models.registry import get_spec
from rasterkit import read, synthetic_pair

from .inputs_kit import assert_cli_error

HYPER = {"width": 8, "share_stages": False}  # a narrow SSJCN: built in milliseconds


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return synthetic_pair(tmp_path_factory.mktemp("ckpair"), ratio=4, lr_size=(8, 8), bands=6, msi_bands=3)


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory):
    """An untrained but complete SSJCN checkpoint for 6 HSI / 3 MSI bands at ratio 4."""
    torch.manual_seed(0)
    model = get_spec("ssjcn").build(6, 3, 4, **HYPER)
    path = str(tmp_path_factory.mktemp("ck") / "good.pt")
    return save_checkpoint(path, "ssjcn", HYPER, model.state_dict(), 6, 3, 4, {"hsi": 2.0, "msi": 2.0})


def variant(good, tmp_path, change) -> str:
    payload = torch.load(good, weights_only=True)
    change(payload)
    path = str(tmp_path / "variant.pt")
    torch.save(payload, path)
    return path


def first_float(payload) -> str:
    return next(k for k, v in payload["state_dict"].items() if v.is_floating_point())


def fuse_argv(pair, ck, out):
    return ["fuse", "ssjcn", "--hsi", pair[0], "--msi", pair[1], "-o", out, "--checkpoint", ck, "--device", "cpu"]


def test_the_untouched_checkpoint_fuses(pair, good_ckpt, tmp_path, cli_run):
    """The control every variant below departs from: it loads and gives a finite output."""
    code, _, err = cli_run(*fuse_argv(pair, good_ckpt, tmp_path / "o.tif"))
    assert code == 0, err
    assert np.isfinite(read(tmp_path / "o.tif")).all()


def _set(*keys_value):
    *keys, value = keys_value

    def change(p):
        d = p
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


def _nan_weight(p):
    p["state_dict"][first_float(p)].view(-1)[0] = float("nan")


def _drop(key):
    return lambda p: p.pop(key)


def _weights_as_list(p):
    p["state_dict"][first_float(p)] = [1.0, 2.0]


CASES = {
    "norm-zero": (_set("norm", "hsi", 0.0), "field 'norm.hsi' is 0.0"),
    "norm-nan": (_set("norm", "msi", float("nan")), "field 'norm.msi' is nan"),
    "norm-none": (_set("norm", "hsi", None), "field 'norm.hsi' is None"),
    "norm-not-a-dict": (_set("norm", 3.0), "field 'norm' is 3.0"),
    "nan-weight": (_nan_weight, "holds 1 NaN/infinite value(s)"),
    "weights-list": (_weights_as_list, "is a list, not a tensor"),
    "no-norm": (_drop("norm"), "missing field(s) 'norm'"),
    "no-weights": (_drop("state_dict"), "missing field(s) 'state_dict'"),
    "hyper-string": (_set("hyper", "wide"), "field 'hyper' is a str, not a mapping"),
    "hyper-width-text": (_set("hyper", "width", "wide"), "field 'hyper.width' is 'wide'"),
    "hsi-bands-string": (_set("hsi_bands", "6"), "field 'hsi_bands' is '6', not an integer >= 1"),
    "ratio-zero": (_set("ratio", 0), "field 'ratio' is 0, not an integer >= 2"),
    "unknown-network": (_set("network", "resnet"), "field 'network' is 'resnet'; known networks"),
    "short-wavelengths": (_set("hsi_wavelengths", [500.0]), "field 'hsi_wavelengths' must list 6"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_corrupted_field_is_named(pair, good_ckpt, tmp_path, cli_run, name):
    change, needle = CASES[name]
    ck = variant(good_ckpt, tmp_path, change)
    out = tmp_path / "o.tif"
    err = assert_cli_error(cli_run, fuse_argv(pair, ck, out), ck, needle, output=out)
    assert "weights_only" not in err


def test_bad_resume_state_is_named(good_ckpt, tmp_path):
    ck = variant(good_ckpt, tmp_path, _set("resume", {"iteration": "x", "epochs_done": 0}))
    with pytest.raises(CheckpointError, match=r"field 'resume.iteration' is 'x'"):
        load_checkpoint(ck)


def test_pickled_objects_are_refused_without_torch_advice(pair, tmp_path, cli_run):
    ck = str(tmp_path / "objects.pt")
    torch.save({"format": "hsifusion-checkpoint", "when": datetime.date(2020, 1, 1)}, ck)
    out = tmp_path / "o.tif"
    err = assert_cli_error(cli_run, fuse_argv(pair, ck, out), "is not an hsifusion checkpoint", output=out)
    assert "weights_only" not in err and "trust" not in err


def test_truncated_file_is_refused(pair, good_ckpt, tmp_path, cli_run):
    ck = tmp_path / "cut.pt"
    ck.write_bytes(Path(good_ckpt).read_bytes()[:300])
    out = tmp_path / "o.tif"
    err = assert_cli_error(cli_run, fuse_argv(pair, ck, out), "is not a readable hsifusion checkpoint", output=out)
    assert "weights_only" not in err
