"""The one exception type of the export tools."""


class ExportError(ValueError):
    """A config, checkpoint or layer the export cannot handle. The message is one line
    naming the file, key or layer, and the fix; tools print it without a traceback."""
