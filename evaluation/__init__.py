"""evaluation: ImageNet-S matching and metrics (match.py, evaluator.py) and the benchmark protocols."""
