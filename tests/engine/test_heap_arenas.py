"""share_one_heap_arena: threads started after it share glibc's heap arena (engine/pipeline/memory.py).

Counted from glibc's own report (``malloc_info``: one ``<heap nr=...>`` element per arena), in a fresh
process per case, with four threads holding memory at once; the control case without the setting shows
that the count can fail (it sees one arena per thread).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import ctypes, os, sys, tempfile, threading
    sys.path.insert(0, "tools")
    from repo_package import register_package
    register_package()
    from hsifusion.engine.pipeline.memory import share_one_heap_arena
    if sys.argv[1] == "share":
        assert share_one_heap_arena()
    barrier, held = threading.Barrier(5), []

    def work():
        held.append(bytearray(50_000))  # above pymalloc's limit: a malloc in this thread
        barrier.wait()
        barrier.wait()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    barrier.wait()  # every thread holds its block now
    libc = ctypes.CDLL("libc.so.6")
    libc.fdopen.restype = ctypes.c_void_p
    with tempfile.TemporaryFile() as f:
        fp = libc.fdopen(os.dup(f.fileno()), b"w")
        libc.malloc_info(0, ctypes.c_void_p(fp))
        libc.fclose(ctypes.c_void_p(fp))
        f.seek(0)
        print(f.read().decode().count("<heap nr="))
    barrier.wait()
    for t in threads:
        t.join()
""")


def _arenas(case: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, case], cwd=str(ROOT), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc heap arenas")
def test_threads_share_one_arena_after_the_setting():
    assert _arenas("share") == 1
    assert _arenas("default") >= 3  # the control: four threads, their own arenas


REUSE_CHILD = textwrap.dedent("""
    import ctypes, resource, sys
    sys.path.insert(0, "tools")
    from repo_package import register_package
    register_package()
    from hsifusion.engine.pipeline.memory import activations_on_heap, share_one_heap_arena
    libc = ctypes.CDLL("libc.so.6")
    libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4 KiB pages, so a fault counts one page wherever THP is on
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size, rounds = 100 << 20, 6  # a 224-band activation's order of size, as many times as tiles

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            p = libc.malloc(size)
            ctypes.memset(p, 1, size)  # touch every page, as a layer writing its output does
            libc.free(p)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    assert share_one_heap_arena()
    if sys.argv[1] == "heap":
        with activations_on_heap() as on:
            assert on
            n = faults()
    elif sys.argv[1] == "after":  # entered and left: glibc's settled thresholds again
        with activations_on_heap():
            pass
        n = faults()
    else:  # "off": a configuration that does not opt in changes nothing
        with activations_on_heap(False) as on:
            assert not on
            n = faults()
    print(n, size // resource.getpagesize(), rounds)
""")


def _page_faults(case: str):
    out = subprocess.run([sys.executable, "-c", REUSE_CHILD, case], cwd=str(ROOT), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(int(v) for v in out.stdout.split()[-3:])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_large_blocks_freed_on_the_heap_are_reused_without_new_page_faults():
    """activations_on_heap: the next tile's 100 MB activation reuses the freed pages (faulted in once).

    Outside it (a configuration that does not opt in, or after the tile loop) glibc maps and unmaps the block
    each time, so every round faults every page in again. Counts from the kernel's minor-fault counter.
    """
    faults, pages, rounds = _page_faults("heap")
    assert faults < 2 * pages  # one round's pages, plus the interpreter's own few
    for case in ("off", "after"):
        faults, pages, rounds = _page_faults(case)
        assert faults > (rounds - 1) * pages, case


def test_the_heap_is_kept_per_measured_configuration():
    """NetSpec.heap_tiles reaches the tile loop; the paper configurations of AMSF-Net and CoFusion stay out.

    So do runs optimised on every tile (unmeasured).
    """
    from hsifusion.engine.methods.network import NetworkMethod

    assert NetworkMethod("amsfnet", lite=True).keeps_activations_on_heap
    assert not NetworkMethod("amsfnet", lite=False).keeps_activations_on_heap
    assert NetworkMethod("cofusion").keeps_activations_on_heap
    assert not NetworkMethod("cofusion", lite=False).keeps_activations_on_heap
    assert NetworkMethod("ssjcn").keeps_activations_on_heap
    assert NetworkMethod("umsft").keeps_activations_on_heap
    assert not NetworkMethod("umsft", per_tile=True).keeps_activations_on_heap
