"""``hsifusion`` command line: the Toolbox's fuse / simulate / assess without QGIS.

Installed as a console script by ``pip install .`` (pyproject.toml); also ``python -m hsifusion.engine.cli``.
Nothing on this path imports QGIS. Results are printed as JSON on stdout, messages and progress on
stderr; bad input exits with status 1 and the same message the Toolbox shows, a cancel (Ctrl-C) with 130,
SIGTERM / SIGHUP with 143 / 129 (temporary files removed in every case).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from typing import Dict, List, Optional, Sequence

from .errors import Cancelled, FusionError, InputError
from .learning.checkpoint import plain_data
from .pipeline.tile_geometry import AUTO_TILE

EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED = 1, 2, 130
INSTALL_HINTS = {
    "torch": "install PyTorch: pip install torch (CPU only: pip install torch --index-url "
             "https://download.pytorch.org/whl/cpu)",
    "scipy": "install it: pip install scipy",
    "osgeo": "install GDAL's Python bindings (e.g. apt install python3-gdal, and a venv created with "
             "--system-site-packages)",
    "distributed": 'install Dask: pip install "dask[distributed]"',
    "dask": 'install Dask: pip install "dask[distributed]"',
}
PSF_KINDS = ("gaussian", "mtf", "kernel")


class CliFeedback:
    """Feedback on stderr: messages, warnings and progress every 10 %.

    Ctrl-C cancels like the Toolbox's Cancel button (a second Ctrl-C interrupts at once).
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.canceled = False
        self._last = -10.0
        self.warnings: List[str] = []

    def setProgress(self, progress: float) -> None:  # noqa: N802
        if not self.quiet and (progress >= self._last + 10 or progress >= 100 > self._last):
            self._last = math.floor(progress / 10) * 10
            print(f"  {progress:5.1f} %", file=sys.stderr, flush=True)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        if not self.quiet:
            print(info, file=sys.stderr, flush=True)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.warnings.append(warning)
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        print(f"error: {error}", file=sys.stderr, flush=True)

    def isCanceled(self) -> bool:  # noqa: N802
        return self.canceled

    def cancel(self, *_) -> None:
        if self.canceled:
            raise KeyboardInterrupt
        self.canceled = True
        print("cancelling (Ctrl-C again to interrupt at once) ...", file=sys.stderr, flush=True)


def _methods() -> List[str]:
    from .methods import list_methods

    return list_methods()


