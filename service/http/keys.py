"""Typed keys of what the gateway application holds."""

from __future__ import annotations

from aiohttp import web

from warren.service.amqp import Publisher
from warren.service.connections import BrokerLinks
from warren.service.contracts import Catalog
from warren.service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
PUBLISHER = web.AppKey("publisher", Publisher)
BROKER = web.AppKey("broker", BrokerLinks)  # connections made in the background
