"""The built-in transfer strategies, one module each, registered like any plugin."""
