"""Webhook receivers: verify the signature on the raw body, store the delivery, answer fast.

Nothing is processed in the request: the inbox row and its job are committed, the job is handed
to the queue, and the platform gets its 2xx well inside its deadline (Shopify: 5 s).
"""

from __future__ import annotations

from flask import Blueprint

from webhooks import bigcommerce, hubspot, salesforce, shopify, woocommerce, zoho

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
bp.add_url_rule("/shopify", "shopify", shopify.receive, methods=["POST"])
bp.add_url_rule(
    "/woocommerce/<int:connection_id>", "woocommerce", woocommerce.receive, methods=["POST"]
)
bp.add_url_rule("/bigcommerce", "bigcommerce", bigcommerce.receive, methods=["POST"])
bp.add_url_rule("/hubspot", "hubspot", hubspot.receive, methods=["POST"])
bp.add_url_rule("/zoho/<int:connection_id>", "zoho", zoho.receive, methods=["POST"])
bp.add_url_rule(
    "/salesforce/<int:connection_id>", "salesforce", salesforce.receive, methods=["POST"]
)
