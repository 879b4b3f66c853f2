"""The seed story of lateinit (docs/design.md, "The story") as a script: a network without
input sizes.

Run: python examples/seed_story.py
"""

import torch

import lateinit
from lateinit import init, nn

# --8<-- [start:story]
net = nn.Sequential()
net.add(nn.Dense(256, activation="relu"))
net.add(nn.Dense(10))  # no input sizes anywhere

print(net.collect_params())  # 0.weight (256, -1) ... 1.weight (10, -1): -1 = unknown
try:
    _ = net[0].weight.data
except lateinit.DeferredInitializationError as err:
    print("too early:", err)
net.initialize(init.Xavier())  # registers the initializer; the weights still wait for data
X = torch.rand(2, 20)
print(net(X).shape)  # shapes inferred layer by layer, then initialized
print(net.collect_params())  # (256, 20) (256,) (10, 256) (10,)
# --8<-- [end:story]
