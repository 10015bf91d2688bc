"""A small convolutional network on scikit-learn's 8x8 digits (issue: the CNN example).

Conv2d(1, 8, 3) -> ReLU -> MaxPool2d(2) -> Linear(8*3*3, 10), trained with
cross-entropy and Adam on 1,437 images, tested on the other 360. Progress is shown with
``symgrad.progress`` (a bar on a terminal). At the end the script prints the closed-form
gradient of the loss of one example with respect to the first convolution's kernel: an
array-level formula (the input's windows gathered by one index, times the upstream
gradient), not one term per pixel.

Needs scikit-learn (``pip install 'symgrad[libs]'``).

Run: ``python examples/cnn_digits.py``
"""
import numpy as np
from sklearn.datasets import load_digits

import symgrad
import symgrad.nn.functional as F
from symgrad import nn, optim
from symgrad.progress import progress

symgrad.manual_seed(0)
rng = np.random.default_rng(0)

digits = load_digits()
images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # (1797, 1, 8, 8) in [0, 1]
labels = digits.target.astype(np.int64)
order = rng.permutation(len(images))
train, test = order[:1437], order[1437:]

model = nn.Sequential(
    nn.Conv2d(1, 8, 3, dtype=symgrad.float32),
    nn.ReLU(),
    nn.MaxPool2d(2),
)
classifier = nn.Linear(8 * 3 * 3, 10, dtype=symgrad.float32)
parameters = list(model.parameters()) + list(classifier.parameters())
optimizer = optim.Adam(parameters, lr=0.01)


def logits(batch: np.ndarray) -> symgrad.Tensor:
    features = model(symgrad.tensor(batch))
    return classifier(features.reshape(features.shape[0], -1))


batch_size, epochs = 64, 8
steps = [(epoch, start) for epoch in range(epochs) for start in range(0, len(train), batch_size)]
for epoch, start in progress(steps, desc="training", unit="step"):
    if start == 0:
        rng.shuffle(train)
    batch = train[start:start + batch_size]
    optimizer.zero_grad()
    loss = F.cross_entropy(logits(images[batch]), symgrad.tensor(labels[batch]))
    loss.backward()
    optimizer.step()

with symgrad.no_grad():
    predicted = logits(images[test]).argmax(dim=1).numpy()
accuracy = float(np.mean(predicted == labels[test]))
print(f"test accuracy: {accuracy:.3f} on {len(test)} images")
print("above 95%:", accuracy > 0.95)

# the closed-form gradient of one example's loss with respect to the first kernel
kernel = model[0].weight
for parameter, name in zip(parameters, ["K", "b", "W", "c"]):
    parameter.name = name
image = symgrad.tensor(images[test[:1]], name="x")
one = F.cross_entropy(classifier(model(image).reshape(1, -1)), symgrad.tensor(labels[test[:1]]))
closed_form = symgrad.symbolic.diff(one, kernel)
text = symgrad.symbolic.text(closed_form)
print(f"d loss / d K, {len(text)} characters:")
print(text)
one.backward()
print("gradient shape:", tuple(kernel.grad.shape))
