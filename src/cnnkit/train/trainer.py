"""Trainer: the engine for those who prefer PyTorch's spelling over Keras's.

    trainer = Trainer(MyNet(), optimizer="sgd", learning_rate=0.01, loss="cross_entropy")
    trainer.fit(train_loader, epochs=10, validation_data=test_loader)

It wraps the module in ``cnnkit.Model`` so everything (callbacks, save, summary, reports)
behaves the same as on the Keras facade.
"""

from __future__ import annotations

from ..models.base import Model


class Trainer:
    def __init__(self, module, optimizer="adam", loss="cross_entropy", metrics=("accuracy",),
                 learning_rate=None, device=None, input_shape=None, class_names=None,
                 precision="auto"):
        self.model = module if isinstance(module, Model) else Model(
            module, input_shape=input_shape, class_names=class_names)
        self.model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics),
                           learning_rate=learning_rate, device=device, precision=precision)

    def fit(self, train_data, y=None, epochs=1, **kwargs):
        """``train_data``: a DataLoader, a dataset object, or arrays with ``y``."""
        return self.model.fit(train_data, y, epochs=epochs, **kwargs)

    def evaluate(self, data, y=None, **kwargs):
        return self.model.evaluate(data, y, return_dict=True, **kwargs)

    def predict(self, data, **kwargs):
        if isinstance(data, tuple):
            data = data[0]
        return self.model.predict(data, **kwargs)

    def save(self, path):
        return self.model.save(path)
