"""The workflow on a real single-node SLURM, through profiles/slurm and the executor plugin.

The fixture installs SLURM and munge with apt-get where they are missing (root only), writes a
one-node configuration to /etc/slurm/slurm.conf (the plugin's job step drops SLURM_CONF, so the
default path is the only one that works), starts munged, slurmctld and slurmd, and always stops
the daemons it started, by pid. It skips, with the reason, only where SLURM cannot be installed
or a SLURM configuration that is not ours already exists. A second test run on the same machine
waits for the first one's cluster to be gone (a lock file), rather than starting over it.
"""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_data import make_mnist_raw
from test_workflow import REPO, SNAKEMAKE, tiny_config

pytestmark = pytest.mark.slow

SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by memristor-mat tests/test_slurm.py"
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "munged", "munge")


def run(command, timeout=60, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def install_slurm() -> str | None:
    """None when SLURM is ready to use, else why it cannot be had here."""
    if all(shutil.which(b) for b in BINARIES):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "SLURM is not installed, and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]
    result = run(install, timeout=900, env=env)
    if result.returncode != 0:
        run(["apt-get", "update", "-qq"], timeout=900, env=env)
        result = run(install, timeout=900, env=env)
    if result.returncode != 0 or not all(shutil.which(b) for b in BINARIES):
        return f"apt-get install slurm-wlm munge failed: {result.stderr[-500:]}"
    return None


def slurm_conf(state: Path) -> str:
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 2048
    return f"""{MARKER}
ClusterName=memristor-mat-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# squeue must still list finished jobs when the plugin polls (no accounting database here)
MinJobAge=300
ReturnToService=2
StateSaveLocation={state}/state
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def munge_works() -> bool:
    encoded = run(["munge", "-n"], timeout=10)
    return encoded.returncode == 0 and run(["unmunge"], input=encoded.stdout, timeout=10).returncode == 0


def start_munge() -> int | None:
    """Start munged unless one already answers; its pid, or None when it was not ours."""
    if munge_works():
        return None
    key = Path("/etc/munge/munge.key")
    for folder in ("/etc/munge", "/run/munge", "/var/lib/munge", "/var/log/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    run(["chown", "-R", "munge:munge", "/etc/munge", "/run/munge", "/var/lib/munge", "/var/log/munge"])
    key.chmod(0o400)
    pid_file = Path("/run/munge/memristor-mat-test.pid")  # munged runs as munge: a folder it may write
    run(["su", "-s", "/bin/sh", "munge", "-c", f"/usr/sbin/munged --pid-file={pid_file} --force"])
    deadline = time.monotonic() + 20
    while not munge_works():
        if time.monotonic() > deadline:
            pytest.fail("munged did not start")
        time.sleep(0.2)
    return int(pid_file.read_text()) if pid_file.exists() else None


def stop(pid: int | None) -> None:
    if pid is None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# One test cluster per machine: /etc/slurm/slurm.conf, munged and the daemons' ports are the
# machine's, so a second test run at the same time (another checkout, CI beside a developer's
# `make test`) waits until this run's cluster is gone instead of starting over it.
CLUSTER_LOCK = Path(tempfile.gettempdir()) / "memristor-mat-test-slurm.lock"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    with CLUSTER_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
        yield from one_node_cluster(tmp_path_factory)


def one_node_cluster(tmp_path_factory):
    reason = install_slurm()
    if reason:
        pytest.skip(reason)
    if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text():
        pytest.skip(f"{SLURM_CONF} exists and is not this test's: not touching a real cluster's configuration")
    state = tmp_path_factory.mktemp("slurm")
    for folder in ("state", "spool"):
        (state / folder).mkdir()
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(slurm_conf(state))
    pids = [start_munge()]
    try:
        for daemon in (["slurmctld"], ["slurmd", "-N", "localhost"]):
            result = run(daemon, timeout=30)
            assert result.returncode == 0, f"{daemon[0]} did not start: {result.stderr}"
        deadline = time.monotonic() + 30
        while "idle" not in run(["sinfo", "-h", "-o", "%T"], timeout=10).stdout:
            if time.monotonic() > deadline:
                pytest.fail("the SLURM node never became idle:\n" + (state / "slurmctld.log").read_text()[-2000:])
            time.sleep(0.3)
        yield state
    finally:
        stop(read_pid(state / "slurmd.pid"))
        stop(read_pid(state / "slurmctld.pid"))
        for pid in pids:
            stop(pid)
        if SLURM_CONF.exists() and MARKER in SLURM_CONF.read_text():
            SLURM_CONF.unlink()


def small_config(with_broken_task: bool) -> dict:
    """The demo's MNIST task, shrunk, alone (every rule kind that goes to the queue, the device
    rules included; the CIFAR code path runs end to end in test_workflow.py), and optionally a
    second, minimal task whose data cannot be had."""
    config = tiny_config()
    task = config["tasks"]["mnist"]
    task["seeds"] = [14]
    task["training"]["epochs"] = 1
    task["methods"] = {"vanilla": {}, "mat": {"sigma_train": [0.2], "training": {"epochs": 1}}}
    task["figures"].update(headline_method="mat", headline_sigma_train=0.2)
    # one device at two times: its evaluation jobs go to the queue and its figures (the heatmaps
    # and accuracy against time) run locally; every device model and figure runs in test_workflow.py
    task["evaluation"]["devices"] = {"pcm": {"model": "pcm", "conditions": {"t_inference": [1, 86400]}}}
    # a job per model, as the paper configs run on a cluster (the demo's per-method jobs run locally)
    task["resources"].update(train_jobs="per_model", evaluate_jobs="per_model")
    config["tasks"] = {"mnist": task}
    if with_broken_task:
        # full MNIST, download forbidden and no files on disk: its fetch job fails. Two models
        # (the figures need vanilla) and no device evaluation: the rerun only has to show that
        # the rest gets finished.
        broken = yaml.safe_load(yaml.safe_dump(task))
        broken["dataset"] = {"name": "mnist", "options": {"download": False}}
        broken["methods"] = {"vanilla": {}, "mat_scratch": {"sigma_train": [0.2]}}
        broken["figures"].update(headline_method="mat_scratch", headline_sigma_train=0.2)
        # its two models in one training and one evaluation job: what the rerun shows does not
        # depend on the layout (the first task's covers a job per model), and every queued job
        # pays two Snakemake start-ups inside it (the plugin's sbatch job, then its srun step)
        broken["resources"].update(train_jobs="per_task", evaluate_jobs="per_task")
        for key in ("devices", "device_draws"):
            broken["evaluation"].pop(key, None)
        config["tasks"]["broken"] = broken
    return config


def snakemake_argv(workdir: Path, config: dict, *args) -> list[str]:
    path = workdir / "run_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(path), *args]


def snakemake_env() -> dict:
    return {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, config: dict, *args, timeout=900):
    return subprocess.run(snakemake_argv(workdir, config, *args), capture_output=True, text=True,
                          timeout=timeout, env=snakemake_env())


# The profile's values are a real cluster's (latency-wait 120 s for a shared file system, the
# plugin's 40 s before the first status check); a one-node test cluster on a local disk needs
# none of that waiting, so the test overrides them on the command line.
TEST_CLUSTER_TIMINGS = ("--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
                        "--latency-wait", "5")

# The plugin also adds 10 s to its polling interval after each round in which no job ended (1,
# 11, 21, ... s, up to 180 s) and has no setting for that step: a 15 s job is seen to end after
# 33 s, and the test's chains of dependent jobs spent most of their time waiting for the next
# poll. The submitting Snakemake of this test caps the interval at the initial one; everything
# else (profile, sbatch, squeue, the job steps) is the plugin's own. Should a later plugin
# release lack the property, the cap is skipped and the test only takes longer.
SNAKEMAKE_POLLING_EVERY_INIT_SECONDS = """
import sys
import snakemake_executor_plugin_slurm as slurm

