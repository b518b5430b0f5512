"""The demo: synthetic ImageNet, metadata and predictions, then the whole pipeline with the real commands.

It stands above the core (it runs the evaluation and datapreparation commands); core modules never import it.
"""
