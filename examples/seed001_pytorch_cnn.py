"""Seed 001, the PyTorch part: the tutorial's ``CNN(nn.Module)`` (dropout and all) trained with
SGD(lr=0.01) on CIFAR-10 through cnnkit's engine, from a DataLoader as the tutorial does.

    python examples/seed001_pytorch_cnn.py [--epochs 10]
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnkit
from _common import parse_args


class CNN(nn.Module):
    def __init__(self):
        super(CNN, self).__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout(p=0.5)
        self.fc1 = nn.Linear(64 * 6 * 6, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.dropout(x)
        x = self.pool(F.relu(self.conv2(x)))
        x = self.dropout(x)
        x = x.view(-1, 64 * 6 * 6)
        x = F.relu(self.fc1(x))
        x = self.dropout(x)
        x = self.fc2(x)
        return x


args = parse_args(__doc__, epochs=10)
cnnkit.utils.set_random_seed(0)
train, test = cnnkit.datasets.image_dataset_from_directory(
    args.data / "cifar10-jpeg" / "train", image_size=(32, 32), validation_split=0.2,
    subset="both", seed=0)
n = args.limit or len(train)
# The tutorial's loaders: (image, label) batches of float tensors in [0, 1], NCHW.
train_loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(train.images[:n].float() / 255, train.labels[:n]),
    batch_size=32, shuffle=True)
test_loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(test.images.float() / 255, test.labels), batch_size=256)

trainer = cnnkit.Trainer(CNN(), optimizer="sgd", learning_rate=0.01, loss="cross_entropy",
                         metrics=["accuracy"], input_shape=(32, 32, 3),
                         class_names=train.class_names)
trainer.model.summary()
trainer.fit(train_loader, epochs=args.epochs, validation_data=test_loader)
result = trainer.evaluate(test_loader)
print("Accuracy of the network on the %d held-out images: %d %%"
      % (len(test), 100 * result["accuracy"]))
