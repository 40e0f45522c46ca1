"""The rules of ARCHITECTURE.md, checked on the imports of trinet/'s source files.

The files are parsed with `ast`, never imported: no TensorFlow is loaded and the whole check takes a fraction
of a second. The parts are the folders of `trinet/`; which part may import which is read from the table in
ARCHITECTURE.md, so the document and the check cannot drift apart, and a new module is placed in its part by
the folder it is saved in. The checker itself is tested on small sources that break each rule.
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

#: Modules that must import without TensorFlow, besides the parts marked "TensorFlow: no": the package root
#: and the commands that start in a fraction of a second.
NUMPY_COMMANDS = ("trinet", "trinet.cli.evaluate", "trinet.cli.convert", "trinet.cli.combine",
                  "trinet.cli.train", "trinet.cli.search")

#: The part of the package root's own files (`trinet/__init__.py` and the public aliases beside it).
ROOT_PART = "api"

#: Known breaks of the rules, each `(rule, module, name)`; every entry must still occur (the test fails when
#: one is fixed, until it is deleted here). None today.
KNOWN_GAPS: set[tuple[str, str, str]] = set()


@dataclasses.dataclass(frozen=True)
class Part:
    name: str
    places: tuple[str, ...]  # `core/` (a folder of trinet/) or `layers.py` (a file at the root)
    may_import: frozenset[str]
    tensorflow: bool


@dataclasses.dataclass(frozen=True)
class Import:
    target: str
    line: int
    lazy: bool  # inside a function (or `if TYPE_CHECKING:`): runs only when the function is called
    function: str = ""  # the module-level function it is in, if any
    names: tuple[str, ...] = ()  # the names of `from X import a, b` (a name that is a module is the target)


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
        name, places, may_import, tensorflow = cells
        allowed = frozenset(p.strip() for p in may_import.split(",") if p.strip())
        parts.append(Part(name, tuple(re.findall(r"`([^`]+)`", places)), allowed, tensorflow != "no"))
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


def packages(sources: dict[str, str]) -> set[str]:
    """The modules of `sources` that are packages (others are inside them)."""
    return {m for m in sources if any(k.startswith(m + ".") for k in sources)}


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
                    if full in known:
                        found.append(Import(full, child.lineno, lazy, function))
                    else:
                        found.append(Import(base, child.lineno, lazy, function, (alias.name,)))
            visit(child, inner, inside)

    visit(ast.parse(source), False, "")
    return found


def private(name: str) -> bool:
    """`_x` is private to its module; `__version__` and `__init__` are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def private_uses(source: str, module: str, known: set[str]) -> list[tuple[str, str, int]]:
    """(target module, private name, line) of each private name of another trinet module that `source` takes:
    `from trinet.x import _y`, or `x._y` where `x` is a trinet module it imported."""
    found, aliases = [], {}
    for imp in imports(source, module, known):
        if imp.target.startswith("trinet") and imp.target != module:
            found += [(imp.target, name, imp.line) for name in imp.names if private(name)]
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname and a.name.startswith("trinet")})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trinet"):
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names
                            if f"{node.module}.{a.name}" in known})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            name = _dotted(node.value)
            target = aliases.get(name or "", name)
            if target is not None and target in known and target != module:
                found.append((target, node.attr, node.lineno))
    return found


# --- The checker ---------------------------------------------------------------------------------------

def part_of(module: str, parts: list[Part]) -> Part | None:
    """The part of `module`: that of its folder under trinet/ (`trinet.data.naming` -> `data/`), or for a
    module of the root, the part that lists its file (`trinet` -> `__init__.py`, `trinet.layers` ->
    `layers.py`)."""
    pieces = module.split(".")
    if pieces[0] != "trinet":
        return None
    places = ["__init__.py"] if len(pieces) == 1 else [f"{pieces[1]}/"]
    if len(pieces) == 2:
        places.insert(0, f"{pieces[1]}.py")
    for place in places:
        for part in parts:
            if place in part.places:
                return part
    return None


