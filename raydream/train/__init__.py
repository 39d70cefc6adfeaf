"""Layer 3, train: one trial. Typed training configs, the optimiser recipe and epoch steps
(plain PyTorch), checkpoints, the Ray Train loop and the Tune trainable that runs each family
(`raydream.train.trial`). Imports only the layers below (core, data, models)."""
