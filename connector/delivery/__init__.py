"""Records out: a sink's pipeline (``pipeline.py``: read, map, hand to the sink, acknowledge),
the sinks of a process (``local.py``), the second process they may run in (``process.py``) and
its control channel (``control.py``), and ``next_batch`` for a sink's inbox (``batching.py``)."""
