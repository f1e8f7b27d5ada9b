"""What the gateway writes to Kafka: control messages from its admin API.

May import rooms/ and transport/; never edge/ or redis/ (wired in app.py).
"""
