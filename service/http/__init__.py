"""The HTTP gateway: validates submissions and publishes them, confirmed, to the broker."""
