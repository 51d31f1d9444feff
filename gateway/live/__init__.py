"""Live seat balances: what the subscriptions of :mod:`gateway.schema.live` are fed with.

* :mod:`gateway.live.hub`: one refresh loop per live listing (credential, customer, contract,
  seats, include flags) shared by all its subscribers, fanning each refresh out to their
  bounded queues; refreshed every poll interval and at once when a webhook names the customer.
* :mod:`gateway.live.bus`: what the replicas share through Redis: a lease per listing (one
  poller across all replicas), the refreshes (pub/sub), the webhook events and their ids
  (deduplicated); without Redis, or while it fails, each process on its own.

Nothing here knows GraphQL: the hub hands out the billing API's seat records, and the schema
decides what a subscriber is sent of them.
"""

from gateway.live.bus import Bus, LocalBus, RedisBus
from gateway.live.hub import (
    LiveHub,
    LiveListing,
    LiveSettings,
    Subscription,
    TooManySeats,
    TooManySubscriptions,
    Update,
)

__all__ = [
    "Bus",
    "LiveHub",
    "LiveListing",
    "LiveSettings",
    "LocalBus",
    "RedisBus",
    "Subscription",
    "TooManySeats",
    "TooManySubscriptions",
    "Update",
]
