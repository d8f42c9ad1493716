"""The Redfish protocol: an asyncio HTTP client (client.py) and the pure walk of a resource
tree into points (decode.py)."""
