"""Fault injection against private RabbitMQ nodes: what Warren promises, proven under faults.

See docs/guarantees.md for the promise, the scenarios and how to run a soak.
"""
