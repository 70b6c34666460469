"""A plugin module that fails on import, as a plugin with a broken dependency does."""

raise RuntimeError("_sel_broken_backend: simulated failure while importing the plugin")
