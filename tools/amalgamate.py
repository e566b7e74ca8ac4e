"""Write augment.py, the one file users copy, run and import, from the modules in src/augment/.

SQLite's way: many files developed, one generated file shipped. The modules are concatenated in
MODULES order (each imports only earlier ones), one banner per module naming its file, so a line of a
traceback maps back to its module; their imports are hoisted into one block and the package-internal
ones removed; the package docstring's Contents is written from the module list.

    python tools/amalgamate.py            write augment.py
    python tools/amalgamate.py --check    exit 1 when augment.py is not what the sources make
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "augment"
OUTPUT = ROOT / "augment.py"
# Reading order: a module uses only names of the modules before it (tests/test_layering.py checks).
MODULES = ["helpers", "files", "fastpaths", "catalogue", "custom", "perceptual", "labels", "images", "probes",
           "pipeline", "formats", "rows", "stats", "analysis", "search", "gradcam", "report", "compare", "policy",
           "synthesis", "transform", "augmenter", "cli"]
THIRD_PARTY = {"numpy"}  # the only import augment.py makes at its top besides the standard library
BANNER = "#" * 79
CONTENTS = "Contents (one module of src/augment/ each, in this order; generated)\n--------\n"


class AmalgamationError(Exception):
    pass


def _is_type_checking_block(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            and all(isinstance(n, ast.ImportFrom) and n.level > 0 for n in node.body) and not node.orelse)


def _defined_names(node: ast.stmt) -> list[str]:
    """The names a top-level statement binds, also inside a top-level if/try/with/for block."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
        inner = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                 *(s for handler in getattr(node, "handlers", []) for s in handler.body)]
        return [name for child in inner if not isinstance(child, (ast.Import, ast.ImportFrom))
                for name in _defined_names(child)]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


class _Module:
    """One source module split into its docstring, its imports and the rest of its lines."""

    def __init__(self, path: Path):
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.lines = self.text.split("\n")
        tree = ast.parse(self.text, filename=str(path))
        self.docstring = ast.get_docstring(tree, clean=True) or ""
        if not self.docstring or not isinstance(tree.body[0], ast.Expr):
            raise AmalgamationError(f"{path.name} has no docstring: say in one line what the module holds")
        self.raw_docstring = ast.get_source_segment(self.text, tree.body[0].value)
        if not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body):
            raise AmalgamationError(f"{path.name} lacks `from __future__ import annotations` (augment.py has it)")
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0 and not node.module and any(
                    alias.name != "__version__" for alias in node.names):
                raise AmalgamationError(f"{path.name}:{node.lineno}: `from . import <module>`: augment.py is one "
                                        f"namespace, import the names themselves (from .helpers import ...)")
            if (isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0]
                    == "augment") or (isinstance(node, ast.Import) and any(
                    alias.name.split(".")[0] == "augment" for alias in node.names)):
                raise AmalgamationError(f"{path.name}:{node.lineno}: the package imports itself by name: use a "
                                        f"relative import at the top (`from .module import name`)")
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                if any(alias.asname for alias in node.names):
                    raise AmalgamationError(f"{path.name}:{node.lineno}: `import ... as` of a package module: "
                                            f"augment.py is one namespace, use the name itself")
                if id(node) not in top_level and not any(id(node) in {id(b) for b in t.body} for t in tree.body
                                                         if _is_type_checking_block(t)):
                    raise AmalgamationError(f"{path.name}:{node.lineno}: a package import inside a function or "
                                            f"block: import at the top (only earlier modules), it is removed in "
                                            f"augment.py")
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) in top_level and not getattr(
                    node, "level", 0):
                roots = [a.name.split(".")[0] for a in node.names] if isinstance(node, ast.Import) else \
                    [(node.module or "").split(".")[0]]
                for root in roots:
                    if root != "__future__" and root not in sys.stdlib_module_names and root not in THIRD_PARTY:
                        raise AmalgamationError(f"{path.name}:{node.lineno}: `import {root}` at the top: augment.py "
                                                f"imports optional and heavy packages inside the function that needs "
                                                f"them (`import augment` stays fast and works without them)")
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.names: list[str] = []
        dropped: set[int] = set()
        for k, node in enumerate(tree.body):
            span = range(node.lineno, node.end_lineno + 1)
            if k == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                dropped.update(span)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                dropped.update(span)
                if not (isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__")):
                    self.imports.append(node)
            elif _is_type_checking_block(node):
                dropped.update(span)
            else:
                self.names.extend(_defined_names(node))
        if path.name != "__init__.py" and {"__all__", "__version__"} & set(self.names):
            raise AmalgamationError(f"{path.name} defines __all__ or __version__: only the package's __init__.py "
                                    f"does (they would replace the package's in augment.py)")
        self.body = [line for number, line in enumerate(self.lines, 1) if number not in dropped]

    def body_text(self) -> str:
        return "\n".join(self.body).strip("\n")


def _check_imports(modules: list[_Module], defined: dict[str, str]) -> None:
    """One namespace: a name is imported from one place only, and never also defined."""
    bound: dict[str, tuple[str, str]] = {}
    for module in modules:
        for node in module.imports:
            for alias in node.names:
                name = (alias.asname or alias.name).split(".")[0]
                source = alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
                if isinstance(node, ast.Import) and not alias.asname:
                    source = name
                if name in bound and bound[name][0] != source:
                    raise AmalgamationError(f"{name} is imported from {bound[name][0]} in {bound[name][1]} and from "
                                            f"{source} in {module.path.name}: augment.py is one namespace")
                bound.setdefault(name, (source, module.path.name))
                if name in defined:
                    raise AmalgamationError(f"{name} is imported in {module.path.name} and defined in "
                                            f"{defined[name]}.py: augment.py is one namespace, rename one")


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's (isort's) order of imported names: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2, name)


