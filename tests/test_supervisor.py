"""The one process supervisor, on small Python children: grace, kill by PID, signals, exit status.

``warren dev`` and the gateway's workers run on it with real ``warren`` processes
(tests/test_consumer_processes.py, tests/test_gateway_workers.py); here the
children are tiny, so the edges (a child deaf to SIGTERM, a second signal) are cheap.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from warren.service.supervisor import Child, stop_all

PY = sys.executable
# Counts the SIGTERMs it gets in a file, exits 0 on the first unless told to ignore them.
SIGTERM_COUNTER = """
import signal, sys, time
path, deaf = sys.argv[1], sys.argv[2] == "deaf"
def on_term(*_):
    with open(path, "a") as f:
        f.write("TERM\\n")
    if not deaf:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(path, "a").close()
time.sleep(60)
"""


def counter(tmp_path: Path, name: str, deaf: bool = False) -> tuple[Child, Path]:
    path = tmp_path / name
    child = Child([PY, "-c", SIGTERM_COUNTER, str(path), "deaf" if deaf else "ok"])
    deadline = time.monotonic() + 10
    while not path.exists():  # its handler is in place
        assert time.monotonic() < deadline and child.alive()
        time.sleep(0.02)
    return child, path


def test_a_child_deaf_to_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    polite, polite_log = counter(tmp_path, "polite")
    deaf, deaf_log = counter(tmp_path, "deaf", deaf=True)

    started = time.monotonic()
    codes = stop_all([polite, deaf], grace=0.5)

    assert codes == [0, -signal.SIGKILL]
    assert time.monotonic() - started < 3
    assert polite_log.read_text() == deaf_log.read_text() == "TERM\n"


def test_each_child_gets_one_sigterm_however_often_it_is_asked(tmp_path: Path) -> None:
    deaf, log = counter(tmp_path, "deaf", deaf=True)
    for _ in range(3):
        deaf.terminate()
    time.sleep(0.3)
    assert log.read_text() == "TERM\n"
    deaf.kill()
    assert deaf.returncode == -signal.SIGKILL


# A supervisor of two sleepers (or of a sleeper and a child exiting 3 by itself).
SUPERVISOR = """
import json, sys
from warren.service.supervisor import Supervisor
commands = json.loads(sys.argv[1])
with Supervisor(grace=5) as children:
    children.start(commands)
    print(" ".join(str(c.pid) for c in children.children), flush=True)
    sys.exit(children.wait())
"""


def supervise(commands: dict[str, list[str]]) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [PY, "-c", SUPERVISOR, json.dumps(commands)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    return proc, pids


def test_a_signal_stops_every_child_and_the_supervisor_exits_0() -> None:
    sleeper = [PY, "-c", "import time; time.sleep(60)"]
    proc, pids = supervise({"a": sleeper, "b": sleeper})
    assert len(pids) == 2

    proc.send_signal(signal.SIGINT)

    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


def test_a_child_exiting_on_its_own_stops_the_others_and_the_supervisor_exits_1() -> None:
    sleeper = [PY, "-c", "import time; time.sleep(60)"]
    quitter = [PY, "-c", "import time, sys; time.sleep(0.3); sys.exit(3)"]
    proc, pids = supervise({"sleeper": sleeper, "quitter": quitter})

    _, err = proc.communicate(timeout=10)

    assert proc.returncode == 1
    assert f"quitter (pid {pids[1]}) exited (3): stopping the others" in err
    assert not Path(f"/proc/{pids[0]}").exists()
