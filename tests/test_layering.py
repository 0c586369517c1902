"""Imports run one way (issue 22; docs/architecture.md).

foundations (schema, checks, geometry, runformat, ...) <- metrics <- the science packages
(ufm, ntk, measures, robustness, frontier, spectra) <- the applications (train, integrations)
<- viz <- cli. Every ``import`` of the package is read with ``ast``, those inside functions
included (a lazy import hides a dependency; it does not remove it), and no package may
import a layer above its own; packages of one layer must not import each other in a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import neuralcollapse

PACKAGE = Path(neuralcollapse.__file__).parent

#: layer of each top-level part of the package (a module or a subpackage)
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "schema",
            "checks",
            "geometry",
            "frames",
            "runformat",
            "atomic",
            "lazy",
            "progress",
            "entry_points",
        ),
        0,
    ),
    "metrics": 1,
    **dict.fromkeys(("ufm", "ntk", "measures", "robustness", "frontier", "spectra"), 2),
    **dict.fromkeys(("train", "integrations"), 3),
    "viz": 4,
    # the package's facade (neuralcollapse/__init__.py) re-exports from every layer
    **dict.fromkeys(("cli", "__main__", "__init__"), 5),
}
LAYER_NAMES = ("foundations", "metrics", "science", "applications", "viz", "cli")


def _part(module: str) -> str:
    """``neuralcollapse.metrics.stats`` -> ``metrics``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1] if len(parts) > 2 else [parts[0], "__init__"]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported neuralcollapse module) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            if name == "neuralcollapse":  # from neuralcollapse import runformat, schema
                found += [(node.lineno, f"neuralcollapse.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.startswith("neuralcollapse.")]


def _edges():
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _part(_module_name(path))
        for line, name in _imports(path):
            edges.append((path.relative_to(PACKAGE.parent), line, source, _part(name)))
    return edges


def test_every_part_of_the_package_has_a_layer():
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()}
    parts = {p for p in parts if not p.startswith(("_", ".")) or p in ("__init__", "__main__")}
    parts.discard("py")  # py.typed
    unknown = sorted(p for p in parts if p not in LAYERS and not p.endswith(".typed"))
    assert not unknown, f"give these a layer in LAYERS (and docs/architecture.md): {unknown}"


def test_no_import_reaches_a_higher_layer():
    upward = [
        f"{path}:{line}: {source} ({LAYER_NAMES[LAYERS[source]]}) imports {target} "
        f"({LAYER_NAMES[LAYERS[target]]})"
        for path, line, source, target in _edges()
        if target in LAYERS and LAYERS[target] > LAYERS[source]
    ]
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_no_cycle_between_packages():
    graph = defaultdict(set)
    for _, _, source, target in _edges():
        if source != target:
            graph[source].add(target)

    def reaches(start, goal, seen=()):
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, (*seen, nxt)))
            for nxt in graph[start]
        )

    cycles = sorted(part for part in list(graph) if reaches(part, part))
    assert not cycles, f"packages in an import cycle: {cycles}"


@pytest.mark.parametrize("part", sorted(p for p, layer in LAYERS.items() if layer < 5))
def test_nothing_below_the_command_line_imports_it(part):
    offenders = [
        f"{path}:{line}"
        for path, line, source, target in _edges()
        if source == part and target in ("cli", "__main__")
    ]
    assert not offenders