def _networks() -> List[str]:
    from .methods import method_specs

    return [s.id for s in method_specs("network")]


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key_values(items: Optional[Sequence[str]], what: str) -> Dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"{what} {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = _value(v.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    methods = _methods()
    nets = _networks()
    p = argparse.ArgumentParser(
        prog="hsifusion",
        description="Hyperspectral + multispectral image fusion without QGIS (the Toolbox's engine).",
        epilog="methods: " + ", ".join(methods) + ". Results are printed as JSON on stdout.")
    p.add_argument("--version", action="version", version=f"hsifusion {_version()}")
    sub = p.add_subparsers(dest="command", metavar="{fuse,simulate,assess}")
    sub.required = True

    f = sub.add_parser("fuse", help="fuse an LR-HSI with an HR-MSI onto the MSI grid",
                       description="Fuse an LR-HSI with an HR-MSI onto the MSI grid, tile by tile. "
                                   "Networks (" + ", ".join(nets) + ") train scene-adaptively on the pair "
                                   "unless a --checkpoint is given.")
    f.add_argument("method", metavar="METHOD", choices=methods + ["auto"],
                   help="one of: " + ", ".join(methods) + "; auto = the candidate that scores best at the "
                        "reduced scale (self-validation on the pair)")
    f.add_argument("--hsi", required=True, help="low-resolution hyperspectral raster (any GDAL path)")
    f.add_argument("--msi", required=True, help="high-resolution multispectral raster (output grid)")
    f.add_argument("--output", "-o", required=True,
                   help="output raster: .tif/.tiff GeoTIFF, .img Erdas Imagine, .dat/.bsq ENVI "
                        "(a .vrt with --tile-dir)")
    f.add_argument("--tile-size", type=int, default=AUTO_TILE,
                   help="tile side in HR pixels (default 0 = automatic: 256 for the classical methods, "
                        "measured per network)")
    add_method_options(f)
    f.add_argument("--param", "-p", action="append", metavar="KEY=VALUE",
                   help="any method parameter by name (value parsed as JSON, else text); repeatable")
    for sensor in ("hsi", "msi"):
        f.add_argument(f"--{sensor}-wavelengths", default=None,
                       help=f"{sensor.upper()} wavelengths in nm (list or CSV) if the raster lacks them")
    f.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="none = in-process; local:N = N Dask worker processes here; tcp://host:port = a "
                        "running Dask scheduler (`dask scheduler` / `dask worker`)")
    f.add_argument("--max-in-flight", type=int, default=None,
                   help="with --scheduler: at most this many tile tasks pending (default 2 x worker threads + 2)")
    f.add_argument("--tile-dir", default=None,
                   help="with --scheduler: workers write per-tile GeoTIFFs into this folder (shared storage) "
                        "and OUTPUT (*.vrt) is their mosaic")
    f.add_argument("--candidates", default=None, help="auto: comma-separated methods to score "
                   "(default upsample,gsa,glp,sfim,cnmf)")
    f.add_argument("--network-seconds", type=float, default=None,
                   help="auto: time budget of each network candidate (needed to include one)")
    f.add_argument("--output-table", default=None, help="auto: CSV of the self-validation table")
    f.add_argument("--output-report", default=None, help="auto: HTML report of the self-validation table")
    _common(f)

    s = sub.add_parser("simulate", help="simulate an LR-HSI and an HR-MSI from an HR-HSI (Wald protocol)")
    s.add_argument("--reference", required=True, help="high-resolution hyperspectral reference")
    s.add_argument("--ratio", type=float, default=4, help="resolution ratio, integer >= 2 (default 4)")
    s.add_argument("--psf", choices=PSF_KINDS, default="gaussian", help="point spread function (default gaussian)")
    s.add_argument("--psf-fwhm", type=float, default=None, help="Gaussian FWHM in HR pixels (default RATIO)")
    s.add_argument("--mtf-gain", type=float, default=None, help="MTF gain at Nyquist for --psf mtf (default 0.3)")
    s.add_argument("--psf-file", default=None, help="kernel file for --psf kernel")
    s.add_argument("--sensor", default="sentinel2a_msi", help="bundled MSI sensor (default sentinel2a_msi): "
                   + ", ".join(_sensors()))
    s.add_argument("--srf-file", default=None, help="custom spectral response CSV (overrides --sensor)")
    s.add_argument("--sensor-bands", default=None, help="sensor bands to simulate, comma separated")
    s.add_argument("--wavelengths", default=None, help="HSI wavelengths in nm (list or CSV) if the raster lacks them")
    s.add_argument("--snr-hsi", type=float, default=None, help="SNR of the LR-HSI in dB (default no noise)")
    s.add_argument("--snr-msi", type=float, default=None, help="SNR of the HR-MSI in dB (default no noise)")
    s.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    s.add_argument("--tile-size", type=int, default=256, help="tile side in HR pixels (default 256)")
    s.add_argument("--output-hsi", default=None, help="simulated LR-HSI GeoTIFF")
    s.add_argument("--output-msi", default=None, help="simulated HR-MSI GeoTIFF")
    _common(s)

    a = sub.add_parser("assess", help="fusion quality against a reference, or without one (QNR)")
    a.add_argument("--estimate", required=True, help="the fused HR-HSI")
    a.add_argument("--reference", default=None, help="reference HR-HSI (omit for no-reference QNR)")
    a.add_argument("--ratio", type=float, default=4, help="resolution ratio for ERGAS (0 = from LR-HSI/MSI; default 4)")
    a.add_argument("--mask", default=None, help="mask raster (0 or nodata = ignored)")
    a.add_argument("--border", type=int, default=0, help="pixels to ignore at each edge (default 0)")
    a.add_argument("--lr-hsi", default=None, help="LR-HSI the estimate was fused from (QNR)")
    a.add_argument("--msi", default=None, help="HR-MSI the estimate was fused from (QNR)")
    a.add_argument("--tile-size", type=int, default=256, help="tile side in pixels (default 256)")
    a.add_argument("--output-sam", default=None, help="SAM map GeoTIFF (degrees)")
    a.add_argument("--output-table", default=None, help="per-band metrics CSV")
    a.add_argument("--output-report", default=None, help="HTML report")
    _common(a)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--creation-option", "--co", action="append", metavar="KEY=VALUE",
                   help="GeoTIFF creation option; repeatable")
    p.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors on stderr")


