"""The package's imports point one way: derived from the source (ast), every
import counted — those inside functions too — so a cycle or an import
against the layering cannot hide."""
from __future__ import annotations

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tnet_tf")

# Lower layers first; a module may import its own layer or a lower one. A
# module belongs to the layer of its longest listed prefix: the grid's
# geometry and the input checks are pure functions (they import nothing of
# the package) that the configuration validates itself with.
LAYERS = (
    ("tnet_tf.version", "tnet_tf.model.layers.grid", "tnet_tf.model.inputs"),
    ("tnet_tf.config",),
    ("tnet_tf.model",),
    ("tnet_tf.data", "tnet_tf.visualize"),
    ("tnet_tf.training",),
    ("tnet_tf.inference",),
    ("tnet_tf.tools",),
    ("tnet_tf.cli", "tnet_tf.experiments"),
)
COMMAND_LINE = ("tnet_tf.cli", "tnet_tf.experiments")


def modules(root: str = PACKAGE) -> dict[str, str]:
  """Dotted module name → file, for every module of the package."""
  found = {}
  base = os.path.dirname(root)
  for folder, _, files in os.walk(root):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(folder, name)
      parts = os.path.relpath(path, base)[:-3].split(os.sep)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      found[".".join(parts)] = path
  return found


def imports_of(name: str, path: str, known: dict[str, str]) -> set[str]:
  """The package's modules that ``name`` imports, anywhere in its body
  (``from a import b`` counts as ``a.b`` when that is a module)."""
  with open(path, encoding="utf-8") as fh:
    tree = ast.parse(fh.read(), path)
  package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        parts = package.split(".")
        parts = parts[:len(parts) - node.level + 1]
        source = ".".join(parts + ([node.module] if node.module else []))
      else:
        source = node.module or ""
      for alias in node.names:
        full = f"{source}.{alias.name}"
        found.add(full if full in known else source)
  return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
  known = modules()
  return {name: imports_of(name, path, known) for name, path in known.items()}


def layer_of(name: str) -> int:
  matches = [(len(p), index) for index, prefixes in enumerate(LAYERS)
             for p in prefixes if name == p or name.startswith(p + ".")]
  if not matches:
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")
  return max(matches)[1]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in edges[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      visit(v)
  return found


def test_no_import_cycles():
  assert cycles(graph()) == []


def test_imports_point_down_the_layers():
  wrong = []
  for name, targets in graph().items():
    if name == "tnet_tf":  # the package root re-exports the public API
      continue
    for target in targets:
      if target == "tnet_tf":
        wrong.append(f"{name} imports the package root")
      elif layer_of(target) > layer_of(name):
        wrong.append(f"{name} (layer {layer_of(name)}) imports {target} "
                     f"(layer {layer_of(target)})")
  assert not wrong, "\n".join(sorted(wrong))


def test_only_the_command_line_reads_flags_or_runs():
  offenders = []
  for name, path in modules().items():
    if name.startswith(COMMAND_LINE):
      continue
    with open(path, encoding="utf-8") as fh:
      tree = ast.parse(fh.read(), path)
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module == "absl" and any(
          a.name in ("flags", "app") for a in node.names):
        offenders.append(f"{name} imports absl.{node.names[0].name}")
      elif isinstance(node, ast.Import) and any(
          a.name in ("absl.flags", "absl.app") for a in node.names):
        offenders.append(f"{name} imports absl flags/app")
      elif (isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Name)
            and node.left.id == "__name__"):
        offenders.append(f"{name} is runnable (if __name__ == ...)")
  assert not offenders, "\n".join(sorted(offenders))


# The checks above must be able to fail: the same functions on a small
# package written here.
@pytest.fixture
def toy_package(tmp_path):
  root = tmp_path / "tnet_tf"
  for folder in ("model", "training"):
    (root / folder).mkdir(parents=True)
    (root / folder / "__init__.py").write_text("")
  (root / "__init__.py").write_text("")
  (root / "model" / "tnet.py").write_text(
      "def f():\n  from tnet_tf.training import trainer\n")
  (root / "training" / "trainer.py").write_text(
      "from tnet_tf.model import tnet\n")
  return str(root)


def test_a_function_local_import_cycle_is_found(toy_package):
  known = modules(toy_package)
  edges = {n: imports_of(n, p, known) for n, p in known.items()}
  assert edges["tnet_tf.model.tnet"] == {"tnet_tf.training.trainer"}
  assert cycles(edges) == [["tnet_tf.model.tnet", "tnet_tf.training.trainer"]]
  assert layer_of("tnet_tf.training.trainer") > layer_of("tnet_tf.model.tnet")
  assert layer_of("tnet_tf.model.layers.grid") < layer_of("tnet_tf.config")
  assert layer_of("tnet_tf.config") < layer_of("tnet_tf.model.layers.location")
