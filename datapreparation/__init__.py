"""datapreparation: build ImageNet-S 50/300/919 from a copy of ImageNet-1k."""
