"""Training layer: configs, optimiser recipe and epoch steps (plain PyTorch), and the Ray
Train loop (`raydream.train.loop`, the only module here that imports Ray)."""
