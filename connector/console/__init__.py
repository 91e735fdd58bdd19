"""The web console: one HTML page, its script and its style, served on the admin listener's ``/``
(``ingress/console_files.py``). The script reads the admin API (``/status``, ``/rates``, ``/tap``,
``/dead-letters``) with the admin token the operator gives it; nothing is built or fetched."""
