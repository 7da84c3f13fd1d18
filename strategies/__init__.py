"""Memory strategies, one module each, registered through the `membench.strategies` entry point."""
