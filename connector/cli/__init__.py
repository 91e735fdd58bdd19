"""The ``connector`` command: ``main.py`` parses and dispatches; a module for each command group
that is more than a few lines (``status``, ``dlq``, ``backup``, ``preview``, ``mapping_tests``
for ``connector test``, ``scaffold`` for ``connector new-plugin``)."""
