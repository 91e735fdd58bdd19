"""The ``jq`` mapper: a jq program (libjq, through the ``jq`` package) turns each record into messages.

The program runs on the record's JSON; every value it outputs is one message, a Segment message
object (``type``, ``event``, ``userId``...). ``empty`` gives none: a filter the user configured,
counted. A program that fails on a record (``error(...)``, a type error) dead-letters that record
with jq's message; one that outputs something else than an object does too. The program is compiled
once when the mapper is built; ``args`` become ``$name`` variables; the environment (``$ENV``,
``env``) is hidden from it, so secrets stay out of mappings.
"""

from __future__ import annotations

from typing import Any

import connector

# $ENV and env read the process's environment (write keys, shared secrets): shadowed, empty
_NO_ENVIRONMENT = "def env: {}; {} as $ENV | "


class JqMapperConfig(connector.MapperConfig, tag="jq"):
    """``type = "jq"``: ``program``, a jq program run on each record; ``args``, a table of named
    variables the program reads as ``$name``."""

    program: str
    args: dict[str, Any] = {}

    def build(self, ctx: connector.BuildContext) -> connector.Mapper:
        try:
            import jq  # libjq's bindings (connector[jq]): only where a jq mapper is
        except ImportError:
            raise connector.ConfigError(f"mappers.{ctx.name}.type: the jq mapper needs the jq package (libjq), "
                                        "which is not installed: pip install 'connector[jq]'") from None
        try:
            jq.compile(self.program, args=self.args)  # the user's own program: its error positions are theirs
            compiled = jq.compile(_NO_ENVIRONMENT + "(" + self.program + "\n)", args=self.args)
        except ValueError as exc:
            message = " ".join(str(exc).replace("jq: error: ", "").split())
            raise connector.ConfigError(f"mappers.{ctx.name}.program: does not compile: {message}") from None
        return JqMapper(compiled)


class JqMapper(connector.Mapper):
    """Runs a compiled jq program on each record's canonical JSON."""

    def __init__(self, program: Any):
        self.program = program

    def map(self, record: connector.Record) -> list[dict[str, Any]]:
        try:
            outputs: list[Any] = self.program.input_text(record.body.decode()).all()
        except ValueError as exc:
            raise connector.RecordRejected(f"jq: {exc}") from None
        for output in outputs:
            if not isinstance(output, dict):
                raise connector.RecordRejected(f"jq: the program output {type(output).__name__} "
                                               f"{str(output)[:80]!r}, not a message object")
        return outputs