def import_graph(sources: dict[str, str]) -> tuple[set[str], dict[str, list[Import]]]:
    """The known module names (packages also as `name.__init__`) and the imports of each module."""
    known = set(sources) | {f"{m}.__init__" for m in packages(sources)}
    return known, {module: imports(source, module, known) for module, source in sources.items()}


def cycles(sources: dict[str, str]) -> list[list[str]]:
    """The import cycles between trinet's modules, each as `[a, b, ..., a]`. Every import that can run counts,
    inside functions too, and so does an import for type checking (the two modules depend on each other); the
    package root's `__getattr__`, which re-exports the public API on first use (rule 7), does not."""
    _, found = import_graph(sources)
    edges = {m: sorted({i.target for i in imps if i.target in sources and i.target != m
                        and not (m == "trinet" and i.function == "__getattr__")})
             for m, imps in found.items()}
    out, state = [], {}  # state: 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in edges[module]:
            if state.get(target) == 1:
                loop = path[path.index(target):]
                first = loop.index(min(loop))  # each cycle told from its smallest module
                out.append(loop[first:] + loop[:first] + [loop[first]])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return out


def check(sources: dict[str, str], parts: list[Part]) -> list[Violation]:
    """Every break of the rules of ARCHITECTURE.md in `sources` (module name -> source)."""
    known, found = import_graph(sources)
    out = []
    for module in sorted(sources):
        part = part_of(module, parts)
        if part is None:
            out.append(Violation("parts", module, "", f"{module} belongs to no part of ARCHITECTURE.md "
                                 "(save it in one of the parts' folders)"))
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
            if imp.target == "trinet":
                continue  # the package root (`__version__`) runs before any module of trinet anyway
            target = part_of(imp.target, parts)
            if target is not None and target is not part and target.name not in part.may_import:
                allowed = sorted(part.may_import)
                out.append(Violation("layers", module, imp.target,
                                     f"{module}:{imp.line} ({part.name}) imports {imp.target} "
                                     f"({target.name}); {part.name} may import only {allowed}"))
        for target, name, line in private_uses(sources[module], module, known):
            out.append(Violation("private", module, f"{target}.{name}",
                                 f"{module}:{line} uses {name}, private to {target}: make it public in the "
                                 "module both need, or keep it where it is used"))
        for name, line in hand_kept_choices(sources[module]):
            out.append(Violation("choices", module, name, f"{module}:{line}: {name} is a list of names kept "
                                 "by hand; take choices=sorted(REGISTRY) from the registry"))
    for cycle in cycles(sources):
        out.append(Violation("cycle", cycle[0], " -> ".join(cycle), "import cycle: " + " -> ".join(cycle)))
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


def test_the_parts_are_the_folders_of_the_package():
    """Each part but the root's is one folder of trinet/ with its name; every folder of trinet/ is a part, and
    the root holds only the files of the `api` part."""
    parts = {p.name: p for p in architecture_parts()}
    package = os.path.join(REPO, "trinet")
    folders = {f for f in os.listdir(package) if os.path.isfile(os.path.join(package, f, "__init__.py"))}
    for name, part in parts.items():
        if name == ROOT_PART:
            files = [os.path.join(package, p) for p in part.places]
            assert all(p.endswith(".py") and os.path.isfile(p) for p in files), part
        else:
            assert part.places == (f"{name}/",), f"the part {name} must be the folder trinet/{name}/"
    assert folders == set(parts) - {ROOT_PART}, "folders of trinet/ and parts of ARCHITECTURE.md differ"
    root_files = {f for f in os.listdir(package) if f.endswith(".py")}
    assert root_files == set(parts[ROOT_PART].places)


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
                            "trinet-combine", "trinet-demo", "trinet-export", "trinet-search",
                            "trinet-projector", "trinet-visualize"}
    sources = read_sources(REPO)
    for name, target in scripts.items():
        module, function = target.split(":")
        tree = ast.parse(sources[module])
        assert any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body), name


