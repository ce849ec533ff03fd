"""The same tile engine on a Dask distributed cluster (``--scheduler`` / ``DASK_SCHEDULER``).

``fit`` runs once on the client; the fitted method and the scene are scattered to every worker once
(``broadcast=True``); then one task per output window runs :func:`.tiling.compute_tile` on a worker,
which opens the inputs itself through GDAL (shared filesystem, ``/vsicurl/``, ``/vsis3/`` ...) and
returns the core block. The client writes blocks as they arrive with the same :class:`RasterWriter`;
at most ``max_in_flight`` tasks are pending, so client memory is bounded whatever the raster size.
With ``tile_dir`` the workers write per-tile GeoTIFFs themselves and the client only builds a VRT.

Dask is optional: imported only here, only when a scheduler is asked for. Scheduling, retries on a
lost worker and data transfer are Dask's; nothing here opens a socket or a process pool itself.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import Cancelled, DistributedError, InputError, WorkerEnvironmentError
from ..feedback import Feedback, LogFeedback, check_cancel, ensure_feedback
from ..io.raster import open_raster
from ..io.windows import Window, window_geotransform
from .tiling import TilePlan, compute_tile, plan_tiles

INSTALL_HINT = 'pip install "dask[distributed]" "numpy<2"'
# A remote scheduler must accept the connection and send its handshake within this time (seconds): Dask's
# own connect retried a refused port for 30 s and waited for ever on a port that accepts but stays silent.
CONNECT_TIMEOUT_S = 5
LOCAL_CLUSTER_TIMEOUT_S = 30
HANDSHAKE_MAX_BYTES = 2**20
WORKER_WAIT_S = 60
POLL_S = 0.05
LOST_RESULT_RETRIES = 3
# Seconds before a lost tile is resubmitted, doubled at each loss: a worker killed a moment ago may still
# be on the scheduler's list, and an immediate retry can be sent to it and lost again (seen in CI: all
# four tries of one tile within the scheduler's detection window). 0.5 + 1 + 2 s covers it.
LOST_RESULT_DELAY_S = 0.5
CHECKED_PACKAGES = ("hsifusion", "numpy", "torch", "gdal", "scipy", "python")

# The probe runs on workers that may lack hsifusion: it is compiled outside any importable module so
# that Dask's cloudpickle ships it by value (a function of this module would need hsifusion to unpickle).
_PROBE_SRC = '''
def probe(paths=()):
    import importlib, sys
    out = {"python": "%d.%d" % sys.version_info[:2], "executable": sys.executable}
    for key, mod in (("hsifusion", "hsifusion"), ("numpy", "numpy"), ("torch", "torch"),
                     ("gdal", "osgeo.gdal"), ("scipy", "scipy")):
        try:
            m = importlib.import_module(mod)
            out[key] = str(getattr(m, "__version__", "unknown"))
        except Exception as exc:  # missing or broken: reported, never raised here
            out[key] = None
            out[key + "_error"] = "%s: %s" % (type(exc).__name__, exc)
    unreadable = {}
    if out.get("gdal"):
        from osgeo import gdal
        gdal.UseExceptions()
        for p in paths:
            try:
                if gdal.Open(p) is None:
                    unreadable[p] = "GDAL cannot open it"
            except Exception as exc:
                unreadable[p] = str(exc)
    out["unreadable"] = unreadable
    return out
'''
_ns: Dict = {"__name__": "hsifusion_worker_probe"}
exec(compile(_PROBE_SRC, "<hsifusion worker probe>", "exec"), _ns)  # constant source above
probe_environment: Callable[..., Dict] = _ns["probe"]


def import_distributed():
    """The ``distributed`` module, or a :class:`DistributedError` with the install command."""
    try:
        import distributed
    except ImportError as exc:
        raise DistributedError(f"a Dask scheduler was requested but Dask distributed is not installed "
                               f"({exc}); install it with: {INSTALL_HINT}") from None
    return distributed


def parse_scheduler(spec) -> Optional[Tuple[str, object]]:
    """``None``/``""`` -> None (in-process).

    ``local`` / ``local:N`` -> ("local", N); ``tcp://host:port`` (or tls://, ws://, ...) -> ("address", spec).
    """
    if spec is None:
        return None
    text = str(spec).strip()
    if not text:
        return None
    if text == "local" or text.startswith("local:"):
        n = text.split(":", 1)[1] if ":" in text else str(os.cpu_count() or 1)
        try:
            workers = int(n)
        except ValueError:
            workers = 0
        if workers < 1:
            raise InputError(f"scheduler {text!r}: local:N needs a positive number of workers N")
        return ("local", workers)
    if "://" in text and text.split("://", 1)[1]:
        return ("address", text)
    raise InputError(f"scheduler {text!r} not understood; use local:N (N worker processes here) or the "
                     f"address of a running scheduler such as tcp://host:8786")


def _package_root() -> str:
    return os.path.dirname(os.path.abspath(importlib.import_module("hsifusion").__file__))


def worker_python_path() -> str:
    """A sys.path entry under which ``import hsifusion`` finds this package.

    The repo root is the package whatever the clone's folder name: a temp folder with an ``hsifusion`` link
    otherwise.
    """
    root = _package_root()
    if os.path.basename(root) == "hsifusion":
        return os.path.dirname(root)
    tmp = tempfile.mkdtemp(prefix="hsifusion-path-")
    os.symlink(root, os.path.join(tmp, "hsifusion"))
    return tmp


def _python_for_workers() -> None:
    """Inside QGIS ``sys.executable`` is the QGIS binary.

    Point multiprocessing's spawn at the Python QGIS embeds, so ``local:N`` starts Python workers, not QGIS
    windows.
    """
    import multiprocessing
    import shutil

    if "python" in os.path.basename(sys.executable).lower():
        return
    names = ("python.exe", "python3.exe") if os.name == "nt" else ("python3", "python")
    for folder in (sys.exec_prefix, os.path.join(sys.exec_prefix, "bin")):
        for name in names:
            cand = os.path.join(folder, name)
            if os.path.isfile(cand):
                multiprocessing.set_executable(cand)
                return
    cand = shutil.which("python3")
    if cand:
        multiprocessing.set_executable(cand)


class DaskSession:
    """A connected ``distributed.Client`` (plus the LocalCluster it started, if any), checked."""

    def __init__(self, client, cluster=None, spec: str = "") -> None:
        self.client, self.cluster, self.spec = client, cluster, spec

    @property
    def nthreads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def close(self) -> None:
        for obj in (self.client, self.cluster):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # closing is best effort
                    pass

    def __enter__(self) -> "DaskSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reach_hint(spec) -> str:
    return f"Start one with `dask scheduler` and workers with `dask worker {spec}`"


def probe_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse a ``tcp://`` address that does not answer like a Dask scheduler, within a time limit.

    For ``tcp://host:port``: the port must accept within ``timeout`` s and send the first bytes of
    the Dask handshake (a scheduler speaks first) within ``timeout`` s more. Raises
    :class:`DistributedError` naming the address; other protocols (tls://, ws://) are left to Dask.
    """
    import socket
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        return
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise InputError(f"scheduler address {address!r} has no host:port (e.g. tcp://10.0.0.1:8786)")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        raise DistributedError(f"cannot reach the Dask scheduler {address}: no answer within {timeout:g} s. "
                               + _reach_hint(address)) from None
    except OSError as exc:
        raise DistributedError(f"cannot reach the Dask scheduler {address}: {exc.strerror or exc}. "
                               + _reach_hint(address)) from None
    not_dask = "it is not a Dask scheduler (wrong host or port?)"
    head, closed = b"", False
    with sock:
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while len(head) < 8 and time.monotonic() < deadline:
                part = sock.recv(8 - len(head))
                closed = not part
                if closed:
                    break
                head += part
        except socket.timeout:
            pass
        except OSError as exc:
            raise DistributedError(f"cannot reach the Dask scheduler {address}: {exc.strerror or exc}") from None
    if not head:
        raise DistributedError(f"{address} " + ("closed the connection without a Dask handshake: " if closed else
                                                f"accepts connections but sent no Dask handshake within "
                                                f"{timeout:g} s: ") + not_dask)
    # Dask's TCP frames start with their total length (uint64, little-endian); a handshake is a few dozen
    # bytes. Anything else (an SSH banner read as a length asked Dask for 2.8 EiB) is another protocol.
    if len(head) < 8 or not 8 <= int.from_bytes(head, "little") <= HANDSHAKE_MAX_BYTES:
        raise DistributedError(f"{address} answered {head[:8]!r}..., not a Dask handshake: " + not_dask)


