"""The package's layers (docs/design.md): every module imports, none imports a higher layer, and
the import graph has no cycle. The graph is read with ``ast`` from the source files, so an import
inside a function (a late import) is an edge like any other; only imports under
``if TYPE_CHECKING:`` are left out, because they never run."""

from __future__ import annotations

import ast
from pathlib import Path

from tiny_runs import run_python

import diffusiontools

PACKAGE = Path(diffusiontools.__file__).parent

# Lowest first. A module may import its own layer and any layer below, never one above. The
# top-level __init__ loads its public names through importlib (the _PUBLIC map), not an import.
LAYERS = [
    ("errors", "device", "config", "optional", "progress_bar", "hidden_characters"),  # leaves:
    # the error type, the device choice, the settings, the optional dependencies, the progress
    # bars, the characters a name may not hold
    ("data",),  # MNIST files -> one uint8 tensor, the split, pixel mapping
    ("models", "diffusion"),  # networks; processes, schedules, degradations, the cold prior
    ("sampling",),  # the sampler registry, one file per sampler, batched generation
    ("outputs",),  # figures, tables, the NPZ sample files, safe writes
    ("training",),  # the step loop, checkpoints, run folder, DDP, TrainedModel
    ("evaluation",),  # pure metrics, classifier, scoring, the evaluate and reconstruction studies
    ("reproduce",),  # the report's study as resumable stages
    ("api",),  # dt.train, dt.evaluate
    ("cli", "__main__"),  # argparse only
]

# No exception: config.py checks each section and the rules among its own keys; a rule that
# belongs to a higher layer (a degradation's valid levels, the sampling keys) is that layer's,
# and training/run_config.py asks each of them (check_config).
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def module_files() -> dict[str, Path]:
    """diffusiontools.x.y -> its source file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its file."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` bodies never run
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("diffusiontools."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "diffusiontools":
                continue
            for alias in node.names:  # `from . import checkpoint` imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return found - {module}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {m: imports_of(m, path, modules) for m, path in modules.items()}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # the package's __init__: __version__ and the lazy public names, no imports
    for rank, names in enumerate(LAYERS):
        if parts[1] in names:
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS")


def test_every_top_level_name_has_a_layer():
    top = {m.split(".")[1] for m in module_files() if "." in m}
    assert top == {name for names in LAYERS for name in names}


def test_every_module_imports_in_layer_order_in_a_fresh_interpreter():
    modules = sorted(
        (m for m in module_files() if "." in m and not m.endswith("__main__")),
        key=lambda m: (layer_of(m), m),
    )
    # module_files found the installed package's files, not an empty or foreign folder
    assert {"diffusiontools.config", "diffusiontools.cli.train"} <= set(modules)
    code = f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\nprint('ok')"
    done = run_python(code, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_no_module_imports_a_higher_layer():
    upward = {
        (m, d) for m, deps in import_graph().items() for d in deps if layer_of(d) > layer_of(m)
    }
    assert upward == ALLOWED_UPWARD


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    for m, d in ALLOWED_UPWARD:
        graph[m].discard(d)
    done, on_path, cycles = set(), [], []

    def visit(module: str) -> None:  # depth-first; an edge back into the path is a cycle
        on_path.append(module)
        for dep in sorted(graph[module]):
            if dep in on_path:
                cycles.append(on_path[on_path.index(dep) :] + [dep])
            elif dep not in done:
                visit(dep)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)
    assert cycles == []


def test_the_graph_reader_sees_late_imports_and_skips_type_checking_ones():
    graph = import_graph()
    # cold.py fits the mixture prior on first use: a late import, still an edge
    assert "diffusiontools.diffusion.cold_start" in graph["diffusiontools.diffusion.cold"]
    # cold_start.py names ColdDiffusion in an annotation only: no edge back
    assert "diffusiontools.diffusion.cold" not in graph["diffusiontools.diffusion.cold_start"]
    # the two halves of the reproduction read one study module, not each other
    assert "diffusiontools.reproduce.study" in graph["diffusiontools.reproduce.summary"]
    assert "diffusiontools.reproduce.pipeline" not in graph["diffusiontools.reproduce.summary"]


def test_every_folder_of_modules_is_a_regular_package():
    """setuptools' find_packages ships only folders with an __init__.py; a namespace folder
    would import here and be missing from the wheel."""
    folders = {path.parent for path in PACKAGE.rglob("*.py")}
    assert (
        sorted(str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file())
        == []
    )