# --- The checker fails when a rule is broken --------------------------------------------------------------

PARTS = read_parts("""<!-- parts: -->
| part | where | may import | TensorFlow |
|---|---|---|---|
| api | `__init__.py` | core | no |
| core | `core/` | | no |
| console | `console/` | core | no |
| data | `data/` | core | no |
| models | `models/` | core | yes |
| evaluation | `evaluation/` | core, data | no |
| cli | `cli/` | core, console, data, models, evaluation | |
<!-- end of parts -->""")

GOOD = {
    "trinet": "",
    "trinet.core": "",
    "trinet.core.errors": "class TrinetError(Exception):\n    pass\n",
    "trinet.console": "",
    "trinet.console.commands": "import sys\nfrom trinet.core.errors import TrinetError\n\n"
                               "def quiet():\n    import tensorflow\n",  # lazy: allowed
    "trinet.data": "",
    "trinet.data.naming": "import re\n\ndef _helper():\n    pass\n\ndef name():\n    _helper()\n",
    "trinet.models": "",
    "trinet.models.builder": "import keras\nfrom trinet.core import errors\n",
    "trinet.evaluation": "",
    "trinet.evaluation.metrics": "import numpy as np\nfrom trinet.data.naming import name\n",
    "trinet.evaluation.reporting": "from trinet.evaluation import metrics\n",
    "trinet.cli": "",
    "trinet.cli.common": "from trinet.console.commands import *\n",
    "trinet.cli.evaluate": "from trinet.evaluation.reporting import summary\n"
                           "from trinet.cli.common import run_main\n",
}


def broken(**changes: str) -> list[Violation]:
    return check({**GOOD, **changes}, PARTS)


def test_the_checker_passes_sources_that_keep_the_rules():
    assert broken() == []


def test_a_module_belongs_to_the_part_of_its_folder():
    parts = architecture_parts()
    assert part_of("trinet.data.converters.market", parts).name == "data"
    assert part_of("trinet.training", parts).name == "training"
    assert part_of("trinet", parts).name == part_of("trinet.layers", parts).name == ROOT_PART
    assert part_of("trinet.newpart.module", parts) is None
    assert ("parts", "trinet.extra.module", "") in {v.key for v in broken(**{"trinet.extra.module": ""})}


def test_the_checker_finds_a_library_module_importing_the_command_line():
    found = broken(**{"trinet.data.naming": "from trinet.cli.common import run_main\n"})
    assert [v.rule for v in found] == ["cli", "layers"]
    assert "trinet.data.naming:1 imports trinet.cli.common" in found[0].message


def test_only_the_package_roots_getattr_may_import_any_part():
    facade = "def __getattr__(name):\n    from trinet.models.builder import build\n    return build\n"
    assert broken(trinet=facade) == []
    for module, source in [("trinet", "from trinet.models.builder import build\n"),
                           ("trinet.core.errors", facade),
                           ("trinet", "def other():\n    from trinet.models.builder import build\n")]:
        found = broken(**{module: source})
        assert ("layers", module, "trinet.models.builder") in {v.key for v in found}, (module, source)


def test_the_checker_finds_an_import_against_the_layers():
    found = broken(**{"trinet.core.errors": "from trinet.data import naming\n"})
    assert [v.key for v in found] == [("layers", "trinet.core.errors", "trinet.data.naming")]
    assert "(core) imports trinet.data.naming (data); core may import only []" in found[0].message


