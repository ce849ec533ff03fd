"""The tile engine on a real Dask cluster.

`dask scheduler` + 2 `dask worker` processes on 127.0.0.1, started from the venv; results equal the in-process
run, also when a worker dies mid-run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from osgeo import gdal

distributed = pytest.importorskip("distributed")

from hsifusion.engine import api, cli  # noqa: E402
from hsifusion.engine.errors import InputError, WorkerEnvironmentError  # noqa: E402
from hsifusion.engine.feedback import LogFeedback  # noqa: E402
from hsifusion.engine.methods import list_methods  # noqa: E402
from hsifusion.engine.pipeline.distributed import DaskSession, check_workers, parse_scheduler  # noqa: E402
from invariance import assert_tile_invariant  # noqa: E402
from rasterkit import ROOT, read, synthetic_pair  # noqa: E402

DASK = str(Path(sys.executable).with_name("dask"))
CLASSICAL = "gsa" if "gsa" in list_methods() else "upsample"
START_TIMEOUT = 60


class LocalProcesses:
    """A scheduler and workers as separate process groups, as `dask scheduler` / `dask worker` start them."""

    def __init__(self, tmp: Path, pythonpath: str) -> None:
        self.tmp, self.procs = tmp, {}
        self.address = None
        self.env = dict(os.environ, PYTHONPATH=pythonpath)

    def _spawn(self, name: str, argv, env) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.tmp),
                             start_new_session=True)
        self.procs[name] = p
        return p

    def start_scheduler(self) -> None:
        """On a free port the scheduler picks itself (--port 0), read back from its scheduler file."""
        sf = self.tmp / "scheduler.json"
        p = self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(sf)], self.env)
        deadline = time.time() + START_TIMEOUT
        while self.address is None and time.time() < deadline and p.poll() is None:
            try:
                self.address = json.loads(sf.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)

    def start_worker(self, name: str, env=None) -> None:
        self._spawn(name, [DASK, "worker", self.address, "--name", name, "--nthreads", "1", "--host", "127.0.0.1",
                           "--no-dashboard", "--memory-limit", "0", "--death-timeout", "60",
                           "--local-directory", str(self.tmp / name)], env or self.env)

    def kill(self, name: str) -> None:
        p = self.procs[name]
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the nanny and its worker: a machine lost, not a restart
            p.wait(10)

    def client(self, n_workers: int):
        c = distributed.Client(self.address, timeout="30s")
        c.wait_for_workers(n_workers, timeout=START_TIMEOUT)
        return c

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for name, p in self.procs.items():
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in sorted(self.tmp.glob("*.log")))


@pytest.fixture(scope="module")
def package_path(tmp_path_factory):
    """PYTHONPATH entry under which the workers import this repo as ``hsifusion``."""
    d = tmp_path_factory.mktemp("pkgpath")
    os.symlink(ROOT, d / "hsifusion")
    return str(d)


def start_cluster(tmp: Path, package_path: str, n: int = 2) -> LocalProcesses:
    cl = LocalProcesses(tmp, package_path)
    cl.start_scheduler()
    if cl.address is None:
        logs = cl.logs()
        cl.stop()
        pytest.fail(f"the Dask scheduler did not start:\n{logs}")
    for i in range(n):
        cl.start_worker(f"w{i}")
    try:
        cl.client(n).close()
    except Exception:
        logs = cl.logs()
        cl.stop()
        pytest.fail(f"the local Dask cluster did not start:\n{logs}")
    return cl


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, package_path):
    cl = start_cluster(tmp_path_factory.mktemp("cluster"), package_path)
    yield cl
    cl.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return synthetic_pair(tmp_path_factory.mktemp("dpair"), ratio=4, lr_size=(24, 20), bands=10, msi_bands=3)


def assert_same_raster(a, b):
    da, db = gdal.Open(str(a)), gdal.Open(str(b))
    assert da.GetGeoTransform() == db.GetGeoTransform()
    assert da.GetProjection() == db.GetProjection() and da.GetProjection()
    assert (da.RasterXSize, da.RasterYSize, da.RasterCount) == (db.RasterXSize, db.RasterYSize, db.RasterCount)
    assert_tile_invariant(read(a), read(b), f"{a} vs {b}")


def test_parse_scheduler():
    assert parse_scheduler(None) is None and parse_scheduler("  ") is None
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "10.0.0.1:8786"):
        with pytest.raises(InputError):
            parse_scheduler(bad)


def test_unreachable_scheduler_is_a_clear_error(monkeypatch, pair, tmp_path, capsys):
    from hsifusion.engine.pipeline import distributed as dist

    monkeypatch.setattr(dist, "CONNECT_TIMEOUT_S", 1)
    hsi, msi = pair
    code = cli.main(["fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", str(tmp_path / "o.tif"),
                     "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the Dask scheduler tcp://127.0.0.1:9" in err and "dask worker" in err
    assert not list(tmp_path.iterdir())


def test_local_cluster_of_worker_processes_equals_in_process(pair, tmp_path):
    """local:N: a LocalCluster whose spawned workers import this repo as hsifusion (whatever its folder name)."""
    hsi, msi = pair
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", tile_size=32)
    fb = LogFeedback()
    res = api.fuse(hsi, msi, str(tmp_path / "b.tif"), "upsample", tile_size=32, scheduler="local:1", feedback=fb)
    assert res["TILES"] == 9 and any("1 worker(s)" in m for m in fb.messages)
    assert_same_raster(tmp_path / "b.tif", tmp_path / "a.tif")


def test_classical_via_cli_on_the_cluster_equals_local(cluster, pair, tmp_path, capsys):
    hsi, msi = pair
    api.fuse(hsi, msi, str(tmp_path / "local.tif"), CLASSICAL, tile_size=16)
    code = cli.main(["fuse", CLASSICAL, "--hsi", hsi, "--msi", msi, "-o", str(tmp_path / "dask.tif"),
                     "--tile-size", "16", "--scheduler", cluster.address])
    out = capsys.readouterr()
    assert code == 0, out.err + cluster.logs()
    assert json.loads(out.out)["TILES"] == 30
    assert "2 worker(s)" in out.err
    assert_same_raster(tmp_path / "dask.tif", tmp_path / "local.tif")


@pytest.fixture(scope="module")
def cofusion_pair(tmp_path_factory):
    """A small pair and a CoFusion (lite) checkpoint trained on it.

    (hsi, msi, checkpoint): CoFusion (lite), the quickest of the five networks on 2 CPU cores, trained
    2 iterations on a small pair; the distributed path is the same for all of them.
    """
    tmp = tmp_path_factory.mktemp("cofusion")
    hsi, msi = synthetic_pair(tmp, ratio=4, lr_size=(16, 16), bands=8, msi_bands=3)
    ck = str(tmp / "cofusion.pt")
    api.fuse(hsi, msi, str(tmp / "train.tif"), "cofusion",
             {"iterations": 2, "device": "cpu", "save_checkpoint": ck, "batch_size": 1, "patch_size": 32,
              "hyper": {"lite": True}})
    return hsi, msi, ck


def test_network_checkpoint_inference_on_the_cluster_equals_local(cluster, cofusion_pair, tmp_path):
    hsi, msi, ck = cofusion_pair
    params = {"checkpoint": ck, "device": "cpu"}
    api.fuse(hsi, msi, str(tmp_path / "local.tif"), "cofusion", params, tile_size=32)
    fb = LogFeedback()
    res = api.fuse(hsi, msi, str(tmp_path / "dask.tif"), "cofusion", params, tile_size=32,
                   scheduler=cluster.address, feedback=fb)
    assert res["mode"] == "checkpoint" and res["TILES"] > 1
    assert any("fitted method and scene sent to the workers" in m for m in fb.messages)
    assert_same_raster(tmp_path / "dask.tif", tmp_path / "local.tif")
    ds = gdal.Open(str(tmp_path / "dask.tif"))
    assert ds.GetRasterBand(1).GetMetadataItem("wavelength")  # same writer, same metadata


# Shipped to the workers by value (compiled outside any importable module, like the engine's probe).
_THREADS_SRC = """
def tile_then_threads(scene, method, core, plan):
    import torch
    from distributed import get_worker
    from hsifusion.engine.pipeline.distributed import tile_task
    nthreads = get_worker().state.nthreads
    if torch.get_num_threads() == nthreads:  # make the check able to fail on a 1-core machine too
        torch.set_num_threads(nthreads + 2)
    out, _ = tile_task(scene, method, core, plan)
    return get_worker().address, nthreads, torch.get_num_threads(), out is not None
