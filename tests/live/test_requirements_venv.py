"""The program runs in a venv made from `requirements.txt` alone, as `pulumi up` makes `./venv`.

The unit test `tests/unit/test_requirements.py` reads the imports; this one installs the pins into a new venv
and runs the dev stack's program there under Pulumi's mocks, so a missing pin (or one whose own dependencies
no longer fit) fails here before it fails a user. The real engine's quick-start test (tests/engine/) does the
same through `pulumi up` itself.
"""

from __future__ import annotations

import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

from harness.program import PROJECT_DIR

pytestmark = pytest.mark.live

# Mocks with nothing but the inputs echoed back: enough for the program to declare everything. Nothing from
# the dev requirements (pytest, the unit tests' fakes) may be imported here.
PROGRAM_UNDER_MOCKS = textwrap.dedent(
    """
    import sys
    import pulumi
    from harness.program import run_program, stack_config, PROJECT_DIR

    class EchoMocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args):
            return {}

    run = run_program(stack_config(PROJECT_DIR / "Pulumi.dev.yaml"), EchoMocks(), stack="dev")
    print(len(run.registrations), "registrations")
    """
)


def test_the_dev_program_runs_in_a_venv_made_from_requirements_txt_alone(tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", PROJECT_DIR / "requirements.txt"],
        check=True,
        timeout=600,
    )
    done = subprocess.run(
        [python, "-c", PROGRAM_UNDER_MOCKS],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{environment / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "registrations" and int(done.stdout.split()[-2]) > 10, done.stdout
