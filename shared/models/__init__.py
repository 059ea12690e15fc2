"""The platform's models: registry, artifacts, training and serving."""
