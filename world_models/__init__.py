"""World models: the `WorldModel` protocol, model families, training loop and checkpoints."""
