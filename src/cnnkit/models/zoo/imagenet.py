"""torchvision's ImageNet families as zoo backbones, with the shared head API.

The wrapper adopts the torchvision model's children under their own names, so its state dict
keys are exactly torchvision's (``layer4.1.conv2.weight``, ``classifier.3.bias``): the
published weight files load as they are, and files saved by plain torchvision code too.

- ``include_top=False`` drops the classifier (ResNet's ``fc``, the others' ``classifier``);
  ``pooling`` is then ``None`` (return the N×C×h×w feature map), ``'avg'`` or ``'max'``.
- ``reset_classifier`` replaces only the final Linear (MobileNetV3's pre-logits Linear and
  ConvNeXt's head LayerNorm are pretrained and stay).
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .common import check_head, new_classifier

# per family: names of the children that form the base, in order; the classifier's name
_RESNET_BASE = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class TorchvisionNet(nn.Module):
    def __init__(self, arch: str, num_classes: int = 1000, include_top: bool = True,
                 pooling: str | None = "avg", hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        check_head(include_top, pooling, own_pooling="average pooling")
        import torchvision  # here, not at import: it pulls in torch._dynamo (~2 s)
        tv = torchvision.models.get_model(arch, weights=None, num_classes=num_classes if include_top else 1000)
        self.arch = arch
        self.is_resnet = arch.startswith("resnet")
        for name, child in tv.named_children():
            self.add_module(name, child)
        self._clf_name = "fc" if self.is_resnet else "classifier"
        self.include_top = include_top
        self.pooling = pooling
        self.num_features = self._final_linear().in_features
        self.num_classes = num_classes if include_top else 0
        if not include_top:
            setattr(self, self._clf_name, nn.Identity())
            if pooling is not None:
                # pooled width = channels of the feature map, not the (pre-logits) Linear's input
                self.num_features = self._feature_channels()
            if pooling == "max":
                self.avgpool = nn.AdaptiveMaxPool2d(1)
        elif hidden or dropout:
            self.reset_classifier(num_classes, hidden, dropout)

    # --- the shared head API ---------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_resnet:
            for name in _RESNET_BASE:
                x = getattr(self, name)(x)
            return x
        return self.features(x)  # (N, C, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.include_top and self.pooling is None:
            return x
        x = self.avgpool(x)  # (N, C, 1, 1)
        clf = getattr(self, self._clf_name)
        if not self.include_top or not self._head_flattens:
            x = torch.flatten(x, 1)  # (N, C)
        if not self.include_top:
            return x
        if pre_logits:
            return clf[:-1](x) if isinstance(clf, nn.Sequential) and not self._head_is_new else x
        return clf(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def _head_flattens(self) -> bool:
        # ConvNeXt's classifier starts with LayerNorm2d + Flatten and takes the (N, C, 1, 1) map
        clf = getattr(self, self._clf_name)
        return isinstance(clf, nn.Sequential) and not self._head_is_new and \
            any(isinstance(m, nn.Flatten) for m in clf)

    @property
    def _head_is_new(self) -> bool:
        return getattr(self, "_new_head", False)

    def _final_linear(self) -> nn.Linear:
        clf = getattr(self, self._clf_name)
        return clf if isinstance(clf, nn.Linear) else [m for m in clf.modules() if isinstance(m, nn.Linear)][-1]

    def _feature_channels(self) -> int:
        with torch.no_grad():
            was = self.training
            self.eval()
            c = self.forward_features(torch.zeros(1, 3, 64, 64)).shape[1]
            self.train(was)
        return int(c)

    def get_classifier(self) -> nn.Module:
        clf = getattr(self, self._clf_name)
        if isinstance(clf, nn.Sequential) and not self._head_is_new:
            return clf[-1]
        return clf

    @property
    def head(self) -> nn.Module:
        return self.get_classifier()

    def classifier_prefix(self) -> str:
        """State-dict key prefix of the layer ``reset_classifier`` replaces."""
        clf = getattr(self, self._clf_name)
        if isinstance(clf, nn.Sequential) and not self._head_is_new:
            return f"{self._clf_name}.{len(clf) - 1}"
        return self._clf_name

    def reset_classifier(self, num_classes: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        if not self.include_top:
            raise ValueError("this backbone was built with include_top=False; add a head on top of it "
                             "or build it with include_top=True")
        clf = getattr(self, self._clf_name)
        if isinstance(clf, nn.Sequential) and not self._head_is_new:
            in_f = clf[-1].in_features
            if hidden or dropout:
                # keep the pretrained part (e.g. MobileNetV3's Linear 960->1280) and put the new head after it
                clf[-1] = new_classifier(in_f, num_classes, hidden, dropout)
            else:
                clf[-1] = nn.Linear(in_f, num_classes)
        else:
            setattr(self, self._clf_name, new_classifier(self._final_linear().in_features, num_classes,
                                                         hidden, dropout))
            self._new_head = bool(hidden or dropout)
        self.num_classes = num_classes

    def blocks(self) -> list[tuple[str, nn.Module]]:
        if self.is_resnet:
            out: list[tuple[str, nn.Module]] = [("stem", nn.ModuleList([self.conv1, self.bn1]))]
            out += [(f"layer{i}", getattr(self, f"layer{i}")) for i in range(1, 5)]
        else:
            out = [(f"features.{n}", m) for n, m in self.features.named_children()]
        clf = getattr(self, self._clf_name)
        if self.include_top and isinstance(clf, nn.Sequential) and not self._head_is_new:
            pre = nn.ModuleList(list(clf)[:-1])
            if any(True for _ in pre.parameters()):
                out.append((f"{self._clf_name}[:-1]", pre))
        return out

    def feature_layer(self) -> nn.Module:
        return self.layer4 if self.is_resnet else self.features[-1]


def _builder(arch: str):
    def build(num_classes=1000, input_shape=(224, 224, 3), include_top=True, pooling="avg",
              hidden=None, dropout=0.0):
        return TorchvisionNet(arch, num_classes, include_top, pooling, hidden, dropout)

    build.__name__ = arch
    return build


_FAMILIES = {
    "resnet18": ("resnet", "ResNet-18 (torchvision), 11.7M params"),
    "resnet34": ("resnet", "ResNet-34 (torchvision), 21.8M params"),
    "resnet50": ("resnet", "ResNet-50 (torchvision), 25.6M params"),
    "mobilenet_v3_large": ("mobilenet", "MobileNetV3-Large (torchvision), 5.5M params"),
    "mobilenet_v3_small": ("mobilenet", "MobileNetV3-Small (torchvision), 2.5M params"),
    "efficientnet_b0": ("efficientnet", "EfficientNet-B0 (torchvision), 5.3M params"),
    "convnext_tiny": ("convnext", "ConvNeXt-Tiny (torchvision), 28.6M params"),
}

for _arch, (_family, _desc) in _FAMILIES.items():
    register_model(_arch, family=_family, input_shape=(224, 224, 3), num_classes=1000,
                   pretrained=True, imagenet=True, description=_desc)(_builder(_arch))
