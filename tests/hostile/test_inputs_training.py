"""Hostile inputs, training: the defaults on a small pair.

A small pair with the default VALIDATION (0.2) and PATCH_SIZE (64) used to
be refused ("no validation patch fits"); validation now adapts (smaller validation patches, or off with
a warning) and the checkpoint is written.
"""
from __future__ import annotations

import pytest

from hsifusion.engine import api
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.io.windows import Window
from hsifusion.engine.learning.checkpoint import load_checkpoint
from hsifusion.engine.learning.corpus_training import split_regions, validation_side
from rasterkit import synthetic_pair


@pytest.mark.parametrize("network,hyper", [("amsfnet", {"width": 8}), ("ssjcn", {"width": 8})])
def test_defaults_on_a_256_px_pair_train_without_refusing(tmp_path, network, hyper):
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(64, 64), bands=8, msi_bands=3)
    ck = str(tmp_path / "net.pt")
    fb = LogFeedback()
    out = api.train(network, ck, pairs=[(hsi, msi)], iterations=1, batch_size=1, device="cpu", hyper=hyper,
                    feedback=fb)
    assert out["PATCH_SIZE"] == 64
    assert any("training on the whole area without validation" in w for w in fb.warnings), fb.warnings
    p = load_checkpoint(ck)
    assert p["training"]["validation_patches"] == 0 and p["training"]["iterations"] == 1


class _Strip:
    def __init__(self, region: Window, margin: int = 0) -> None:
        self.region, self.margin, self.label = region, margin, "src"


def test_validation_patches_shrink_to_the_held_out_strip():
    """Validation patches shrink to fit the held-out strip.

    A 200 x 120 px region, 20 % held out: a 40 px strip; 64 px patches shrink to 32 (step 16), a step
    of 48 fits nothing (None), and a strip wide enough keeps the training patch size.
    """
    src = _Strip(Window(0, 0, 200, 120))
    split_regions(src, 0.2, 4)
    assert (src.val.width, src.val.height) == (40, 120)
    assert validation_side([src], 64, 16, 16) == 32
    assert validation_side([src], 64, 48, 48) is None
    assert validation_side([src], 32, 16, 16) == 32
    assert (src.train.width, src.train.height) == (160, 120)  # margin 0: training stops at the strip
