"""The example app's handlers, one module per area; only its consumers import them."""