def _import_block(modules: list[_Module], keep_type_checking: bool) -> str:
    plain: dict[str, set[str]] = {"std": set(), "third": set()}
    froms: dict[str, dict[str, set[str]]] = {"std": defaultdict(set), "third": defaultdict(set)}
    for module in modules:
        for node in module.imports:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    side = "third" if alias.name.split(".")[0] in THIRD_PARTY else "std"
                    plain[side].add(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
            else:
                side = "third" if node.module.split(".")[0] in THIRD_PARTY else "std"
                for alias in node.names:
                    if alias.name == "TYPE_CHECKING" and not keep_type_checking:
                        continue
                    froms[side][node.module].add(alias.name + (f" as {alias.asname}" if alias.asname else ""))
    sections = []
    for side in ("std", "third"):
        lines = sorted(plain[side], key=lambda s: s.split()[1])
        lines += [f"from {name} import {', '.join(sorted(names, key=_isort_key))}"
                  for name, names in sorted(froms[side].items()) if names]
        if lines:
            sections.append("\n".join(lines))
    return "\n\n".join(sections)


def amalgamate() -> str:
    """The text of augment.py made from the package's modules."""
    init = _Module(PACKAGE / "__init__.py")
    modules = [_Module(PACKAGE / f"{name}.py") for name in MODULES]
    extra = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in MODULES + ["__init__", "__main__"])
    if extra:
        raise AmalgamationError(f"modules not in MODULES of tools/amalgamate.py: {', '.join(extra)}")
    seen: dict[str, str] = {}
    for name, module in zip(MODULES, modules):
        for defined in module.names:
            if defined in seen and defined != "__getattr__":
                raise AmalgamationError(f"{defined} is defined at the top of both {seen[defined]}.py and {name}.py: "
                                        f"augment.py is one namespace, rename one of them")
            seen[defined] = name
    _check_imports([init, *modules], seen)
    docstring = init.raw_docstring[3:-3].rstrip("\n")
    if CONTENTS not in docstring:
        raise AmalgamationError(f"the docstring of {init.path} lacks its Contents header:\n{CONTENTS}")
    width = max(len(name) for name in MODULES) + 4
    contents = "".join(f"{name + '.py':<{width}}{module.docstring.split('.')[0].split(':')[0].replace(chr(10), ' ')}\n"
                       for name, module in zip(MODULES, modules))
    docstring = docstring.replace(CONTENTS, CONTENTS + contents, 1)
    rest = "\n".join(m.body_text() for m in modules) + init.body_text()
    keep_type_checking = "TYPE_CHECKING" in rest
    header = "\n\n".join([
        f'"""{docstring}\n"""',
        "# Generated by tools/amalgamate.py from the modules in src/augment/, one banner per module: edit\n"
        "# those and run `python tools/amalgamate.py` (CI checks that this file is what they make).\n"
        "from __future__ import annotations",
        _import_block([init, *modules], keep_type_checking),
        "# Run as a script, this very module is `augment` (not a second copy of it under `__main__`): Dask\n"
        "# and worker processes send functions and classes by module name, and a user's module (--predict,\n"
        "# --augmentations-from) that does `import augment` gets the module running the command.\n"
        "# A copy under another name (tool.py) is the module `tool` (its workers import it by that name),\n"
        "# and `augment` too for the user's modules. Under a profiler or tracer (python -m cProfile\n"
        "# augment.py ...), __main__ is the tool's own namespace: then this file is loaded by its name\n"
        "# and that module runs the command.\n"
        "_RUN_AS_SCRIPT = __name__ == \"__main__\"\n"
        "if _RUN_AS_SCRIPT:\n"
        "    import importlib.util\n\n"
        "    _NAME = os.path.splitext(os.path.basename(__file__))[0]\n"
        "    _NAME = _NAME if _NAME.isidentifier() else \"augment\"\n"
        "    _SPEC = importlib.util.spec_from_file_location(_NAME, os.path.abspath(__file__))\n"
        "    if vars(sys.modules[__name__]) is not globals():\n"
        "        _module = sys.modules[_NAME] = importlib.util.module_from_spec(_SPEC)\n"
        "        sys.modules.setdefault(\"augment\", _module)\n"
        "        _SPEC.loader.exec_module(_module)\n"
        "        sys.exit(_module.main())\n"
        "    sys.modules[_NAME] = sys.modules[__name__]\n"
        "    sys.modules.setdefault(\"augment\", sys.modules[__name__])\n"
        "    __name__, __spec__ = _NAME, _SPEC",
    ])
    parts = [header, init.body_text()]
    for name, module in zip(MODULES, modules):
        title = f"src/augment/{name}.py"
        comment = "\n".join(f"# {line}".rstrip() for line in module.docstring.splitlines())
        parts.append(f"{BANNER}\n# {title}\n{comment}\n{BANNER}\n\n{module.body_text()}")
    parts.append(f"{BANNER}\n# Run as a script\n{BANNER}\n\nif _RUN_AS_SCRIPT:\n    sys.exit(main())")
    return "\n\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when augment.py is not what the sources make")
    args = parser.parse_args(argv)
    try:
        text = amalgamate()
    except (AmalgamationError, SyntaxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text:
            return 0
        print(f"error: {OUTPUT.name} is not what src/augment/ makes: run python tools/amalgamate.py and commit it",
              file=sys.stderr)
        return 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.name}: {text.count(chr(10))} lines from {len(MODULES)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
