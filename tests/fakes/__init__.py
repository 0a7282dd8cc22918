"""Local fakes for tests: stand-ins for external services, for fault injection without a network."""
