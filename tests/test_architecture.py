"""The three floors of the house, checked: arrows only point down.

- ``trainables`` (torch) imports only the core of snas (``snas.core``), never the
  application (the controller, store, CLI, ...), neither when it is imported nor lazily
  inside a function;
- ``snas.core`` imports neither torch nor Ray, nor anything above it, and parsing every
  shipped search-space file (which resolves every plug-in's options) stays torch-free;
- only the entry point ``snas/cli.py`` refers to ``snas.cli``; commands share their pieces
  through ``snas.commands._common``.

Import checks run in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAS = ROOT / "snas"
TRAINABLES = ROOT / "trainables"
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))



def modules_under(folder: Path) -> list[str]:
    """Every module of the package in ``folder``, the package first, found from the files
    (so a new file is checked too, and collecting these tests imports nothing)."""
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names, key=lambda name: (name.count("."), name))


TRAINABLES_MODULES = modules_under(TRAINABLES)
CORE_MODULES = modules_under(SNAS / "core")
# What the core must never load (it is imported by the CLI before anything heavy).
HEAVY = ("torch", "ray")


def is_application(module: str) -> bool:
    """Whether ``module`` names an application module: ``snas.X`` with X a module or package
    of ``snas/`` other than ``core``. ``snas`` itself (its ``__init__`` re-exports the error
    classes) and ``snas.ConfigError``-style attributes are not."""
    parts = module.split(".")
    if parts[0] != "snas" or len(parts) < 2 or parts[1] == "core":
        return False
    return (SNAS / f"{parts[1]}.py").is_file() or (SNAS / parts[1]).is_dir()


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter from the repository root; it prints one JSON line."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The probe imports each module in turn and records which modules that import added.
_PROBE = """
import importlib, json, sys
modules = {modules!r}
found = {{}}
for name in modules:
    before = set(sys.modules)
    importlib.import_module(name)
    found[name] = sorted(set(sys.modules) - before)
{extra}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def trainables_imports() -> dict[str, list[str]]:
    return run_python(_PROBE.format(modules=TRAINABLES_MODULES, extra=""))


@pytest.mark.parametrize("module", TRAINABLES_MODULES)
def test_importing_trainables_loads_no_application_module(module, trainables_imports):
    loaded = [m for m in trainables_imports[module] if is_application(m)]
    assert not loaded, f"importing {module} imports the application: {', '.join(loaded)}"


_PARSE_SPACES = """
from snas.core.catalog import DATASETS, KERNELS, MODELS, SEARCHERS
from snas.core.config import load_space
before = set(sys.modules)
for path in {spaces!r}:
    load_space(path)
for registry in (MODELS, KERNELS, DATASETS, SEARCHERS):
    for name in registry:
        registry.options(name)
found["parse every search space and options class"] = sorted(set(sys.modules) - before)
"""


@pytest.fixture(scope="module")
def core_imports() -> dict[str, list[str]]:
    extra = _PARSE_SPACES.format(spaces=[str(p) for p in SPACES])
    return run_python(_PROBE.format(modules=CORE_MODULES, extra=extra))


def test_search_spaces_are_found():
    assert len(SPACES) >= 10 and len(CORE_MODULES) >= 10


@pytest.mark.parametrize("step", [*CORE_MODULES, "parse every search space and options class"])
def test_core_loads_neither_torch_nor_ray_nor_anything_above_it(step, core_imports):
    loaded = core_imports[step]
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    above = [m for m in loaded if is_application(m) or m.split(".")[0] == "trainables"]
    assert not heavy, f"{step} imports {', '.join(heavy)}"
    assert not above, f"{step} imports modules above the core: {', '.join(above)}"


# --------------------------------------------------------------------------------------
# The same rules on the source text: also catches imports inside functions.


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (module level or nested), relative
    imports resolved against ``package``. ``from a import b`` yields both ``a`` and ``a.b``
    (b may be a submodule)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def sources(folder: Path) -> list[tuple[Path, str]]:
    """``(file, its package)`` for every Python file under ``folder``."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        # a module's package is its folder (for ``__init__.py`` too: the package itself)
        out.append((path, ".".join(path.relative_to(ROOT).parts[:-1])))
    return out


def offending_imports(folder: Path, forbidden, skip: Path | None = None) -> list[str]:
    """``file:line imports module`` for each import statement under ``folder`` that imports
    a module ``forbidden(module)`` is true of (one line per statement)."""
    out: dict[tuple[Path, int], str] = {}
    for path, package in sources(folder):
        if path == skip:
            continue
        for line, module in imported_modules(path, package):
            if forbidden(module):
                out.setdefault((path, line), module)
    return [f"{path.relative_to(ROOT)}:{line} imports {module}"
            for (path, line), module in sorted(out.items())]


def test_trainables_source_never_imports_the_application():
    offenders = offending_imports(TRAINABLES, is_application)
    assert not offenders, "trainables/ may import only snas.core:\n" + "\n".join(offenders)


def test_core_source_never_imports_above_it():
    offenders = offending_imports(SNAS / "core", lambda m: is_application(m)
                                  or m.split(".")[0] in ("trainables", *HEAVY))
    assert not offenders, "snas/core/ imports above itself:\n" + "\n".join(offenders)


def test_only_the_entry_point_imports_snas_cli():
    offenders = offending_imports(SNAS, lambda m: m == "snas.cli" or m.startswith("snas.cli."),
                                  skip=SNAS / "cli.py")
    assert not offenders, ("only snas/cli.py may import snas.cli (shared command pieces live "
                           "in snas.commands._common):\n" + "\n".join(offenders))


def test_import_scanner_sees_nested_and_relative_imports(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("from . import cli\n"
                    "def f():\n"
                    "    from snas.results import x\n"
                    "    import snas.store\n"
                    "from snas import ConfigError\n")
    found = {module for _, module in imported_modules(path, "snas.commands")}
    assert {"snas.commands.cli", "snas.results", "snas.store", "snas.ConfigError"} <= found
    assert {m for m in found if is_application(m)} == {
        "snas.commands", "snas.commands.cli", "snas.results", "snas.results.x", "snas.store"}
    assert not is_application("snas") and not is_application("snas.ConfigError")
    assert not is_application("snas.core.config") and not is_application("snas_sparse_runtime")
