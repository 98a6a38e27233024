"""The operator's console: an HTTP API (FastAPI, OpenAPI at /openapi.json) and an offline web page.

An app-layer package like deploy/ and analysis/: besides bus it uses the gallery file (match),
in-process detection and embedding for uploaded photos (faces.analyzer) and the events store.
"""
