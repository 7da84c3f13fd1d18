"""The ground floor: errors, the checkout's paths, the worker protocol's files (atomic JSON,
tensors on disk) and number formatting. Imports nothing of the project."""
