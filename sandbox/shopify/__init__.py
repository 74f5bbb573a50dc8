"""A local stand-in for the Shopify Admin GraphQL API, faithful to Shopify's documented
behaviour (and its quirks): many shops, calculated query cost with a leaky bucket, bulk
operations with JSONL files, signed webhooks with retries, and fault knobs.

``create_app()`` returns the Flask app; serve it with ``sandbox.server.serve``.
"""

from __future__ import annotations

from sandbox.shopify.app import create_app

__all__ = ["create_app"]