interval = getattr(slurm.Executor, "next_seconds_between_status_checks", None)
if isinstance(interval, property) and interval.fset is not None:
    def capped(executor, seconds):
        initial = executor.workflow.executor_settings.init_seconds_before_status_checks
        interval.fset(executor, seconds if seconds is None else min(seconds, initial))
    slurm.Executor.next_seconds_between_status_checks = property(interval.fget, capped)

from snakemake.cli import main
sys.exit(main())
"""


def on_slurm(workdir: Path, config: dict):
    argv = snakemake_argv(workdir, config, "--workflow-profile", str(REPO / "profiles/slurm"), "--slurm-no-account",
                          *TEST_CLUSTER_TIMINGS,
                          "--slurm-keep-successful-logs")  # the logs name the rules that went to the queue
    argv[0:1] = [sys.executable, "-c", SNAKEMAKE_POLLING_EVERY_INIT_SECONDS]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, env=snakemake_env())


def test_workflow_on_slurm_matches_local_run_and_survives_a_failed_job(slurm_cluster, tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    local.mkdir()
    cluster.mkdir()
    # The reference: the same task run locally, only as far as the table compared below. It runs
    # while the cluster run waits on the queue (its own folder; the numbers do not depend on
    # what else runs).
    reference_log = tmp_path / "local.out"
    with reference_log.open("w") as log:
        reference = subprocess.Popen(
            snakemake_argv(local, small_config(with_broken_task=False), "--cores", "2", "results/mnist/accuracy.parquet"),
            stdout=log, stderr=subprocess.STDOUT, env=snakemake_env(),
        )
    try:
        # One task's data is missing: its jobs fail, the workflow says so, the other task completes.
        result = on_slurm(cluster, small_config(with_broken_task=True))
        reference.wait(timeout=900)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    assert reference.returncode == 0, reference_log.read_text()[-3000:]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    # the raw files are fetched (here: checked) by a local job, where the workflow was started
    assert "Error in rule fetch_raw_data" in output and "data/raw/manifests/mnist.json" in output
    assert "Error in rule prepare_data" not in output
    ours = pd.read_parquet(cluster / "results/mnist/accuracy.parquet")
    expected = pd.read_parquet(local / "results/mnist/accuracy.parquet")
    pd.testing.assert_frame_equal(ours, expected)  # the same numbers as the local run
    checkpoint = cluster / "results/models/mnist/mat/sigma~0.2/seed~14/model.pt"
    finished_at = checkpoint.stat().st_mtime_ns

    # With the data in place a rerun finishes the rest and leaves what was done alone.
    make_mnist_raw(cluster / "data" / "raw")
    result = on_slurm(cluster, small_config(with_broken_task=True))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (cluster / "figures/broken/accuracy_vs_noise.png").stat().st_size > 0
    assert (cluster / "figures/mnist/accuracy_vs_time.png").stat().st_size > 0
    assert checkpoint.stat().st_mtime_ns == finished_at
    # only heavy jobs went to the queue (the plugin logs each sbatch job under rule_<name>);
    # fetching raw data, tables and figures are localrules and ran on the submitting node
    submitted = {path.name for path in (cluster / ".snakemake/slurm_logs").iterdir()}
    heavy = {f"rule_{name}" for name in ("prepare_data", "train", "train_setting", "train_method", "train_task",
                                         "evaluate", "evaluate_devices")}
    assert {"rule_prepare_data", "rule_train", "rule_evaluate", "rule_evaluate_devices"} <= submitted <= heavy, submitted
    assert (cluster / "data/raw/manifests/mnist.json").is_file()
