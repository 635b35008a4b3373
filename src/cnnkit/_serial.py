"""Name <-> object registries for initializers, regularizers and constraints.

``get`` takes what Keras takes (a name such as ``"he_normal"`` or ``"HeNormal"``, an object, a
class, or a saved ``{"class_name": ..., "config": ...}`` dict); ``serialize`` writes that dict.
A saved config can only name a class in the registry: nothing read from a file picks code.
"""

from __future__ import annotations


class KerasObject:
    """What initializers, regularizers and constraints share: Keras's ``get_config`` /
    ``from_config`` pair (the config is the constructor's arguments) and a repr of it."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SerialRegistry:
    def __init__(self, kind: str, base: type, names: dict[str, type]):
        self.kind = kind
        self.base = base
        self.by_name = dict(names)
        self.by_class = {cls.__name__: cls for cls in names.values()}

    def _known(self) -> str:
        return ", ".join(sorted(self.by_name))

    def get(self, identifier):
        """An object for ``identifier`` (None stays None)."""
        if identifier is None or isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            cls = self.by_name.get(identifier.lower()) or self.by_class.get(identifier)
            if cls is None:
                raise ValueError(f"unknown {self.kind} {identifier!r}; known: {self._known()}")
            return cls()
        if isinstance(identifier, dict):
            name = identifier.get("class_name")
            cls = self.by_class.get(name) or self.by_name.get(str(name).lower())
            if cls is None:
                raise ValueError(f"unknown {self.kind} {name!r} in the saved config; "
                                 f"known: {self._known()}")
            return cls.from_config(identifier.get("config") or {})
        if isinstance(identifier, type) and issubclass(identifier, self.base):
            return identifier()
        if callable(identifier):
            return identifier  # a plain function: runs, but cannot be saved (serialize says so)
        raise TypeError(f"{self.kind} must be a name, a cnnkit.{self.kind}s object or None, "
                        f"got {identifier!r}")

    def serialize(self, obj) -> dict | None:
        if obj is None:
            return None
        if not isinstance(obj, self.base) or type(obj).__name__ not in self.by_class:
            raise ValueError(f"{self.kind} {obj!r} is not one of cnnkit.{self.kind}s' classes, and a "
                             f"saved model records {self.kind}s by name, never as code: use one of "
                             f"{self._known()}")
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
