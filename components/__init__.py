"""KFP v2 components of kfp-ml-pipelines.

Each concern is a module of plain, typed functions (what tests, benchmarks and
the local server import) plus a `steps` module of thin KFP wrappers that move
inputs and outputs between KFP artifacts and those functions.
"""
