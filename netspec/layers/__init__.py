"""Built-in layer families, each a plugin module listed in ``netspec.plugins.BUILTIN_PLUGINS``."""