def _sensors() -> List[str]:
    try:
        from .sensors.srf import list_sensors

        return list_sensors()
    except Exception:  # help text only
        return []


def _version() -> str:
    from .version import __version__

    return __version__


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per parameter any method declares (engine/params.py), with its type and choices.

    The help names the methods that take it. Unset options stay None (= the method's default).
    """
    from .methods import method_specs
    from .params import DEVICE

    specs = method_specs()
    seen: Dict[str, List] = {}
    for spec in specs:
        for p in spec.params:
            if p.exposed:
                seen.setdefault(p.name, [p, {}])[1][spec.id] = p.default
    for name, (p, defaults) in seen.items():
        kw: Dict = {"default": None, "dest": f"param_{name}", "metavar": name.upper()}
        if p.type is bool:
            kw.update(action=argparse.BooleanOptionalAction, metavar=None)
        elif p.type is dict:
            kw.update(type=json.loads, metavar="JSON")
        else:
            kw["type"] = p.type
            if p.choices is not None and p.kind != DEVICE:
                kw.update(choices=p.choices, metavar=None)
        if len(set(map(repr, defaults.values()))) > 1:
            default = "; defaults " + ", ".join(f"{i} {v}" for i, v in defaults.items())
        else:
            default = "" if p.default is None else f"; default {p.default}"
        kw["help"] = f"{p.label} ({', '.join(defaults) if len(defaults) < len(specs) else 'every method'}{default})"
        parser.add_argument(p.cli_flag, **kw)


def method_options(args, method: str) -> Dict:
    """The method options set on the command line.

    Refused (InputError) when ``method`` does not take them: the message names the methods that do.
    """
    from .methods import method_spec, method_specs
    from .params import declared_names

    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    spec = method_spec(method)
    wrong = [k for k in given if k not in {p.name for p in spec.params}]
    if wrong:
        nets = set(_networks())
        owners = sorted({i for k in wrong for i in declared_names(method_specs(), k)})
        who = "the networks" if set(owners) <= nets else "the methods"
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags}: only for {who} ({', '.join(owners)}), not for {method}")
    return given


def _fuse_auto(args, feedback) -> Dict:
    from . import api

    given = [k for k, v in vars(args).items() if k.startswith("param_") and v is not None]
    if args.param or given or args.scheduler or args.tile_dir:
        raise InputError("fuse auto runs each candidate with its defaults: method options, --param, --scheduler "
                         "and --tile-dir do not apply")
    return api.fuse_auto(args.hsi, args.msi, args.output,
                         candidates=args.candidates.split(",") if args.candidates else None,
                         network_seconds=args.network_seconds, out_table=args.output_table,
                         out_report=args.output_report, tile_size=args.tile_size, feedback=feedback,
                         creation_options=args.creation_option, hsi_wavelengths=args.hsi_wavelengths,
                         msi_wavelengths=args.msi_wavelengths)


def _fuse(args, feedback) -> Dict:
    from . import api
    from .methods import get_method

    if args.method == "auto":
        return _fuse_auto(args, feedback)
    auto_only = [o for o, v in (("--candidates", args.candidates), ("--network-seconds", args.network_seconds),
                                ("--output-table", args.output_table), ("--output-report", args.output_report))
                 if v is not None]
    if auto_only:
        raise InputError(f"{', '.join(auto_only)}: only for fuse auto")
    params = _key_values(args.param, "--param")
    params.update(method_options(args, args.method))
    method = get_method(args.method, **params)
    return api.fuse(args.hsi, args.msi, args.output, method, tile_size=args.tile_size, feedback=feedback,
                    creation_options=args.creation_option, hsi_wavelengths=args.hsi_wavelengths,
                    msi_wavelengths=args.msi_wavelengths, scheduler=args.scheduler,
                    max_in_flight=args.max_in_flight, tile_dir=args.tile_dir)


def _simulate(args, feedback) -> Dict:
    from . import api

    psf: Dict = {"kind": args.psf}
    if args.psf == "gaussian" and args.psf_fwhm:
        psf["fwhm"] = args.psf_fwhm
    if args.psf == "mtf":
        psf["gain"] = args.mtf_gain or 0.3
    if args.psf == "kernel":
        psf["path"] = args.psf_file
    ratio = int(args.ratio) if float(args.ratio).is_integer() else args.ratio
    return api.simulate(args.reference, args.output_hsi, args.output_msi, ratio=ratio, psf=psf,
                        sensor=args.sensor, srf_file=args.srf_file, bands=args.sensor_bands,
                        snr_hsi=args.snr_hsi, snr_msi=args.snr_msi, seed=args.seed, tile_size=args.tile_size,
                        feedback=feedback, wavelengths=args.wavelengths, creation_options=args.creation_option)


def _assess(args, feedback) -> Dict:
    from . import api

    return api.assess(args.reference, args.estimate, args.ratio or None, out_sam=args.output_sam,
                      out_table=args.output_table, out_report=args.output_report, mask=args.mask,
                      border=args.border, tile_size=args.tile_size, feedback=feedback, lr_hsi=args.lr_hsi,
                      msi=args.msi, creation_options=args.creation_option)


CLI_GDAL_CACHE_MIB = 256


def cap_gdal_cache(mib: int = CLI_GDAL_CACHE_MIB) -> None:
    """Cap GDAL's block cache unless the user set GDAL_CACHEMAX.

    Its default (5 % of RAM) is what made peak memory grow with the raster (1.2 GB here, 3.2 GB on a 64 GB
    machine); the tile loop needs only the input blocks of one row of tiles. Inside QGIS the cache is QGIS's
    setting, left alone.
    """
    from osgeo import gdal

    if not os.environ.get("GDAL_CACHEMAX") and gdal.GetCacheMax() > mib * 2**20:
        gdal.SetCacheMax(mib * 2**20)


class Terminated(BaseException):
    """SIGTERM / SIGHUP received.

    Unwinds at once (not only between tiles), so every writer's ``with`` block removes its temporary
    file, as a cancel does.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, _frame) -> None:
    raise Terminated(signum)


