"""Sample-quality metrics: feature extractors (through torch-fidelity) and the evaluator."""
