"""``connector new-plugin NAME``: a third-party plugin package whose tests pass as generated.

The templates (``templates/*.tmpl``, ``string.Template``) are a plugin as this project's own are written: a signed-in
webhook source (or, with ``--polling``, a source polling a paginated API with a cursor, backoff
and pause), a mapper to a Segment track, an HTTP sink with retries and pause, and tests built on
the conformance suites of ``connector.testing``. Only what was asked for is written: files,
README tables, imports.
"""

from __future__ import annotations

import re
import string
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from ...errors import CommandError

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
PARTS = ("source", "mapper", "sink")
CONTRACTS = {"source": "SourceContract", "mapper": "MapperContract", "sink": "SinkContract"}
SUMMARIES = {"source": "a webhook source", "mapper": "a mapper to Segment", "sink": "an HTTP sink"}


def new_plugin(name: str, directory: str, parts: set[str], polling: bool = False) -> Path:
    """Write ``connector-NAME/`` in ``directory`` with the chosen ``parts`` (none: all three, or
    with ``polling`` a polling source and a mapper); return its path."""
    if not NAME.match(name):
        raise CommandError(f"plugin name {name!r}: use lowercase letters, digits, underscores and hyphens, "
                           "starting with a letter (e.g. typeform, surveymonkey-poll)")
    name = name.replace("-", "_")  # pip's name may have hyphens; the module and the type names get underscores
    parts = parts or ({"source", "mapper"} if polling else set(PARTS))
    if polling:
        parts.add("source")
    chosen = [part for part in PARTS if part in parts]
    root = Path(directory) / f"connector-{name.replace('_', '-')}"
    if root.exists():
        raise CommandError(f"{root} exists already: choose another --directory or remove it")
    package = f"connector_{name}"
    camel = "".join(word.capitalize() for word in name.split("_"))
    classes = {"source": f"{camel}SourceConfig", "mapper": f"{camel}ToSegmentConfig", "sink": f"{camel}SinkConfig"}
    templates = files("connector.cli.scaffold") / "templates"
    # a template per part; the polling source has its own
    template_of = {part: f"polling_{part}" if polling and part == "source" else part for part in chosen}
    contracts = {**CONTRACTS, "source": "PollingSourceContract" if polling else "SourceContract"}
    helpers = {contracts[part] for part in chosen}  # what the generated tests import from connector.testing
    if "sink" in chosen:
        helpers.add("FakeHTTPDestination")
    if polling:
        helpers.add("FakePagedAPI")
    summaries = {**SUMMARIES, "source": "a polling source" if polling else SUMMARIES["source"]}
    values = {
        "name": name, "env": name.upper(), "package": package, "distribution": root.name, "camel": camel,
        "title": name.replace("_", " ").title(),
        "imports": "".join(f"from .{part} import {classes[part]}\n" for part in sorted(chosen)),
        "registrations": "".join(f"    registry.add({classes[part]})\n" for part in chosen),
        "test_imports": "".join(f"from {package}.{part} import {classes[part]}\n" for part in sorted(chosen)),
        "test_helpers": ", ".join(sorted(helpers)),
        "mapper_input": name if "source" in parts else "your_source",
        "sink_input": f"{name}_segment" if "mapper" in parts else name if "source" in parts else "your_mapper",
        "summary": ", ".join(summaries[part] for part in chosen),
        "suites": ", ".join(f"`connector.testing.{contracts[part]}`" for part in chosen),
    }
    values["config"] = "".join(_fill(templates / f"readme_{template_of[part]}.toml.tmpl", values)
                               for part in chosen).rstrip()
    outputs = {"pyproject.toml": "pyproject.toml", "README.md": "README.md",
               f"{package}/__init__.py": "package_init.py"}
    outputs.update({f"{package}/{part}.py": f"{template_of[part]}.py" for part in chosen})
    for target, template in outputs.items():
        _write(root / target, _fill(templates / f"{template}.tmpl", values))
    tests = "".join((templates / f"test_{template_of[part]}.py.tmpl").read_text() for part in chosen)
    _write(root / "tests" / f"test_{name}.py",
           string.Template((templates / "test_header.py.tmpl").read_text() + tests).substitute(values).rstrip() + "\n")
    return root


def _fill(template: Traversable, values: dict[str, str]) -> str:
    return string.Template(template.read_text()).substitute(values)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
