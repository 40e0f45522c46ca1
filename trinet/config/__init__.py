"""The typed settings of a training run (what `args.json` holds, with the checks of flag combinations) and
the registries of choices whose code needs TensorFlow, imported only when used.
"""