def test_the_checker_finds_tensorflow_in_evaluation_directly_or_through_an_import():
    direct = broken(**{"trinet.evaluation.metrics": "import tensorflow as tf\n"})
    assert {(v.rule, v.module) for v in direct} == {("tensorflow", "trinet.evaluation.metrics"),
                                                    ("tensorflow", "trinet.evaluation.reporting"),
                                                    ("tensorflow", "trinet.cli.evaluate")}
    through = broken(**{"trinet.evaluation.reporting": "from trinet.models.builder import build\n"})
    chains = {v.module: v.message for v in through if v.rule == "tensorflow"}
    chain = "trinet.evaluation.reporting -> trinet.models.builder -> keras"
    assert chain in chains["trinet.evaluation.reporting"]
    assert ("layers", "trinet.evaluation.reporting", "trinet.models.builder") in {v.key for v in through}


def test_the_checker_finds_tensorflow_in_the_package_root():
    found = broken(trinet="import keras\n")
    assert ("tensorflow", "trinet", "keras") in {v.key for v in found}


def test_the_checker_finds_a_hand_kept_choice_list_and_a_module_without_part():
    found = broken(**{"trinet.cli.evaluate": 'METRIC_CHOICES = ["euclidean", "cosine"]\n',
                      "trinet.extra": "import os\n"})
    assert {v.key for v in found} == {("choices", "trinet.cli.evaluate", "METRIC_CHOICES"),
                                      ("parts", "trinet.extra", "")}


@pytest.mark.parametrize("source", [
    "from trinet.data.naming import _helper\n",
    "from trinet.data.naming import name, _helper as helper\n",
    "from trinet.data import naming\n\ndef f():\n    return naming._helper()\n",
    "import trinet.data.naming\n\nx = trinet.data.naming._helper\n",
    "import trinet.data.naming as n\n\nx = n._helper\n",
])
def test_the_checker_finds_a_private_name_taken_from_another_module(source):
    found = broken(**{"trinet.evaluation.metrics": source})
    assert [v.key for v in found if v.rule == "private"] == [("private", "trinet.evaluation.metrics",
                                                              "trinet.data.naming._helper")]
    message = [v.message for v in found if v.rule == "private"][0]
    assert "uses _helper, private to trinet.data.naming" in message


def test_own_privates_and_dunder_names_are_no_private_use():
    assert broken(**{"trinet.evaluation.metrics": "from trinet import __version__\n",
                     "trinet.data.naming": "def _a():\n    pass\n\nx = _a\n"}) == []


@pytest.mark.parametrize("changes, cycle", [
    ({"trinet.evaluation.metrics": "from trinet.evaluation import reporting\n"},
     "trinet.evaluation.metrics -> trinet.evaluation.reporting -> trinet.evaluation.metrics"),
    ({"trinet.evaluation.metrics": "def f():\n    from trinet.evaluation.reporting import g\n"},  # lazy
     "trinet.evaluation.metrics -> trinet.evaluation.reporting -> trinet.evaluation.metrics"),
    ({"trinet.data.naming": "import trinet.data.other\n",
      "trinet.data.other": "from trinet.data import more\n",
      "trinet.data.more": "from trinet.data.naming import x\n"},
     "trinet.data.more -> trinet.data.naming -> trinet.data.other -> trinet.data.more"),
])
def test_the_checker_finds_an_import_cycle(changes, cycle):
    found = broken(**changes)
    assert [v.detail for v in found if v.rule == "cycle"] == [cycle]


def test_an_import_for_type_checking_closes_a_cycle_too():
    """Two modules that need each other's types are one concern, or a third module is missing."""
    typing = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from trinet.evaluation import reporting\n")
    assert [v.rule for v in broken(**{"trinet.evaluation.metrics": typing})] == ["cycle"]


def test_the_roots_getattr_makes_no_cycle():
    facade = "def __getattr__(name):\n    from trinet.evaluation.metrics import x\n    return x\n"
    version = "from trinet import __version__\n"
    assert cycles({**GOOD, "trinet": facade, "trinet.evaluation.metrics": version}) == []
    eager = "from trinet.evaluation.metrics import x\n"
    assert cycles({**GOOD, "trinet": eager, "trinet.evaluation.metrics": version}) != []


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
