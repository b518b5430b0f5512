#!/usr/bin/env python
"""Copy the train-semi images from ImageNet train/ (`--help`: options)."""
from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # a clone works uninstalled
from imagenets.errors import dependencies_of  # noqa: E402

with dependencies_of("datapreparation_train_semi.py"):
    from imagenets.datapreparation.prepare import step_script_main

if __name__ == "__main__":
    sys.exit(step_script_main(("train-semi",)))
