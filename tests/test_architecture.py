"""The package's import graph: no cycle between modules or packages, and every arrow
points down the layers of mmtrs/__init__.py. Read from the source (ast), so a late
import inside a function counts as much as one at the top of a file."""
import ast
import os
import os.path as osp

from conftest import ROOT

PKG = osp.join(ROOT, 'mmtrs')
#: package -> layer; a module may import only from its own package or a lower layer
LAYERS = {'utils': 0, 'quant': 1, 'trs': 2, 'remedies': 2, 'engine': 2, 'models': 3,
          'datasets': 3, 'export': 4, 'apis': 4}


def _modules():
    out = {}
    for dirpath, _, files in os.walk(PKG):
        for f in files:
            if f.endswith('.py'):
                path = osp.join(dirpath, f)
                rel = osp.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                out[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = path
    return out


def _imports(name, path, modules):
    """The mmtrs modules `name` imports (relative or absolute, anywhere in the file)."""
    is_pkg = path.endswith('__init__.py')
    base = name.split('.') if is_pkg else name.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base[:len(base) - node.level + 1] + (node.module.split('.')
                                                             if node.module else [])
            else:
                parts = node.module.split('.')
            target = '.'.join(parts)
            for alias in node.names:  # `from . import quant` names a module
                sub = f'{target}.{alias.name}'
                if sub in modules:
                    found.add(sub)
                elif node.module:   # `from .x import name`: module x
                    found.add(target)
                # else `from . import _compiled_ext`: no python module
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules and m != name}


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _package(module):
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else None


def _cycle(graph):
    """One cycle of `graph` as a list of nodes, or None."""
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_the_graph_is_read():
    graph = _graph()
    assert 'mmtrs.quant.quantizer' in graph['mmtrs.quant.layers'] or \
        'mmtrs.quant.qconv' in graph['mmtrs.quant.layers']
    assert 'mmtrs.trs.controller' in graph['mmtrs.trs.optim_wrapper']


def test_no_module_cycle():
    assert _cycle(_graph()) is None, f'import cycle: {" -> ".join(_cycle(_graph()))}'


def test_no_package_cycle_and_arrows_point_down():
    graph = _graph()
    packages = {}
    for mod, targets in graph.items():
        src = _package(mod)
        if src is None:   # mmtrs/__init__.py imports everything to register it
            continue
        assert src in LAYERS, f'{mod}: package {src} has no layer in this test'
        for t in targets:
            dst = _package(t)
            if dst is None:  # `import mmtrs` registers everything below export/apis
                assert LAYERS[src] == max(LAYERS.values()), \
                    f'{mod} imports the top-level mmtrs package, which imports its layer'
                continue
            if dst != src:
                packages.setdefault(src, set()).add(dst)
                assert LAYERS[dst] < LAYERS[src], \
                    f'{mod} (layer {LAYERS[src]}) imports {t} (layer {LAYERS[dst]})'
    assert _cycle(packages) is None


def test_the_checker_finds_a_cycle():
    assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert _cycle({'a': {'b'}, 'b': set()}) is None