def open_cluster(spec, feedback: Optional[Feedback] = None, inputs: Sequence[str] = (),
                 timeout: Optional[float] = None) -> DaskSession:
    """Start (``local:N``) or connect to (``tcp://...``) a cluster and check its workers.

    ``timeout`` (seconds, default :data:`CONNECT_TIMEOUT_S` for an address, :data:`LOCAL_CLUSTER_TIMEOUT_S`
    for ``local:N``) bounds the connection: a refused port, a silent one or a non-Dask service is a
    :class:`DistributedError` naming the address within about twice that time, never a hang.
    """
    feedback = ensure_feedback(feedback)
    parsed = parse_scheduler(spec)
    if parsed is None:
        raise InputError("no scheduler given")
    kind, value = parsed
    if timeout is None:
        timeout = LOCAL_CLUSTER_TIMEOUT_S if kind == "local" else CONNECT_TIMEOUT_S
    distributed = import_distributed()
    if kind == "address":
        probe_scheduler(str(value), timeout)
    cluster = None
    try:
        if kind == "local":
            _python_for_workers()
            entry = worker_python_path()
            if entry not in sys.path:
                sys.path.append(entry)  # spawned workers inherit sys.path
            env = {"PYTHONPATH": os.pathsep.join(p for p in (entry, os.environ.get("PYTHONPATH")) if p)}
            cluster = distributed.LocalCluster(n_workers=int(value), threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address=None,
                                               silence_logs=logging.ERROR, env=env)
            client = distributed.Client(cluster, timeout=f"{timeout}s")
        else:
            client = distributed.Client(value, timeout=f"{timeout}s")
    except Exception as exc:
        if cluster is not None:
            cluster.close()
        raise DistributedError(f"cannot reach the Dask scheduler {spec}: {type(exc).__name__}: {exc}. "
                               + _reach_hint(spec)) from None
    session = DaskSession(client, cluster, str(spec))
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (TimeoutError, OSError):
            raise DistributedError(f"no Dask worker joined the scheduler {spec} within {WORKER_WAIT_S} s; "
                                   f"start some with `dask worker {spec}`") from None
        check_workers(session, inputs)
    except BaseException:
        session.close()
        raise
    feedback.pushInfo(f"Dask scheduler {client.scheduler.address}: {len(client.nthreads())} worker(s), "
                      f"{session.nthreads} thread(s)")
    return session


