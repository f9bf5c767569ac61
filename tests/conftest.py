"""Fixtures shared by the test modules."""

import contextlib
import os
import urllib.error
import urllib.request

import pytest


def require_agreement(library, compiled, what: str) -> None:
    """Check that the C++ library computes ``what`` in this process (``library``: its
    :class:`~memristor_mat.native.Agreement`'s choice) where torch runs its AVX2 or AVX-512
    kernels, as CI's machines do; under torch's portable kernels (``ATEN_CPU_CAPABILITY=default``,
    an x86 CPU without AVX2) the library may rightly decline, and the test is skipped."""
    import torch

    if library is None and torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip(f"torch's portable kernels: torch's own code computes {what} here")
    assert library is compiled, f"the library's {what} should be torch's on this machine"


@pytest.fixture
def url_calls(monkeypatch):
    """Make every download fail as if offline; the list records the URLs tried."""
    calls: list[str] = []

    def offline_urlopen(request, *args, **kwargs):
        calls.append(getattr(request, "full_url", str(request)))
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline_urlopen)
    return calls


@pytest.fixture
def compiled(monkeypatch):
    """The package's C++ library, built (or loaded) under ``MEMRISTOR_MAT_NATIVE=cpp``: a failed
    build fails the test with the compiler's reason."""
    from memristor_mat import native

    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "cpp")
    return native.module()


@pytest.fixture
def no_compiler(monkeypatch):
    """The C++ library's build fails as on a machine without a compiler (a multi-line error, as
    torch's builder raises), and no earlier build or failure is remembered."""
    from memristor_mat import native

    def fail():
        raise RuntimeError("Error building extension 'memristor_mat_native': c++: not found\nmore")

    monkeypatch.setattr(native, "_build", fail)
    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setattr(native, "_failure", None)


@contextlib.contextmanager
def killed_in_epoch(monkeypatch, epoch: int):
    """Within the block, ``training.train`` is killed (KeyboardInterrupt) at the end of epoch
    ``epoch`` (1-based), just before it would write that epoch's resume state."""
    from memristor_mat import training

    real_accuracy, calls = training.clean_accuracy, {"n": 0}

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt("killed")
        return real_accuracy(*args, **kwargs)

    monkeypatch.setattr(training, "clean_accuracy", killed)
    try:
        yield
    finally:
        monkeypatch.setattr(training, "clean_accuracy", real_accuracy)


def toy_data(n_train=256, n_test=128, seed=0):
    """Two classes told apart by the mean brightness of the left half of a 4x4 image."""
    import torch

    from memristor_mat.datasets import DatasetSplits

    g = torch.Generator().manual_seed(seed)

    def split(n):
        x = torch.rand((n, 1, 4, 4), generator=g)
        y = (x[:, :, :, :2].mean(dim=(1, 2, 3)) > x[:, :, :, 2:].mean(dim=(1, 2, 3))).long()
        return x, y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return DatasetSplits("toy", x_train, y_train, x_test, y_test, 2, "toy data for tests")


def standin_splits(n_train=96, n_test=48):
    """Tiny 3 x 32 x 32 data with a learnable rule: the class is the brighter half of the image."""
    import torch

    from memristor_mat.datasets import DatasetSplits

    g = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.randint(0, 2, (n,), generator=g)
        x = torch.rand((n, 3, 32, 32), generator=g) * 0.5
        x[y == 1, :, :, 16:] += 0.5
        x[y == 0, :, :, :16] += 0.5
        return x, y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return DatasetSplits("standin", x_train, y_train, x_test, y_test, 2, "tiny images for tests")


def toy_events(n_train=200, n_test=100, steps=50, seed=0):
    """Class 1: a burst of events on channel 0 early in the window; class 0: a burst on channel 2.
    Sparse background events on all channels."""
    import torch

    from memristor_mat.datasets import DatasetSplits

    g = torch.Generator().manual_seed(seed)

    def split(n):
        x = (torch.rand((n, steps, 4), generator=g) < 0.02).float()
        y = torch.randint(0, 2, (n,), generator=g)
        start = torch.randint(2, 12, (n,), generator=g)
        for i in range(n):
            channel = 0 if y[i] == 1 else 2
            x[i, start[i]:start[i] + 6, channel] = 1.0
        return x, y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return DatasetSplits("toy_events", x_train, y_train, x_test, y_test, 2, "toy event sequences")


# --- Running the tests on several workers (`make test`: pytest-xdist, --dist loadfile) ---------

# Files whose tests run the whole workflow, the slowest first (`pytest --durations`, issue #12).
# With --dist loadfile (pyproject.toml) a file is one unit of work for one worker, so that its
# module-scoped fixtures (test_workflow.py's finished runs: minutes each) are set up once; these
# files start first and run side by side while the many short files fill the gaps at the end,
# instead of one worker finishing a minutes-long test alone. A file missing here only starts
# later; nothing is left out, and a serial run is merely reordered.
SLOW_FIRST = ("test_workflow.py", "test_kill.py", "test_slurm.py", "test_gpu_check.py", "test_readme.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the collection order within each rank, files stay together


def threads_per_worker(worker_count: str | None, cores: int) -> int | None:
    """torch threads for each of ``worker_count`` xdist workers on ``cores`` cores; None for one
    process (torch's own default)."""
    workers = int(worker_count or 1)
    return max(1, cores // workers) if workers > 1 else None


def this_workers_threads() -> int | None:
    """:func:`threads_per_worker` for this process: xdist names the worker count in the
    environment of each worker; the cores are those this process may run on (all of them where
    the system cannot say, as on macOS)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return threads_per_worker(os.environ.get("PYTEST_XDIST_WORKER_COUNT"), cores)


def pytest_configure(config):
    """On several xdist workers, each worker's torch takes its share of the cores.

    torch starts as many OpenMP threads as the machine has cores in every process: two workers
    on two cores ran four threads, and each parallel region's barrier waited for a thread the
    other worker had taken the core from (test_snn.py, test_spiking_loop.py and test_training.py
    on two workers took 3.1x the CPU seconds they take with a thread per worker,
    benchmarks/README.md). Tests that need a thread count set it themselves and restore it; the
    workflow's jobs set theirs from the rules' ``threads``.

    Every test process keeps the memory it frees, as every job's process does
    (:func:`memristor_mat.runs.prepare_process`), whichever test runs first.
    """
    from memristor_mat.allocator import retain_freed_memory

    retain_freed_memory()
    threads = this_workers_threads()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
