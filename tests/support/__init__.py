"""Plugins used by the tests, loaded through CONNECTOR_PLUGINS."""
