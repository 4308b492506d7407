"""The import layers of `toolkit/`: every import (at module level or inside a function) goes down or sideways.

A module may import its own layer or the layers below it, never one above: the
config layer never imports a task, tasks never import the application (runs,
predict, api, serving, cli), and `toolkit --help` stays free of TensorFlow.
The layers are listed here, explicitly; a new module must be placed in one.
"""

import ast
import os
import subprocess
import sys

from conftest import REPO

PACKAGE = os.path.join(REPO, "toolkit")

# Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS = [
    ("foundation", ["toolkit.errors", "toolkit.registry", "toolkit.atomic", "toolkit.quiet", "toolkit.progress",
                    "toolkit.paths", "toolkit.devices", "toolkit.text_metrics", "toolkit.classification_metrics",
                    "toolkit.data.skips",
                    "toolkit.config.base", "toolkit.config.tasks"]),
    ("tables", ["toolkit.backbones.registry", "toolkit.exporters.formats", "toolkit.runtimes"]),
    ("config", ["toolkit.config"]),
    ("infrastructure", ["toolkit.data", "toolkit.backbones", "toolkit.exporters", "toolkit.training",
                        "toolkit.text_generation", "toolkit.references", "toolkit.model_io",
                        "toolkit.plots", "toolkit.model_card", "toolkit.explanations"]),
    ("tasks", ["toolkit.tasks"]),
    ("reports", ["toolkit.reports"]),
    ("runs", ["toolkit.runs", "toolkit.tracking", "toolkit.run_table"]),
    ("inference", ["toolkit.inference"]),
    ("api", ["toolkit.api"]),
    ("tuning", ["toolkit.tuning"]),  # a study trains runs through the api
    ("serving", ["toolkit.serving", "toolkit.benchmark"]),
    ("entry points", ["toolkit.cli", "toolkit.__main__", "toolkit"]),
]

# Import cycles inside one package, left for now; nothing may join them and no other cycle may appear.
KNOWN_CYCLES = [
    {"toolkit.backbones.build", "toolkit.backbones.weights"},  # `toolkit weights import` checks by building
]


def _modules():
    modules = {}
    for root, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def _imports(modules):
    """{module: {(imported module, line)}} for every `toolkit` import, function bodies included."""
    def owner(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    found = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "toolkit" and owner(name) not in ("", module):
                    targets.add((owner(name), node.lineno))
        found[module] = targets
    return found


def _layer(module):
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def test_every_module_has_a_layer():
    unplaced = [module for module in _modules() if _layer(module) is None]
    assert not unplaced, f"place these modules in a layer of tests/test_layers.py: {unplaced}"


def test_no_module_imports_a_layer_above_its_own():
    modules = _modules()
    upward = []
    for module, targets in sorted(_imports(modules).items()):
        for target, line in sorted(targets):
            if _layer(target) > _layer(module):
                upward.append(f"{os.path.relpath(modules[module], REPO)}:{line}: {module} "
                              f"({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})")
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_no_new_import_cycles():
    modules = _modules()
    graph = {module: {target for target, _ in targets} for module, targets in _imports(modules).items()}
    cycles = _strongly_connected(graph)
    unknown = [sorted(cycle) for cycle in cycles if not any(cycle <= known for known in KNOWN_CYCLES)]
    assert not unknown, f"import cycles (break them; a lower module must not reach back up): {unknown}"


def _strongly_connected(graph):
    """The components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def test_the_cycle_finder_finds_a_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_toolkit_help_and_the_task_registry_import_no_tensorflow_and_no_task_module():
    """Only the task packages' `__init__` (registration by reference) run; no task's code is imported."""
    code = ("import sys, toolkit.cli, toolkit.tasks; toolkit.cli._parser().format_help(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') "
            "or m.count('.') > 2 and m.startswith('toolkit.tasks.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# Generic modules: everything outside toolkit/tasks/. They loop over the task registry and the hooks tasks declare;
# a task's name in their code (identifiers and strings; comments, docstrings and recipe paths aside) is a branch
# or a list that the next task would have to edit.
NAME_ALLOWED = {
    ("toolkit/config/schema.py", "translation"),  # augmentation: the image shift, not the task
}


def _code_words(path):
    """(line, text) of the identifiers and non-docstring string literals of a module."""
    import io
    import tokenize

    with open(path, encoding="utf-8") as f:
        source = f.read()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and \
                    isinstance(first.value.value, str):
                docstrings.add(first.lineno)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME or (token.type == tokenize.STRING and token.start[0] not in docstrings):
            yield token.start[0], token.string


def test_generic_modules_name_no_task():
    import re

    from toolkit.tasks import TASKS

    words = "|".join(re.escape(name).replace("_", "[ _]") for name in TASKS.names())  # "speech recognition" too
    pattern = re.compile(r"(?<![A-Za-z0-9/])(" + words + r")(?![A-Za-z0-9])")
    found = []
    for module, path in sorted(_modules().items()):
        relative = os.path.relpath(path, REPO)
        if module.startswith("toolkit.tasks."):
            continue
        for line, text in _code_words(path):
            for name in pattern.findall(text):
                if (relative, name.replace(" ", "_")) not in NAME_ALLOWED:
                    found.append(f"{relative}:{line}: {name} in {text[:80]}")
    assert not found, "generic modules naming a task (declare a hook on the task instead):\n" + "\n".join(found)


def test_every_task_has_a_predictor_that_imports_no_training_code():
    """Deployment (predict, serve, verify, benchmark) uses a task's `Predictor` alone: every task registers one, its
    `Task` names it, and no predictor module reaches a task's training module (`task.py`, `toolkit.tasks.base`),
    even through a function-level import."""
    from toolkit.tasks import PREDICTORS, TASKS

    assert sorted(PREDICTORS.names()) == sorted(TASKS.names())
    for name in TASKS.names():
        assert TASKS.get(name).predictor is PREDICTORS.get(name), name
        assert PREDICTORS.get(name).name == name
    modules = _modules()
    graph = {module: {target for target, _ in targets} for module, targets in _imports(modules).items()}
    training = {m for m in modules if m == "toolkit.tasks.base" or (m.startswith("toolkit.tasks.") and m.endswith(".task"))}
    reached = []
    for start in sorted(m for m in modules if m.startswith("toolkit.tasks.") and m.endswith(".predictor")):
        seen, stack = set(), [start]
        while stack:
            module = stack.pop()
            for target in graph.get(module, ()):
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        reached += [f"{start} reaches {module}" for module in sorted(seen & training)]
    assert not reached, "predictors importing training code:\n" + "\n".join(reached)


def test_predictor_modules_import_no_tensorflow():
    """ONNX Runtime and TFLite prediction run without TensorFlow: loading every predictor imports none of it."""
    code = ("import sys, toolkit.tasks as t\n"
            "for name in t.PREDICTORS.names(): t.predictor_class(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'keras_hub') "
            "or m.startswith('toolkit.tasks.') and m.endswith('.task')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
