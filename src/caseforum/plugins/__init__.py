"""Built-in plugins: modules that hold only ``@hookimpl`` functions.

They are listed in :data:`caseforum.plugin_host.DEFAULT_PLUGINS`.
"""
