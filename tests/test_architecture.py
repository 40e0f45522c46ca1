"""The rules of ARCHITECTURE.md, checked on the imports of trinet/'s source files.

The files are parsed with `ast`, never imported: no TensorFlow is loaded and the whole check takes a fraction
of a second. The parts and what each may import are read from the table in ARCHITECTURE.md, so the document
and the check cannot drift apart. The checker itself is tested on small sources that break each rule.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import os
import re

import pytest

from conftest import REPO

#: Modules whose import at module level loads TensorFlow.
TENSORFLOW = ("tensorflow", "keras")

#: Commands that must start without TensorFlow, besides the parts marked "TensorFlow: no".
NUMPY_COMMANDS = ("trinet.cli.evaluate", "trinet.cli.convert", "trinet.cli.combine", "trinet.cli.train",
                  "trinet.cli.search")

#: Known breaks of the rules, each `(rule, module, name)`; every entry must still occur (the test fails when
#: one is fixed, until it is deleted here). None today.
KNOWN_GAPS: set[tuple[str, str, str]] = set()


@dataclasses.dataclass(frozen=True)
class Part:
    name: str
    modules: tuple[str, ...]
    may_import: frozenset[str]
    tensorflow: bool


@dataclasses.dataclass(frozen=True)
class Import:
    target: str
    line: int
    lazy: bool  # inside a function: runs only when the function is called
    function: str = ""  # the module-level function it is in, if any


@dataclasses.dataclass(frozen=True)
class Violation:
    rule: str
    module: str
    detail: str
    message: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.rule, self.module, self.detail


# --- Reading the table and the sources -------------------------------------------------------------------

def read_parts(text: str) -> list[Part]:
    """The parts table of ARCHITECTURE.md (between its markers)."""
    block = text.split("<!-- parts:", 1)[1].split("<!-- end of parts -->", 1)[0]
    parts = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("part", "---"):
            continue
        name, modules, may_import, tensorflow = cells
        names = tuple(m if m == "trinet" else f"trinet.{m}" for m in re.findall(r"`([^`]+)`", modules))
        allowed = frozenset(p.strip() for p in may_import.split(",") if p.strip())
        parts.append(Part(name, names, allowed, tensorflow != "no"))
    return parts


def module_name(path: str) -> str:
    """`trinet/demo/plan.py` -> `trinet.demo.plan`; `trinet/demo/__init__.py` -> `trinet.demo`."""
    name = os.path.splitext(path)[0].replace(os.sep, ".").replace("/", ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def read_sources(root: str) -> dict[str, str]:
    """Module name -> source of every Python file under `root/trinet`."""
    sources = {}
    for folder, _, files in os.walk(os.path.join(root, "trinet")):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                with open(path, encoding="utf-8") as f:
                    sources[module_name(os.path.relpath(path, root))] = f.read()
    return sources


def imports(source: str, module: str, known: set[str]) -> list[Import]:
    """The imports of `source`, resolved to module names (`from trinet import x` is `trinet.x` when that is
    one of the `known` modules)."""
    package = module if f"{module}.__init__" in known else module.rpartition(".")[0]
    found = []

    def type_checking(node: ast.AST) -> bool:  # `if TYPE_CHECKING:` blocks never run
        test = getattr(node, "test", None)
        return isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"

    def visit(node: ast.AST, lazy: bool, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            inner = inner or type_checking(child)
            if not function and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside = child.name
            else:
                inside = function
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, lazy, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.append(Import(full if full in known else base, child.lineno, lazy, function))
            visit(child, inner, inside)

    visit(ast.parse(source), False, "")
    return found


# --- The checker ---------------------------------------------------------------------------------------

def part_of(module: str, parts: list[Part]) -> Part | None:
    """The part whose module list holds `module` or a package above it (the longest match; `trinet` stands
    for the package's `__init__` only)."""
    best, length = None, -1
    for part in parts:
        for name in part.modules:
            inside = module.startswith(name + ".") and name != "trinet"
            if (module == name or inside) and len(name) > length:
                best, length = part, len(name)
    return best


def check(sources: dict[str, str], parts: list[Part]) -> list[Violation]:
    """Every break of the rules of ARCHITECTURE.md in `sources` (module name -> source)."""
    known = set(sources)
    known |= {f"{m}.__init__" for m in sources if any(k.startswith(m + ".") for k in sources)}
    found = {module: imports(source, module, known) for module, source in sources.items()}
    out = []
    for module in sorted(sources):
        part = part_of(module, parts)
        if part is None:
            out.append(Violation("parts", module, "", f"{module} belongs to no part of ARCHITECTURE.md"))
            continue
        for imp in found[module]:
            if not imp.target.startswith("trinet"):
                continue
            if imp.target.startswith("trinet.cli") and not module.startswith("trinet.cli"):
                out.append(Violation("cli", module, imp.target,
                                     f"{module}:{imp.line} imports {imp.target}: nothing outside trinet/cli "
                                     "imports trinet.cli (use trinet.console)"))
            if module == "trinet" and imp.function == "__getattr__":
                continue  # the package root re-exports the public API on first use (rule 7)
            target = part_of(imp.target, parts)
            if target is not None and target is not part and target.name not in part.may_import:
                allowed = sorted(part.may_import)
                out.append(Violation("layers", module, imp.target,
                                     f"{module}:{imp.line} ({part.name}) imports {imp.target} "
                                     f"({target.name}); {part.name} may import only {allowed}"))
        for name, line in hand_kept_choices(sources[module]):
            out.append(Violation("choices", module, name, f"{module}:{line}: {name} is a list of names kept "
                                 "by hand; take choices=sorted(REGISTRY) from the registry"))
    numpy_only = [m for m in sorted(sources) if (p := part_of(m, parts)) is not None and not p.tensorflow]
    for module in numpy_only + [m for m in NUMPY_COMMANDS if m in sources]:
        chain = _tensorflow_chain(module, found, sources)
        if chain:
            out.append(Violation("tensorflow", module, chain[-1], f"{module} imports TensorFlow when it is "
                                 f"imported: {' -> '.join(chain)}"))
    return out


def hand_kept_choices(source: str) -> list[tuple[str, int]]:
    """(name, line) of each module-level `*_CHOICES = [string literals]` of `source`."""
    found = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, (ast.List, ast.Tuple, ast.Set)):
            continue
        elements = node.value.elts
        if elements and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elements):
            found += [(t.id, node.lineno) for t in node.targets
                      if isinstance(t, ast.Name) and t.id.endswith("_CHOICES")]
    return found


