"""The command line as a shell user meets it: fast help, a closed pipe, the same flag names."""

from __future__ import annotations

import subprocess
import sys
import time


def _run(*arguments, **options):
    return subprocess.run(
        [sys.executable, "-m", "neuralcollapse", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        **options,
    )


def test_help_does_not_import_torch_or_matplotlib():
    # the fast-help property itself, independent of how loaded the machine is
    probe = (
        "import sys; from neuralcollapse.cli import main\n"
        "for command in ('measure', 'ufm', 'train', 'probe', 'report', 'ntk', 'demo'):\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_top_level_help_returns_quickly():
    _run("--help")  # warm the file cache
    started = time.perf_counter()
    completed = _run("--help")
    assert completed.returncode == 0 and "probe" in completed.stdout
    assert time.perf_counter() - started < 2.0  # ~0.2 s here; torch alone takes ~2-4 s


def test_a_closed_pipe_ends_quietly():
    # the reader is gone before the command writes (`... | head -0`): its write gets EPIPE
    process = subprocess.Popen(
        [sys.executable, "-m", "neuralcollapse", "ufm", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=120)
    assert b"Traceback" not in stderr and b"error" not in stderr.lower(), stderr
    assert process.returncode == 128 + 13  # as a tool ended by SIGPIPE


def test_progress_bars_turn_themselves_off_when_output_is_not_a_terminal(tmp_path):
    completed = _run(
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--width",
        "8",
        "--depth",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    assert completed.returncode == 0, completed.stderr
    assert "\r" not in completed.stderr  # no bar redrawn in place
    assert len(completed.stderr.splitlines()) <= 3
    assert "done: 3 epochs" in completed.stdout
