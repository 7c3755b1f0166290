"""Chat-platform adapters: each translates and transports, and decides nothing."""