def _tensorflow_chain(start: str, found: dict[str, list[Import]], sources: dict[str, str]) -> list[str]:
    """The chain of module-level imports from `start` to TensorFlow or Keras, or [] if there is none."""
    seen, stack = {start}, [[start]]
    while stack:
        path = stack.pop()
        for imp in found.get(path[-1], []):
            if imp.lazy:
                continue
            if imp.target.split(".")[0] in TENSORFLOW:
                return path + [imp.target]
            # Importing trinet.a.b runs trinet/__init__ and trinet/a/__init__ too.
            pieces = imp.target.split(".")
            for depth in range(1, len(pieces) + 1):
                name = ".".join(pieces[:depth])
                if name in sources and name not in seen:
                    seen.add(name)
                    stack.append(path + [name])
    return []


# --- The repository keeps the rules ----------------------------------------------------------------------

def architecture_parts() -> list[Part]:
    with open(os.path.join(REPO, "ARCHITECTURE.md"), encoding="utf-8") as f:
        return read_parts(f.read())


def test_the_table_names_each_part_once_and_only_known_parts():
    parts = architecture_parts()
    names = [p.name for p in parts]
    assert len(names) == len(set(names)) >= 10
    for part in parts:
        assert part.may_import <= set(names) - {part.name}, part


def test_trinet_keeps_the_rules_of_architecture_md():
    violations = check(read_sources(REPO), architecture_parts())
    new = [v.message for v in violations if v.key not in KNOWN_GAPS]
    assert not new, "\n".join(new)
    stale = KNOWN_GAPS - {v.key for v in violations}
    assert not stale, f"fixed, delete from KNOWN_GAPS: {sorted(stale)}"


def test_every_command_is_installed():
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    scripts = dict(line.split("=") for line in config["options.entry_points"]["console_scripts"].split("\n")
                   if line.strip())
    scripts = {name.strip(): target.strip() for name, target in scripts.items()}
    assert set(scripts) == {"trinet-train", "trinet-embed", "trinet-evaluate", "trinet-convert",
                            "trinet-combine", "trinet-demo", "trinet-export", "trinet-search"}
    sources = read_sources(REPO)
    for name, target in scripts.items():
        module, function = target.split(":")
        tree = ast.parse(sources[module])
        assert any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body), name


