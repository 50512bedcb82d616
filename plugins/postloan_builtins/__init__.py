"""postloan's built-in plugins: registered through the ``postloan`` entry-point group exactly
like third-party plugins."""
