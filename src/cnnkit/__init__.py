"""cnnkit: build, train, evaluate, explain and ship CNN image classifiers."""

__version__ = "0.1.0"
