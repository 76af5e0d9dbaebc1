"""Business rules and use cases. Depends on domain and on the ports in `ports.py`."""