def check_workers(session: DaskSession, inputs: Sequence[str] = ()) -> Dict[str, Dict]:
    """Check that every worker matches the client and can read the inputs.

    Every worker must import hsifusion with the client's versions of hsifusion, numpy, torch, GDAL, scipy and
    Python, and must read the inputs. Raises :class:`WorkerEnvironmentError` naming them.
    """
    here = probe_environment(())
    try:
        there = session.client.run(probe_environment, [str(p) for p in inputs])
    except Exception as exc:  # anything here is an environment problem
        raise WorkerEnvironmentError(f"could not query the Dask workers' environment: "
                                     f"{type(exc).__name__}: {exc}") from None
    problems: List[str] = []
    for worker, env in sorted(there.items()):
        diffs = []
        for key in CHECKED_PACKAGES:
            mine, theirs = here.get(key), env.get(key)
            if mine == theirs:
                continue
            if theirs is None:
                diffs.append(f"{key} missing ({env.get(key + '_error', 'not importable')}; "
                             f"client has {key} {mine})")
            elif mine is None:
                continue  # a package the client lacks cannot matter to the client's run
            else:
                diffs.append(f"{key} {theirs} (client has {key} {mine})")
        for path, why in env.get("unreadable", {}).items():
            diffs.append(f"cannot read input {path}: {why}")
        if diffs:
            problems.append(f"worker {worker} ({env.get('executable')}): " + "; ".join(diffs))
    if problems:
        raise WorkerEnvironmentError(
            "Dask workers do not match this machine:\n  " + "\n  ".join(problems) +
            "\nInstall the same versions on every worker (e.g. `pip install <hsifusion folder> "
            f"\"numpy=={here.get('numpy')}\" \"torch=={here.get('torch')}\"`) and put the inputs on storage "
            "every worker reads (shared filesystem, /vsicurl/, /vsis3/).")
    return there


