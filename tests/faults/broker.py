"""Private RabbitMQ nodes for fault injection, and the faults themselves.

Why private nodes: the faults here kill, stop, alarm and reconfigure a broker.
The machine's own node (``rabbit@localhost``, port 5672) serves everyone else
and must never see any of that, so every node here has its own name, its own
AMQP and distribution ports, and its own data, log and config files in a
temporary directory. Its config file is our own (``RABBITMQ_CONFIG_FILE``,
``RABBITMQ_CONF_ENV_FILE``): the machine's ``/etc/rabbitmq`` files name port
5672 and the main node's name.

``rabbitmq-server`` runs the node as the ``rabbitmq`` user (the Debian wrapper
``su``'s to it, keeping the environment), so the directory is handed to that
user. A node is only ever addressed by its name (``rabbitmqctl -n``) or by the
PID in its own pid file.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

CTL_TIMEOUT = 90.0  # seconds any one rabbitmqctl call may take before the test fails
START_TIMEOUT = 60  # seconds `rabbitmqctl wait` gives a starting node
# Our ports live in 31000-34999: the CLI takes its own distribution port from
# RABBITMQ_DIST_PORT + 10000..10010, which must stay valid and clear of the main
# node's (25672 + 10000).
PORT_RANGE = (31000, 34999)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, taken: Iterable[int] = ()) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1, each with its CLI port range free too."""
    chosen: list[int] = []
    avoid = set(taken)
    while len(chosen) < count:
        port = random.randint(*PORT_RANGE)
        if port in avoid or not (port_is_free(port) and port_is_free(port + 10000)):
            continue
        chosen.append(port)
        avoid.add(port)
    return chosen


class NodeError(RuntimeError):
    """A rabbitmqctl call failed; carries its output and the node's log tail."""


