"""``connector new-plugin NAME``: a third-party plugin package whose tests pass as generated.

The templates (``templates/*.tmpl``, ``string.Template``) are a plugin as this project's own are written: a signed-in
webhook source, a mapper to a Segment track, an HTTP sink with retries and pause, and tests built
on the conformance suites of ``connector.testing``.
"""

from __future__ import annotations

import re
import string
from importlib.resources import files
from pathlib import Path

from ..errors import CommandError

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
PARTS = ("source", "mapper", "sink")


def new_plugin(name: str, directory: str, parts: set[str]) -> Path:
    """Write ``connector-NAME/`` in ``directory`` with the chosen ``parts``; return its path."""
    if not NAME.match(name):
        raise CommandError(f"plugin name {name!r}: use lowercase letters, digits, underscores and hyphens, "
                           "starting with a letter (e.g. typeform, surveymonkey-poll)")
    name = name.replace("-", "_")  # pip's name may have hyphens; the module and the type names get underscores
    parts = parts or set(PARTS)
    root = Path(directory) / f"connector-{name.replace('_', '-')}"
    if root.exists():
        raise CommandError(f"{root} exists already: choose another --directory or remove it")
    package = f"connector_{name}"
    camel = "".join(word.capitalize() for word in name.split("_"))
    classes = {"source": f"{camel}SourceConfig", "mapper": f"{camel}ToSegmentConfig", "sink": f"{camel}SinkConfig"}
    values = {
        "name": name, "env": name.upper(), "package": package, "distribution": root.name, "camel": camel,
        "title": name.replace("_", " ").title(),
        "imports": "".join(f"from .{part} import {classes[part]}\n" for part in sorted(parts)),
        "registrations": "".join(f"    registry.add({classes[part]})\n" for part in PARTS if part in parts),
        "test_imports": "".join(f"from {package}.{part} import {classes[part]}\n" for part in sorted(parts)),
    }
    templates = files("connector.scaffold") / "templates"
    outputs = {"pyproject.toml": "pyproject.toml", "README.md": "README.md",
               f"{package}/__init__.py": "package_init.py"}
    outputs.update({f"{package}/{part}.py": f"{part}.py" for part in PARTS if part in parts})
    tests = "".join((templates / f"test_{part}.py.tmpl").read_text() for part in PARTS if part in parts)
    for target, template in outputs.items():
        _write(root / target, string.Template((templates / f"{template}.tmpl").read_text()).substitute(values))
    _write(root / "tests" / f"test_{name}.py",
           string.Template((templates / "test_header.py.tmpl").read_text() + tests).substitute(values))
    return root


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
