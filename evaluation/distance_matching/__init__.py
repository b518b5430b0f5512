"""Distance matching (PASS): embeddings bank from train-semi, k-NN vote per pixel, the command."""
