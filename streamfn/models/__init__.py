"""The models: the registry, their schemas and reference profiles, loaded and kept warm."""
