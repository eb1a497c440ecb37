"""Runpod REST API v2 (``https://api.runpod.io/v2``), one module per resource.

``localpod.services.rest_v2.routes`` aggregates them; the app mounts them under ``/api.runpod.io``.
Responses carry exactly the fields of the official OpenAPI schemas (the tests validate every one).
"""
