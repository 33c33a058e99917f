"""The error every bad evaluation setting raises: the registry and the runtime settings share it."""


class ProxyError(ValueError):
    """An unknown proxy name, an unknown knob or a bad knob value."""
