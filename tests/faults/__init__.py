"""Fault injection against private RabbitMQ nodes: what Warren promises, proven under faults.

See the README's "Guarantees" section for the promise, the scenarios and how to run a soak.
"""
