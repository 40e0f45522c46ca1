"""Export a trained model for serving: a SavedModel, and ONNX and TFLite converted from it, each verified
against `trinet.Embedder` when it is written (`python -m trinet.export`, installed as `trinet-export`).

Modules: `serving` (the endpoints and the SavedModel), `formats` (the registry of formats), `publish`
(build, verify, then publish atomically), `command` (the command line).
"""
