"""An embedded stand-in for Metronome's "List seat balances" endpoint, over seeded demo data.

It knows nothing about GraphQL and shares no code with ``gateway.upstream``: it is the reference
the gateway's answers are compared against, served in-process through ``httpx.ASGITransport`` or
as a real server with ``python -m gateway.standin``. ``DemoActivity`` moves the demo contract's
balances under a running app and signs webhooks about them, as the billing API would send.
"""

from gateway.standin.app import create_standin_app
from gateway.standin.data import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_SUBSCRIPTION_IDS,
    DEMO_TOKEN,
    DEMO_USAGE_SUBSCRIPTION_ID,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
    build_dataset,
)
from gateway.standin.live import DEMO_WEBHOOK_SECRET, DemoActivity, sign_webhook

__all__ = [
    "DEMO_CONTRACT_ID",
    "DEMO_CUSTOMER_ID",
    "DEMO_SUBSCRIPTION_IDS",
    "DEMO_TOKEN",
    "DEMO_USAGE_SUBSCRIPTION_ID",
    "DEMO_WEBHOOK_SECRET",
    "OTHER_CONTRACT_ID",
    "OTHER_CUSTOMER_ID",
    "OTHER_TOKEN",
    "DemoActivity",
    "build_dataset",
    "create_standin_app",
    "sign_webhook",
]
