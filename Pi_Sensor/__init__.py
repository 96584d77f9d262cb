"""Device side of the system: the WebSocket ingest server and the Raspberry Pi client."""