"""


def test_network_tile_on_a_worker_uses_one_torch_thread_per_worker_thread(cluster, cofusion_pair):
    """A network tile on a Dask worker uses one torch thread per worker thread.

    Measured on the workers themselves: after a network tile task, torch's intra-op thread count is
    the worker's --nthreads (1 here), not one per core of the machine.
    """
    from hsifusion.engine.io.pair import validate_pair
    from hsifusion.engine.io.raster import raster_info
    from hsifusion.engine.io.scene import build_scene
    from hsifusion.engine.methods import get_method
    from hsifusion.engine.pipeline.tiling import plan_tiles

    hsi, msi, ck = cofusion_pair
    scene = build_scene(validate_pair(raster_info(hsi), raster_info(msi)))
    method = get_method("cofusion", checkpoint=ck, device="cpu")
    method.fit(scene, LogFeedback())
    plan, cores = plan_tiles(scene, method, 32, -9999.0)
    ns = {"__name__": "hsifusion_test_threads"}
    exec(compile(_THREADS_SRC, "<threads probe>", "exec"), ns)
    with cluster.client(2) as client:
        workers = sorted(client.nthreads())
        assert len(workers) == 2
        futures = [client.submit(ns["tile_then_threads"], scene, method, cores[0], plan, workers=[w],
                                 allow_other_workers=False, pure=False) for w in workers]
        reports = client.gather(futures)
    assert sorted(r[0] for r in reports) == workers
    for address, nthreads, torch_threads, wrote in reports:
        assert wrote and nthreads == 1 and torch_threads == nthreads, (address, nthreads, torch_threads)


def test_per_tile_geotiffs_and_vrt_mosaic(cluster, pair, tmp_path):
    hsi, msi = pair
    api.fuse(hsi, msi, str(tmp_path / "local.tif"), "upsample", tile_size=32)
    res = api.fuse(hsi, msi, str(tmp_path / "mosaic.vrt"), "upsample", tile_size=32, scheduler=cluster.address,
                   tile_dir=str(tmp_path / "tiles"))
    assert res["OUTPUT"].endswith("mosaic.vrt") and len(list((tmp_path / "tiles").glob("*.tif"))) == res["TILES"]
    assert_same_raster(tmp_path / "mosaic.vrt", tmp_path / "local.tif")
    assert gdal.Open(str(tmp_path / "mosaic.vrt")).GetRasterBand(1).GetMetadataItem("wavelength")


def test_cancel_stops_submitting_and_leaves_no_output(cluster, pair, tmp_path):
    from hsifusion.engine.errors import Cancelled

    hsi, msi = pair
    fb = LogFeedback(cancel_after_progress=10)
    with pytest.raises(Cancelled):
        api.fuse(hsi, msi, str(tmp_path / "c.tif"), "upsample", tile_size=8, scheduler=cluster.address,
                 feedback=fb, max_in_flight=2)
    assert max(fb.progress) < 50
    assert not list(tmp_path.glob("*c.tif*"))


def test_worker_without_the_package_is_named_on_connect(cluster, pair, tmp_path):
    """Runs last on this cluster: a third worker without hsifusion on its path joins."""
    env = {k: v for k, v in cluster.env.items() if k != "PYTHONPATH"}
    cluster.start_worker("bare", env)
    client = cluster.client(3)
    try:
        with pytest.raises(WorkerEnvironmentError) as e:
            check_workers(DaskSession(client), pair)
    finally:
        client.close()
        cluster.kill("bare")
    msg = str(e.value)
    assert "hsifusion missing" in msg and "client has hsifusion 0.1.0" in msg and "pip install" in msg
    assert "Traceback" not in msg


def test_version_mismatch_names_package_and_versions(pair):
    here = __import__("hsifusion.engine.pipeline.distributed", fromlist=["x"]).probe_environment(())

    class FakeClient:
        def run(self, func, *args):
            return {"tcp://10.0.0.7:4000": dict(here, torch="1.13.1", numpy="2.0.0", unreadable={})}

    with pytest.raises(WorkerEnvironmentError) as e:
        check_workers(DaskSession(FakeClient()), ())
    msg = str(e.value)
    assert "tcp://10.0.0.7:4000" in msg
    assert f"torch 1.13.1 (client has torch {here['torch']})" in msg
    assert f"numpy 2.0.0 (client has numpy {here['numpy']})" in msg


def test_killed_worker_reruns_elsewhere_with_identical_output(tmp_path, package_path, pair):
    hsi, msi = pair
    api.fuse(hsi, msi, str(tmp_path / "local.tif"), CLASSICAL, tile_size=8)
    (tmp_path / "kc").mkdir()
    cl = start_cluster(tmp_path / "kc", package_path)
    killed = {}
    observer = cl.client(2)
    w0 = next(a for a, w in observer.scheduler_info()["workers"].items() if w["name"] == "w0")

    class KillingFeedback(LogFeedback):
        def setProgress(self, progress):  # noqa: N802
            super().setProgress(progress)
            if progress >= 15 and not killed:
                running = observer.processing(workers=[w0]).get(w0, [])
                if running:  # kill while the worker holds tasks: they must rerun on w1
                    killed.update(at=progress, running=list(running))
                    cl.kill("w0")

    try:
        fb = KillingFeedback()
        res = api.fuse(hsi, msi, str(tmp_path / "dask.tif"), CLASSICAL, tile_size=8, scheduler=cl.address,
                       feedback=fb)
        assert killed and killed["at"] < 100 and killed["running"], (killed, cl.logs())
        assert cl.procs["w0"].poll() is not None
        assert res["TILES"] == 120
        assert list(observer.nthreads()) == [a for a in observer.nthreads() if a != w0]  # w0 is gone
    finally:
        observer.close()
        cl.stop()
    assert_same_raster(tmp_path / "dask.tif", tmp_path / "local.tif")


# ----------------------------------------------------------------- lost results (no cluster: fakes)
class _Lost(Exception):
    """Stands for distributed.client.FutureCancelledError."""


class _Future:
    def __init__(self, key, value, lost):
        self.key, self.value, self.lost = key, value, lost

    def result(self):
        if self.lost:
            raise _Lost(self.key)
        return self.value


class _AsCompleted:
    def __init__(self):
        self.queue = []

    def add(self, fut):
        self.queue.append(fut)

    def next_batch(self, block=False):
        batch, self.queue = self.queue, []
        return batch


class _Client:
    """Runs tasks at submit; the first ``losses[item]`` results of an item are lost with their worker."""

    def __init__(self, losses):
        self.losses, self.submits = dict(losses), []

    def submit(self, func, *args, key, pure):
        item = args[0]
        self.submits.append((time.monotonic(), item))
        lost = self.losses.get(item, 0) > 0
        self.losses[item] = self.losses.get(item, 0) - 1
        return _Future(key, func(*args), lost)

    def cancel(self, futures):
        pass


def _run_bounded_with_losses(monkeypatch, losses):
    from types import SimpleNamespace

    import hsifusion.engine.pipeline.distributed as dist

    fake = SimpleNamespace(as_completed=_AsCompleted, client=SimpleNamespace(FutureCancelledError=_Lost))
    monkeypatch.setattr(dist, "import_distributed", lambda: fake)
    monkeypatch.setattr(dist, "LOST_RESULT_DELAY_S", 0.05)
    client = _Client(losses)
    got = {}
    dist.run_bounded(SimpleNamespace(client=client, nthreads=1), lambda x: x * 10, [0, 1, 2], ((), ()),
                     lambda item, res: got.__setitem__(item, res))
    return client, got


def test_a_lost_tile_is_resubmitted_after_a_growing_delay(monkeypatch):
    client, got = _run_bounded_with_losses(monkeypatch, {1: 2})
    assert got == {0: 0, 1: 10, 2: 20}
    times = [t for t, item in client.submits if item == 1]
    assert len(times) == 3  # lost twice, then delivered
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1  # 0.05 s, then doubled


def test_a_tile_lost_every_time_is_a_clear_error(monkeypatch):
    from hsifusion.engine.errors import DistributedError
    from hsifusion.engine.pipeline.distributed import LOST_RESULT_RETRIES

    with pytest.raises(DistributedError, match=f"tile 1 was lost {LOST_RESULT_RETRIES + 1} times"):
        _run_bounded_with_losses(monkeypatch, {1: LOST_RESULT_RETRIES + 1})
