"""Typed keys of what the gateway application holds."""

from __future__ import annotations

from aiohttp import web

from service.amqp import Publisher
from service.contracts import Catalog
from service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
PUBLISHER = web.AppKey("publisher", Publisher)
