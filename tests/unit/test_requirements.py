"""What `pulumi up` installs is enough to run the program.

Pulumi makes `./venv` from `requirements.txt` alone (Pulumi.yaml: toolchain pip), while every test installs
`requirements-dev.txt`. A module the program imports but only the dev requirements bring passes every test and
breaks `pulumi up` for users (it happened with bcrypt). These tests read the imports of the program and of the
policy pack and ask which distribution provides each one.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from harness.program import PROJECT_DIR

pytestmark = pytest.mark.unit

# The program as Pulumi runs it: its entry point and everything it imports from this repository.
PROGRAM_SOURCES = (PROJECT_DIR / "__main__.py", *sorted((PROJECT_DIR / "components").rglob("*.py")))
POLICY_SOURCES = tuple(sorted((PROJECT_DIR / "policy").glob("*.py")))
LOCAL_PACKAGES = frozenset({"components", "registry_policies"})


def third_party_imports(sources: tuple[Path, ...]) -> set[str]:
    """Top-level names of the modules these files import that are neither the standard library nor ours."""
    names: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name not in LOCAL_PACKAGES}


def requirement_names(path: Path) -> set[str]:
    """The distributions a requirements file pins itself (`-r` includes are not followed: each file must name
    what its own venv needs)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        names.add(_normal(re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0]))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def providers_of(module: str) -> set[str]:
    return {_normal(name) for name in importlib.metadata.packages_distributions().get(module, [])}


@pytest.mark.parametrize(
    ("sources", "requirements"),
    [(PROGRAM_SOURCES, "requirements.txt"), (POLICY_SOURCES, "policy/requirements.txt")],
    ids=["program", "policy-pack"],
)
def test_every_import_is_pinned_in_the_requirements_its_venv_is_made_from(
    sources: tuple[Path, ...], requirements: str
) -> None:
    pinned = requirement_names(PROJECT_DIR / requirements)
    imports = third_party_imports(sources)
    assert imports, "no third-party import found: the scan is broken"
    missing = {module: sorted(providers_of(module)) for module in sorted(imports) if not providers_of(module) & pinned}
    assert not missing, f"imported but not pinned in {requirements} (module: distributions providing it): {missing}"


def test_the_scan_sees_a_module_only_the_dev_requirements_bring(tmp_path: Path) -> None:
    # The check itself: a program importing hypothesis (dev only) is caught.
    program = tmp_path / "program.py"
    program.write_text("import pulumi\nfrom hypothesis import given\n")
    assert third_party_imports((program,)) == {"pulumi", "hypothesis"}
    assert not providers_of("hypothesis") & requirement_names(PROJECT_DIR / "requirements.txt")
