"""Example apps of Warren: code that uses Warren the way a user's package would."""
