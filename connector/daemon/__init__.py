"""A running daemon: the parts a process runs (``ingest.py``: the listeners and the polling
sources; the sinks' side is ``delivery/``), which parts each process runs (``assemble.py``), and
the process itself: signals, supervision, a graceful stop (``runtime.py``)."""
