"""Source/target pairs: the embedded procedural pair and the K-shot split."""
