"""A real two-node Ray cluster on one machine: a search spreads its trials over both nodes and
finishes without losing anything when the worker node dies in the middle of a trial.

The cluster is separate from the test session's Ray (its own ports and temp dir) and is
started with ``ray start --block`` in two process groups, so the test can kill exactly its own
processes: ``ray stop`` would stop every Ray on the machine, the session's one included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

from snas.store import ResultsStore

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="walks /proc to kill the cluster's processes")]

ROOT = Path(__file__).parents[1]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")
RAY = str(Path(sys.executable).with_name("ray"))
NUM_SAMPLES = 4
# FIFO, and enough epochs that a trial (7-20 s here) outlasts starting a trial actor on the
# worker (3-8 s): with reuse_actors, Tune hands the next trial to the head's actor whenever
# that one is free first, so short trials would all run on the head. The kill then lands
# inside a trial, and every trial must end with exactly EPOCHS epochs.
EPOCHS = 150


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (Ray workers run in their own process groups)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def kill_tree(root: int) -> None:
    for pid in process_tree(root):  # collected first: killed parents orphan their children
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalCluster:
    """A head and worker nodes as separate ``ray start --block`` processes on this host."""

    def __init__(self, temp_dir: Path):
        self.temp_dir = temp_dir
        self.nodes: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, role: str, *args: str) -> subprocess.Popen:
        ports = free_ports(6)
        argv = [RAY, "start", "--block", "--num-cpus", "1", "--temp-dir", str(self.temp_dir),
                "--disable-usage-stats", "--object-store-memory", str(80 * 1024**2),
                "--node-manager-port", str(ports[0]), "--object-manager-port", str(ports[1]),
                "--dashboard-agent-listen-port", str(ports[2]),
                "--dashboard-agent-grpc-port", str(ports[3]),
                "--metrics-export-port", str(ports[4]), "--runtime-env-agent-port",
                str(ports[5]), *args]
        log = open(self.temp_dir / f"{role}-{len(self.nodes)}.log", "wb")  # noqa: SIM115
        node = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=ray_free_env())
        log.close()
        self.nodes.append(node)
        return node

    def start_head(self) -> subprocess.Popen:
        port, dashboard_port = free_ports(2)
        self.address = f"127.0.0.1:{port}"
        return self._start("head", "--head", "--port", str(port), "--node-ip-address",
                           "127.0.0.1", "--include-dashboard=false",
                           "--dashboard-port", str(dashboard_port))

    def add_worker(self) -> subprocess.Popen:
        return self._start("worker", "--address", self.address, "--node-ip-address",
                           "127.0.0.1")

    def node_ids(self, count: int, timeout: float = 90) -> dict[int, str]:
        """{node manager port: Ray node id} once ``count`` nodes are alive (via a driver in a
        subprocess: this process already runs the session's Ray)."""
        code = ("import json, sys, time, ray\n"
                f"ray.init(address={self.address!r}, log_to_driver=False)\n"
                f"deadline = time.time() + {timeout}\n"
                "while True:\n"
                "    alive = [n for n in ray.nodes() if n['Alive']]\n"
                f"    if len(alive) >= {count} or time.time() > deadline: break\n"
                "    time.sleep(0.5)\n"
                "print(json.dumps({n['NodeManagerPort']: n['NodeID'] for n in alive}))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout + 60, env=ray_free_env())
        assert out.returncode == 0, out.stderr[-3000:] + self.logs()
        ids = {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
        assert len(ids) == count, (ids, self.logs())
        return ids

    def node_id_of(self, node: subprocess.Popen, ids: dict[int, str]) -> str:
        port = int(node.args[node.args.index("--node-manager-port") + 1])
        return ids[port]

    def logs(self) -> str:
        return "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                       for p in sorted(self.temp_dir.glob("*.log")))

    def shutdown(self) -> None:
        for node in self.nodes:
            kill_tree(node.pid)
            node.wait(timeout=30)
        # Anything left that names our temp dir (a process orphaned between the tree walk
        # and the kill); never other Ray instances on this machine.
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(self.temp_dir).encode() in cmdline.read_bytes():
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue


def ray_free_env() -> dict[str, str]:
    """This environment without the session Ray's address, so nothing connects to it."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_search_spans_two_nodes_and_survives_losing_one(tmp_path):
    # Short path: Ray puts Unix sockets under the temp dir (108-byte limit).
    temp_dir = Path(tempfile.mkdtemp(prefix="snas-ray-", dir="/tmp"))
    cluster = LocalCluster(temp_dir)
    db = tmp_path / "r.db"
    store_url = f"sqlite:///{db}"
    driver = None
    try:
        head = cluster.start_head()
        time.sleep(3)  # `ray start --block` never returns; give the head's GCS a head start
        worker = cluster.add_worker()
        ids = cluster.node_ids(2)
        head_id, worker_id = cluster.node_id_of(head, ids), cluster.node_id_of(worker, ids)

        env = {**ray_free_env(), "SNAS_HOME": str(tmp_path / "home")}
        driver_log = open(tmp_path / "driver.log", "wb")  # noqa: SIM115
        driver = subprocess.Popen(
            [sys.executable, "-m", "snas.cli", "search", DIGITS, "--name", "mn",
             "--address", cluster.address, "--store", store_url,
             "--storage-path", str(tmp_path / "exp"), "--num-samples", str(NUM_SAMPLES),
             "--max-concurrent", "2", "--set", "model.width=32",
             "--set", f"training.epochs={EPOCHS}", "--set", "scheduler.name=fifo",
             "--set", "resources.max_failures=2",
             # a checkpoint after every epoch, so the restart below has one to continue from
             "--set", "resources.checkpoint_every_s=0", "--quiet"],
            cwd=ROOT, env=env, stdout=driver_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        driver_log.close()

        def failure(why: str) -> str:
            nodes = {head_id: "head", worker_id: "worker"}
            placed = ([(t["trial_id"], nodes.get(t["node_id"], t["node_id"]), t["status"],
                        t["epochs"]) for t in store.trials("mn")] if store else [])
            return (f"{why}\ntrials (id, node, status, epochs): {placed}\n--- driver\n"
                    f"{(tmp_path / 'driver.log').read_text()[-3000:]}" + cluster.logs())

        # Kill the worker node while one of its trials trains (past epoch 3, before half-way).
        deadline, victim, seen, store = time.time() + 120, None, set(), None
        while victim is None:
            assert time.time() < deadline, failure("no trial ran on the worker node")
            assert driver.poll() is None, failure("search ended before the worker was killed")
            time.sleep(0.1)
            if store is None and db.exists():
                store = ResultsStore(store_url)  # opened once the driver has created it
            if store is None or store.get_search("mn") is None:
                continue
            for t in store.trials("mn"):
                seen.add(t["node_id"])
                if (t["node_id"] == worker_id and t["status"] == "running"
                        and 3 <= t["epochs"] <= EPOCHS // 2):
                    victim = t
                    break
        kill_tree(worker.pid)
        worker.wait(timeout=30)
        killed_at = time.time()
        before = store.epochs_frame("mn")
        before = before[before.trial_id == victim["trial_id"]].set_index("epoch").recorded_at

        assert driver.wait(timeout=240) == 0, failure("search failed")
        recovery = time.time() - killed_at
        trials = store.trials("mn")
        seen |= {t["node_id"] for t in trials}
        # Trials ran on both nodes, each identified by its Ray node id (their IPs are equal).
        assert {head_id, worker_id} <= seen, (seen, ids)
        assert store.get_search("mn")["status"] == "finished"
        # Nothing lost: every planned trial trained every epoch, each epoch stored once.
        assert len(trials) == NUM_SAMPLES, failure(str(trials))
        assert all(t["status"] == "terminated" and t["epochs"] == EPOCHS and t["has_summary"]
                   for t in trials), failure(str([(t["trial_id"], t["status"], t["epochs"])
                                                  for t in trials]))
        frame = store.epochs_frame("mn")
        assert not frame.duplicated(["trial_id", "epoch"]).any()
        counts = store.count_rows("mn")
        assert counts["epochs"] == len(frame) == NUM_SAMPLES * EPOCHS
        assert counts["summaries"] == NUM_SAMPLES
        # The interrupted trial continued on the surviving node from a checkpoint: the
        # epochs it had trained well before the kill were not trained (recorded) again.
        resumed = next(t for t in trials if t["trial_id"] == victim["trial_id"])
        assert resumed["node_id"] == head_id, (resumed, head_id)
        after = frame[frame.trial_id == victim["trial_id"]].set_index("epoch").recorded_at
        kept = range(1, victim["epochs"] - 1)  # the last checkpoint may lag one epoch
        assert [after[e] for e in kept] == [before[e] for e in kept], (victim, before, after)
        print(f"worker killed with trial {victim['trial_id']} at epoch {victim['epochs']}; "
              f"search finished {recovery:.1f} s later")
    finally:
        if driver is not None and driver.poll() is None:
            kill_tree(driver.pid)
            driver.wait(timeout=30)
        cluster.shutdown()
        # Ray's own logs stay with the test's tmp_path (pytest keeps the last runs).
        for log in temp_dir.glob("session_*/logs/*"):
            if log.suffix in (".out", ".err", ".log") and log.is_file():
                (tmp_path / "ray-logs").mkdir(exist_ok=True)
                shutil.copy(log, tmp_path / "ray-logs" / log.name)
        shutil.rmtree(temp_dir, ignore_errors=True)