class RabbitNode:
    """One private RabbitMQ node: start, wait, stop, kill -9, restart, faults, clustering.

    ``start`` after ``stop`` or ``kill9`` is a restart: it keeps the same
    directories, so durable queues and persistent messages survive exactly as
    they would in production.
    """

    def __init__(
        self,
        short_name: str,
        root: Path,
        amqp_port: int,
        dist_port: int,
        tick_ms: int = 1000,
        seed: str | None = None,
    ) -> None:
        self.name = f"{short_name}@localhost"
        self.root = root
        self.amqp_port = amqp_port
        self.dist_port = dist_port
        self._tick_ms = tick_ms
        self._seed = seed
        self.mnesia = root / "mnesia"
        self.logs = root / "log"
        self.pid_file = self.mnesia / f"{self.name}.pid"
        self._prepare()

    @classmethod
    def create(cls, prefix: str = "warren-faults", seed: RabbitNode | None = None) -> RabbitNode:
        """A node with a unique name and free ports in a new temporary directory.

        With a ``seed``, the node joins the seed's cluster when it first boots
        (classic-config peer discovery): no stop_app/join_cluster/start_app round.
        """
        amqp_port, dist_port = free_ports(2)
        short = f"{prefix}-{os.getpid()}-{random.randrange(16**6):06x}"
        root = Path(tempfile.mkdtemp(prefix=f"{short}-"))
        return cls(short, root, amqp_port, dist_port, seed=seed.name if seed else None)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def _prepare(self) -> None:
        self.mnesia.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
            "vm_memory_high_watermark.relative = 0.4\n"
            "disk_free_limit.absolute = 50MB\n"
            + (
                "cluster_formation.peer_discovery_backend = classic_config\n"
                f"cluster_formation.classic_config.nodes.1 = {self._seed}\n"
                if self._seed
                else ""
            )
        )
        # The consumer timeout is evaluated on each channel's tick (60 s by default);
        # a short tick lets a test see a lowered timeout act within seconds.
        (self.root / "advanced.config").write_text(
            f"[{{rabbit, [{{channel_tick_interval, {self._tick_ms}}}]}}].\n"
        )
        (self.root / "rabbitmq-env.conf").write_text("")
        self.root.chmod(0o755)
        shutil.chown(self.root, "rabbitmq", "rabbitmq")
        for path in self.root.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")

    def env(self) -> dict[str, str]:
        """The environment of every rabbitmq-server and rabbitmqctl call for this node."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            {
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.mnesia),
                "RABBITMQ_LOG_BASE": str(self.logs),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    "-kernel inet_dist_use_interface {127,0,0,1}"
                ),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
            }
        )
        return env

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start detached and return once the node runs its applications (about 6 s)."""
        self.launch()
        self.wait()

    def launch(self) -> None:
        """Start detached, without waiting for the node to boot."""
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()  # a stale pid file (after kill -9) would fool `wait`
        subprocess.run(
            ["rabbitmq-server", "-detached"],
            env=self.env(),
            cwd=self.root,
            check=True,
            timeout=CTL_TIMEOUT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        self.ctl("wait", str(self.pid_file), "--timeout", str(START_TIMEOUT))

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        """Whether the node's OS process exists (a zombie awaiting its reaper counts as gone)."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state not in ("Z", "X")

    def kill9(self) -> None:
        """Crash the node: SIGKILL to the PID in its own pid file, then wait until it is gone."""
        pid = self.pid()
        assert pid is not None, f"{self.name} has no pid file"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.running():
            assert time.monotonic() < deadline, f"{self.name} (pid {pid}) survived SIGKILL"
            time.sleep(0.02)

    def stop(self) -> None:
        """Graceful stop; returns once the node's OS process has exited."""
        self.ctl("stop", str(self.pid_file))

    def destroy(self) -> None:
        """Stop by name (kill -9 by PID if that fails) and delete the directory."""
        if self.running():
            try:
                self.stop()
            except (NodeError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError, AssertionError):
                    self.kill9()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- rabbitmqctl ------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """``rabbitmqctl -n <this node> args...``; its stdout, or ``NodeError``."""
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.name, *args],
            env=self.env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise NodeError(
                f"rabbitmqctl {' '.join(args)} on {self.name} exited {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}\n--- node log ---\n{self.log_tail()}"
            )
        return done.stdout

    def eval(self, expression: str) -> str:
        return self.ctl("eval", expression).strip()

    def log_tail(self, chars: int = 3000) -> str:
        log = self.logs / f"{self.name}.log"
        try:
            return log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    # --- faults -----------------------------------------------------------------------

    def close_all_connections(self, reason: str = "fault injection") -> None:
        self.ctl("close_all_connections", reason)

    def memory_alarm(self, on: bool) -> None:
        """Raise (watermark ~0) or clear (0.4) the memory alarm; returns once it is so."""
        watermark = "0.0000001" if on else "0.4"
        self._set_alarm(
            "memory", f"vm_memory_monitor:set_vm_memory_high_watermark({watermark})", on
        )

    def disk_alarm(self, on: bool) -> None:
        """Raise (limit of 100 TB) or clear (50 MB) the disk alarm; returns once it is so."""
        limit = 100 * 10**12 if on else 50 * 10**6
        self._set_alarm("disk", f"rabbit_disk_monitor:set_disk_free_limit({limit})", on)

    def _set_alarm(self, kind: str, setter: str, on: bool) -> None:
        """Change the limit and wait for the alarm's state in one ``eval``.

        What ``rabbitmqctl set_vm_memory_high_watermark`` / ``set_disk_free_limit``
        do, plus the wait, in one CLI call instead of several (each boots a VM).
        """
        wanted = "true" if on else "false"
        result = self.eval(
            f"{setter}, "
            "Wait = fun Loop(0) -> timeout; Loop(N) -> "
            f"case lists:keymember({{resource_limit, {kind}, node()}}, 1, "
            "rabbit_alarm:get_alarms()) of "
            f"{wanted} -> ok; _ -> timer:sleep(50), Loop(N - 1) end end, "
            "Wait(400)."
        )
        assert result == "ok", f"{kind} alarm on {self.name} not {on}: {result}"

    def set_consumer_timeout(self, ms: int) -> None:
        """The node-wide ``consumer_timeout``; channels opened after this use it."""
        assert self.eval(f"application:set_env(rabbit, consumer_timeout, {ms}).") == "ok"

    # --- clustering -------------------------------------------------------------------

    def queue_leader(self, queue: str) -> str | None:
        """The node leading a quorum queue, as this node sees it (None: no such queue)."""
        rows = json.loads(
            self.ctl("list_queues", "name", "leader", "--online", "--formatter", "json", "-q")
        )
        return next((str(r["leader"]) for r in rows if r["name"] == queue), None)

    def running_nodes(self) -> list[str]:
        """Names of the cluster's running nodes, as this node sees them."""
        out = self.eval("rabbit_nodes:all_running().")
        return sorted(part.strip(" []'\n") for part in out.split(",") if "@" in part)


def start_all(nodes: Iterable[RabbitNode]) -> None:
    """Start several nodes at once (each boot is ~6 s, mostly waiting) and wait for all."""
    nodes = list(nodes)
    for node in nodes:
        node.launch()
    for node in nodes:
        node.wait()
