"""The README's ten lines: attack the committed Fashion-MNIST CNN with PGD."""

from advx import PGD, Linf
from advx.data import load
from advx.zoo import load_model

model = load_model("fmnist-cnn")                       # committed reference CNN
data = load("fashion-mnist", split="test", n=500)      # real Fashion-MNIST, in [0, 1]
result = PGD(Linf(0.1), steps=40)(model, data.x, data.y)
print(f"clean accuracy  {result.clean_correct.float().mean():.3f}")
print(f"robust accuracy {result.robust_accuracy():.3f} at Linf eps=0.1")