# --------------------------------------------------------------------------------------------- tasks
_local = threading.local()


def _cached_open(path: str):
    """Per worker thread: keep the inputs open between tasks (keyed by path, size and mtime)."""
    cache = getattr(_local, "datasets", None)
    if cache is None:
        cache = _local.datasets = {}
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
    except OSError:
        key = (path, None, None)  # GDAL virtual paths (/vsicurl/ ...)
    ds = cache.get(key)
    if ds is None:
        if len(cache) > 8:
            cache.clear()
        ds = cache[key] = open_raster(path)
    return ds


def worker_torch_threads() -> Optional[int]:
    """Inside a Dask task: give torch this worker's thread count (its ``--nthreads``) and return it.

    torch otherwise starts one intra-op thread per core in every worker process, so N workers on one
    machine run N x cores threads (CoFusion ran 0.86x as fast on 2 workers as on 1). None outside a
    worker or without torch.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(worker, "state", None)
    n = int(getattr(state, "nthreads", None) or getattr(worker, "nthreads", 0) or 0)
    if n < 1:
        return None
    try:
        import torch
    except ImportError:
        return None
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def tile_task(scene, method, core: Window, plan: TilePlan) -> Tuple[Optional[np.ndarray], List[str]]:
    """One output window on a worker: (core block or None, warnings)."""
    worker_torch_threads()
    fb = LogFeedback()
    out = compute_tile(scene, method, core, plan, fb, _cached_open(scene.pair.hsi.path),
                       _cached_open(scene.pair.msi.path))
    return out, fb.warnings


def tile_file_task(scene, method, core: Window, plan: TilePlan, tile_dir: str, stem: str,
                   creation_options=None) -> Tuple[Optional[str], List[str]]:
    """One output window written by the worker itself as a GeoTIFF in ``tile_dir``: (path or None, warnings)."""
    from ..io.writer import RasterWriter

    out, warnings = tile_task(scene, method, core, plan)
    if out is None:
        return None, warnings
    w = plan.out_window(core)
    path = os.path.join(tile_dir, f"{stem}_r{w.row:06d}_c{w.col:06d}.tif")
    pair = scene.pair
    with RasterWriter(path, w.width, w.height, out.shape[0], window_geotransform(pair.out_geotransform, w),
                      pair.out_wkt, nodata=plan.nodata, creation_options=creation_options) as writer:
        writer.write(out, 0, 0)
        writer.commit()
    return path, warnings


# --------------------------------------------------------------------------------------------- loop
def run_bounded(session: DaskSession, func: Callable, items: Sequence, args: Tuple,
                on_result: Callable[[object, object], None], feedback: Optional[Feedback] = None,
                progress_span=(0.0, 100.0), max_in_flight: Optional[int] = None, name: str = "hsif") -> int:
    """Submit ``func(*args[0], item, *args[1])``, one task per item, with at most ``max_in_flight`` pending.

    ``on_result(item, result)`` on the client as each completes (any order). Cancel stops submitting and
    cancels pending tasks. Returns the number of completed items.
    """
    distributed = import_distributed()
    feedback = ensure_feedback(feedback)
    client = session.client
    items = list(items)
    limit = max(1, int(max_in_flight or 2 * session.nthreads + 2))
    lo, hi = progress_span
    pending: Dict[str, Tuple[object, int, int]] = {}
    deferred: List[Tuple[float, int, int]] = []  # (due time, item, attempt) of lost tiles to resubmit
    ac = distributed.as_completed()
    it = iter(range(len(items)))
    run_id = uuid.uuid4().hex[:8]  # keys unique per run: several clients may share a cluster

    def submit(i: int, attempt: int = 0) -> None:
        key = f"{name}-{run_id}-{i}" + (f"-retry{attempt}" if attempt else "")
        fut = client.submit(func, *args[0], items[i], *args[1], key=key, pure=False)
        pending[fut.key] = (fut, i, attempt)
        ac.add(fut)

    def submit_next() -> None:
        i = next(it, None)
        if i is not None:
            submit(i)

    done = 0
    try:
        for _ in range(limit):
            submit_next()
        while pending or deferred:
            check_cancel(feedback)
            now = time.monotonic()
            for entry in [e for e in deferred if e[0] <= now]:
                deferred.remove(entry)
                submit(entry[1], entry[2])
            batch = ac.next_batch(block=False)
            if not batch:
                time.sleep(POLL_S)
                continue
            for fut in batch:
                _, i, attempt = pending.pop(fut.key)
                try:
                    result = fut.result()
                except distributed.client.FutureCancelledError:
                    # Not cancelled by us: its result was on a worker that died before the client fetched
                    # it. Dask reruns lost tasks it still tracks; this one we resubmit ourselves.
                    if attempt >= LOST_RESULT_RETRIES:
                        raise DistributedError(f"tile {i} was lost {attempt + 1} times with its workers") from None
                    delay = LOST_RESULT_DELAY_S * 2 ** attempt
                    feedback.pushInfo(f"tile {i}: result lost with its worker, recomputing in {delay:g} s")
                    deferred.append((time.monotonic() + delay, i, attempt + 1))
                    continue
                except Exception as exc:  # re-raised, Dask's own failures explained
                    if type(exc).__name__ == "KilledWorker":
                        raise DistributedError(f"a tile task was lost with every worker that ran it "
                                               f"({exc}); the workers may be running out of memory") from None
                    raise
                del fut
                on_result(items[i], result)
                done += 1
                feedback.setProgress(lo + (hi - lo) * done / len(items))
                submit_next()
    except BaseException:
        futures = [entry[0] for entry in pending.values()]
        if futures:
            client.cancel(futures)
        raise
    return done


def fuse_tiles_distributed(scene, method, write_block: Callable[[np.ndarray, Window], None], tile_size: int,
                           nodata: float, feedback: Optional[Feedback] = None, progress_span=(0.0, 100.0),
                           session: Optional[DaskSession] = None, max_in_flight: Optional[int] = None,
                           tile_sink=None) -> int:
    """:func:`.tiling.fuse_tiles` on a Dask cluster: same plan, same per-tile function, same writer.

    ``tile_sink`` (a :class:`TileVrtWriter`) makes the workers write per-tile GeoTIFFs instead.
    """
    feedback = ensure_feedback(feedback)
    if session is None:
        raise InputError("no Dask session given")
    plan, cores = plan_tiles(scene, method, tile_size, nodata)
    feedback.pushInfo(f"{len(cores)} tile(s) of up to {plan.tile} px, margin {plan.margin} px, ratio "
                      f"{plan.ratio} on {len(session.client.nthreads())} Dask worker(s)")
    client = session.client
    t0 = time.perf_counter()
    method_f = client.scatter(method, broadcast=True, hash=False)
    scene.compute_fills()  # once here, not once per worker
    scene_f = client.scatter(scene, broadcast=True, hash=False)
    feedback.pushInfo(f"fitted method and scene sent to the workers in {time.perf_counter() - t0:.1f} s")
    warned = set()
    written = [0]

    def forward(warnings) -> None:
        for w in warnings:
            if w not in warned:
                warned.add(w)
                feedback.pushWarning(w)

    if tile_sink is None:
        def on_result(core, result) -> None:
            out, warnings = result
            forward(warnings)
            if out is not None:
                write_block(out, plan.out_window(core))
                written[0] += 1

        run_bounded(session, tile_task, cores, ((scene_f, method_f), (plan,)), on_result, feedback,
                    progress_span, max_in_flight, "hsif-tile")
    else:
        def on_result(core, result) -> None:
            path, warnings = result
            forward(warnings)
            if path is not None:
                tile_sink.add_tile(path)
                written[0] += 1

        run_bounded(session, tile_file_task, cores,
                    ((scene_f, method_f), (plan, tile_sink.tile_dir, tile_sink.stem,
                                           tile_sink.tile_creation_options)),
                    on_result, feedback, progress_span, max_in_flight, "hsif-tilefile")
    client.cancel([method_f, scene_f])
    skipped = len(cores) - written[0]
    if skipped:
        feedback.pushInfo(f"{skipped} tile(s) held only nodata and were skipped")
    return written[0]


# --------------------------------------------------------------------------------- per-tile output
class TileVrtWriter:
    """Writer-shaped sink for per-tile GeoTIFFs written by the workers.

    ``commit`` builds a VRT mosaic (temp name, renamed) and applies the band names, wavelengths and metadata
    set before.
    """

    def __init__(self, path: str, width: int, height: int, bands: int, geotransform, wkt: str,
                 nodata=None, inputs: Iterable[str] = (), creation_options=None, tile_dir: str = "") -> None:
        from ..io.writer import check_output_path

        self.path = check_output_path(path, inputs)
        if not self.path.lower().endswith(".vrt"):
            raise InputError(f"with a tile folder the output is a VRT mosaic: name it *.vrt, not {self.path}")
        if not tile_dir:
            raise InputError("no tile folder given")
        os.makedirs(tile_dir, exist_ok=True)
        self.tile_dir = os.path.abspath(tile_dir)
        self.stem = os.path.splitext(os.path.basename(self.path))[0]
        self.size, self.bands, self.gt, self.wkt, self.nodata = (width, height), bands, tuple(geotransform), wkt, nodata
        self.tile_creation_options = list(creation_options or [])
        self.tiles: List[str] = []
        self._ops: List[Tuple[str, tuple]] = []
        self.tmp_path = os.path.join(os.path.dirname(self.path), f".{os.path.basename(self.path)}.partial.vrt")
        self.committed = False

    def add_tile(self, path: str) -> None:
        self.tiles.append(path)

    def set_band_names(self, *a) -> None:
        self._ops.append(("set_band_names", a))

    def set_wavelengths(self, *a) -> None:
        self._ops.append(("set_wavelengths", a))

    def set_scale_offset(self, *a) -> None:
        self._ops.append(("set_scale_offset", a))

    def set_metadata(self, *a) -> None:
        self._ops.append(("set_metadata", a))

    def write(self, array, col, row) -> None:
        raise InputError("per-tile output is written by the workers")

    def commit(self) -> str:
        from osgeo import gdal

        from ..io.writer import RasterWriter

        w, h = self.size
        gt = self.gt
        bounds = (gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3])
        opts = gdal.BuildVRTOptions(outputBounds=bounds, xRes=abs(gt[1]), yRes=abs(gt[5]),
                                    srcNodata=self.nodata, VRTNodata=self.nodata)
        ds = gdal.BuildVRT(self.tmp_path, sorted(self.tiles), options=opts)
        if ds is None:
            raise DistributedError(f"could not build the VRT mosaic {self.path}")
        ds.SetProjection(self.wkt)
        ds.SetGeoTransform(gt)
        proxy = RasterWriter.__new__(RasterWriter)  # reuse the setters on the VRT dataset
        proxy.ds = ds
        for name, a in self._ops:
            getattr(RasterWriter, name)(proxy, *a)
        ds.FlushCache()
        ds = proxy.ds = None  # GDAL stores tile paths relative to the VRT where it can: the rename keeps them
        os.replace(self.tmp_path, self.path)
        self.committed = True
        return self.path

    def abort(self) -> None:
        if os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)

    def __enter__(self) -> "TileVrtWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()


__all__ = ["open_cluster", "check_workers", "parse_scheduler", "fuse_tiles_distributed", "run_bounded",
           "tile_task", "DaskSession", "TileVrtWriter", "probe_environment", "Cancelled"]
