"""``connector jebbit``: Jebbit's Integrations API from the command line (set-up, round trips,
secret rotation, backfills), apart from the plugin's runtime (the source and the mapper): it is
imported only when a ``connector`` command line is built."""
