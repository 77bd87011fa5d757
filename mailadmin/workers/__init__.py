"""Long-running jobs beside the request/response services: they own their transactions."""