TERMINATING_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def _install_signal_handlers(feedback: CliFeedback) -> Dict:
    """Ctrl-C cancels like the Toolbox's button; SIGTERM/SIGHUP raise :class:`Terminated`.

    Returns the previous handlers (empty off the main thread, where Python allows none).
    """
    previous = {}
    try:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, feedback.cancel)
        for sig in TERMINATING_SIGNALS:
            previous[sig] = signal.signal(sig, _terminate)
    except ValueError:  # not the main thread
        pass
    return previous


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cap_gdal_cache()
    feedback = CliFeedback(args.quiet)
    previous = _install_signal_handlers(feedback)
    try:
        run = {"fuse": _fuse, "simulate": _simulate, "assess": _assess}[args.command]
        result = run(args, feedback)
    except Cancelled as exc:
        print(f"hsifusion {args.command}: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print(f"hsifusion {args.command}: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except Terminated as exc:
        print(f"hsifusion {args.command}: stopped by {exc}; partial outputs removed", file=sys.stderr)
        return 128 + exc.signum
    except FusionError as exc:
        print(f"hsifusion {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:
        hint = INSTALL_HINTS.get((exc.name or "").split(".")[0])
        if hint is None:
            raise
        print(f"hsifusion {args.command}: error: {exc.name} is not installed; {hint}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(json.dumps(plain_data(result), default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
