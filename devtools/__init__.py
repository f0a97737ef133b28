"""Developer tools: local stand-ins for outside services."""
