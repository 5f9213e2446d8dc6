"""Loading a PM2 ecosystem file — JSON, YAML or JavaScript — with the line of each key.

PM2 decides by the file name (`.json`, `.yml`/`.yaml`, `.js`/`.cjs`/`.mjs`):

- **JSON** is read strictly (json module); PM2 itself evaluates it as a JavaScript
  expression, so a file with comments or trailing commas is evaluated with node as PM2
  does, when node is installed. Lines come from a small scan of the (valid) JSON text.
- **YAML** through PyYAML's safe loader (imported here only), lines from its node marks.
  Aliases are followed once, so an alias bomb costs nothing.
- **JavaScript** (`ecosystem.config.js`) is evaluated by node — `require` for CommonJS,
  `import()` for ES modules — exactly as `pm2 start` would, with a time limit. Without
  node the error says how to get a JSON file instead. Lines are found by searching the
  source for `key:` near each app's name, so they are best-effort.

Every failure — bad syntax, nesting too deep for the parser, node missing or failing — is
a `FILE:LINE: problem; expected …` ConfigError.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herder.import_.source import Source, fail, read_source

WHAT = "a PM2 ecosystem file"
NODE_TIMEOUT = 20.0
Path_ = tuple[Any, ...]


@dataclass
class Loaded:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    evaluated: bool = False   # by node: lines are best-effort

    def line(self, *path: Any) -> int | None:
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return None


def kind(path: Path) -> str:
    name = path.name
    if name.endswith((".yml", ".yaml")):
        return "yaml"
    if name.endswith((".js", ".cjs", ".mjs")):
        return "js"
    return "json"


def load(path: Path) -> tuple[Source, Loaded]:
    src = read_source(path, WHAT)
    k = kind(path)
    if k == "yaml":
        return src, _yaml(src)
    if k == "js":
        data = _node(src, expression=False)
        return src, Loaded(data, _guess_lines(src, data), evaluated=True)
    try:
        data = json.loads(src.text)
    except RecursionError:
        raise fail(str(src.path), f"nested too deeply for the JSON reader; expected {WHAT}") from None
    except json.JSONDecodeError as e:
        if shutil.which("node") is None:
            raise fail(src.where(e.lineno), f"not JSON ({e.msg}, column {e.colno}); expected {WHAT} (PM2 also "
                       "accepts JavaScript syntax here, which herder evaluates with node: install node)") from None
        data = _node(src, expression=True)
        return src, Loaded(data, _guess_lines(src, data), evaluated=True)
    return src, Loaded(data, _json_lines(src.text))


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def _json_lines(text: str) -> dict[Path_, int]:
    """path → line of every object key, for text that json.loads accepted."""
    out: dict[Path_, int] = {}
    stack: list[list[Any]] = []   # [container kind, path, current key or index]
    line, pos = 1, 0
    pending: str | None = None
    pending_line = 0
    for m in _TOKEN.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        tok = m.group()
        if tok in "{[":
            path = _here(stack)
            if stack and stack[-1][0] == "[":
                out[path] = line
            stack.append(["{" if tok == "{" else "[", path, None if tok == "{" else 0])
        elif tok in "}]":
            stack.pop()
        elif tok == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][2] += 1
        elif tok == ":":
            if stack and pending is not None:
                stack[-1][2] = pending
                out[(*stack[-1][1], pending)] = pending_line
        elif tok.startswith('"') and stack and stack[-1][0] == "{":
            pending, pending_line = json.loads(tok), line
            continue
        pending = None
    return out


def _here(stack: list[list[Any]]) -> Path_:
    return (*stack[-1][1], stack[-1][2]) if stack else ()


def _yaml(src: Source) -> Loaded:
    import yaml

    try:
        loader = yaml.SafeLoader(src.text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except RecursionError:
        raise fail(str(src.path), f"nested too deeply for the YAML reader; expected {WHAT}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise fail(src.where(line), f"not valid YAML ({e.problem or e.context}); expected {WHAT}") from None
    except yaml.YAMLError as e:
        raise fail(str(src.path), f"not valid YAML ({e}); expected {WHAT}") from None
    lines: dict[Path_, int] = {}
    seen: set[int] = set()
    todo: list[tuple[Any, Path_]] = [(node, ())] if node is not None else []
    while todo:
        n, path = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    lines.setdefault((*path, k.value), k.start_mark.line + 1)
                    todo.append((v, (*path, k.value)))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines.setdefault((*path, i), v.start_mark.line + 1)
                todo.append((v, (*path, i)))
    return Loaded(data, lines)


_NODE_SCRIPT = r"""
const path = require('path'), url = require('url'), fs = require('fs');
const file = path.resolve(process.argv[1]);
const out = (c) => { process.stdout.write(JSON.stringify(c === undefined ? null : c)); };
if (process.argv[2] === 'expression') {
  const vm = require('vm');
  out(vm.runInThisContext('(' + fs.readFileSync(file, 'utf8') + ')', {filename: file, timeout: 1000}));
} else if (file.endsWith('.mjs')) {
  import(url.pathToFileURL(file).href).then((m) => out(m.default !== undefined ? m.default : m))
    .catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
} else {
  out(require(file));
}
"""


def _node(src: Source, expression: bool) -> Any:
    node = shutil.which("node")
    if node is None:
        raise fail(str(src.path), "is JavaScript, which herder evaluates with node, and node is not installed; "
                   "expected node on PATH (apt install nodejs), or the same apps in ecosystem.json or .yaml")
    try:
        how = "expression" if expression else "module"
        r = subprocess.run([node, "-e", _NODE_SCRIPT, str(src.path.resolve()), how],
                           cwd=src.dir, capture_output=True, stdin=subprocess.DEVNULL, timeout=NODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise fail(str(src.path), f"node did not finish evaluating it within {NODE_TIMEOUT:g}s; expected "
                   f"{WHAT} that only builds its settings") from None
    except OSError as e:
        raise fail(str(src.path), f"cannot run node: {e.strerror or e}") from None
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        where = next((ln for ln in err if str(src.path.name) in ln and ":" in ln), "")
        m = re.search(r":(\d+)\b", where)
        msg = next((ln for ln in err if re.match(r"\w*Error\b", ln)), err[-1] if err else f"exit {r.returncode}")
        raise fail(src.where(int(m.group(1)) if m else None), f"node could not evaluate it: {msg}") from None
    try:
        return json.loads(r.stdout)
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError):
        raise fail(str(src.path), f"node's evaluation is not JSON data; expected {WHAT} exporting "
                   "{ apps: [...] }") from None


def _guess_lines(src: Source, data: Any) -> dict[Path_, int]:
    """Best-effort lines for evaluated JavaScript: each app at the line naming it, each key at
    its nearest `key:` to that line."""
    out: dict[Path_, int] = {}
    apps = data.get("apps", data.get("pm2")) if isinstance(data, dict) else data
    if not isinstance(apps, list):
        return out
    lines = src.text.splitlines()
    prefix = ("apps",) if isinstance(data, dict) and "apps" in data else \
        (("pm2",) if isinstance(data, dict) and "pm2" in data else ())
    for i, app in enumerate(apps):
        key0 = next((k for k in ("name", "script") if isinstance(app, dict) and isinstance(app.get(k), str)), None)
        if key0 is None:
            continue
        pat = re.compile(r"\b" + key0 + r"""['"]?\s*:\s*['"`]""" + re.escape(app[key0]) + r"""['"`]""")
        at = next((n for n, ln in enumerate(lines, 1) if pat.search(ln)), None)
        if at is None:
            continue
        out[(*prefix, i)] = at
        for key in app:
            kp = re.compile(r"""(^|[\s{,'"])""" + re.escape(str(key)) + r"""['"]?\s*:""")
            hits = [n for n, ln in enumerate(lines, 1) if kp.search(ln)]
            if hits:
                out[(*prefix, i, key)] = min(hits, key=lambda n: (abs(n - at), n))
    return out