# --- The checker fails when a rule is broken --------------------------------------------------------------

PARTS = read_parts("""<!-- parts: -->
| part | modules | may import | TensorFlow |
|---|---|---|---|
| base | `trinet`, `errors` | | no |
| console | `console` | base | no |
| data | `naming` | base | no |
| models | `models` | base | yes |
| evaluation | `metrics`, `reporting` | base, data | no |
| cli | `cli` | base, console, data, models, evaluation | |
<!-- end of parts -->""")

GOOD = {
    "trinet": "",
    "trinet.errors": "class TrinetError(Exception):\n    pass\n",
    "trinet.console": "import sys\nfrom trinet.errors import TrinetError\n\n"
                      "def quiet():\n    import tensorflow\n",  # lazy: allowed
    "trinet.naming": "import re\n",
    "trinet.models": "import keras\nfrom trinet import errors\n",
    "trinet.metrics": "import numpy as np\nfrom trinet.naming import x\n",
    "trinet.reporting": "from trinet import metrics\n",
    "trinet.cli": "",
    "trinet.cli.common": "from trinet.console import *\n",
    "trinet.cli.evaluate": "from trinet.reporting import summary\nfrom trinet.cli.common import run_main\n",
}


def broken(**changes: str) -> list[Violation]:
    return check({**GOOD, **changes}, PARTS)


def test_the_checker_passes_sources_that_keep_the_rules():
    assert broken() == []


def test_the_checker_finds_a_library_module_importing_the_command_line():
    found = broken(**{"trinet.naming": "from trinet.cli.common import run_main\n"})
    assert [v.rule for v in found] == ["cli", "layers"]
    assert "trinet.naming:1 imports trinet.cli.common" in found[0].message


def test_only_the_package_roots_getattr_may_import_any_part():
    facade = "def __getattr__(name):\n    from trinet.models import build\n    return build\n"
    assert broken(trinet=facade) == []
    for module, source in [("trinet", "from trinet.models import build\n"), ("trinet.errors", facade),
                           ("trinet", "def other():\n    from trinet.models import build\n")]:
        found = broken(**{module: source})
        assert ("layers", module, "trinet.models") in {v.key for v in found}, (module, source)


def test_the_checker_finds_an_import_against_the_layers():
    found = broken(**{"trinet.errors": "from trinet import naming\n"})
    assert [(v.rule, v.module, v.detail) for v in found] == [("layers", "trinet.errors", "trinet.naming")]
    assert "(base) imports trinet.naming (data); base may import only []" in found[0].message


def test_the_checker_finds_tensorflow_in_evaluation_directly_or_through_an_import():
    direct = broken(**{"trinet.metrics": "import tensorflow as tf\n"})
    assert {(v.rule, v.module) for v in direct} == {("tensorflow", "trinet.metrics"),
                                                    ("tensorflow", "trinet.reporting"),
                                                    ("tensorflow", "trinet.cli.evaluate")}
    through = broken(**{"trinet.reporting": "from trinet.models import build\n"})
    chains = {v.module: v.message for v in through if v.rule == "tensorflow"}
    assert "trinet.reporting -> trinet.models -> keras" in chains["trinet.reporting"]
    assert ("layers", "trinet.reporting", "trinet.models") in {v.key for v in through}


def test_the_checker_finds_a_hand_kept_choice_list_and_a_module_without_part():
    found = broken(**{"trinet.cli.evaluate": 'METRIC_CHOICES = ["euclidean", "cosine"]\n',
                      "trinet.extra": "import os\n"})
    assert {v.key for v in found} == {("choices", "trinet.cli.evaluate", "METRIC_CHOICES"),
                                      ("parts", "trinet.extra", "")}


@pytest.mark.parametrize("source, target", [
    ("from trinet.demo import plan\n", "trinet.demo.plan"),
    ("from . import plan\n", "trinet.demo.plan"),
    ("from .people import VIEWS\n", "trinet.demo.people"),
    ("from trinet import __version__\n", "trinet"),
])
def test_imports_are_resolved_to_modules(source, target):
    known = {"trinet", "trinet.__init__", "trinet.demo", "trinet.demo.__init__", "trinet.demo.plan",
             "trinet.demo.people"}
    assert [i.target for i in imports(source, "trinet.demo.folder", known)] == [target]
