"""File landing: files in the landing container, read through their contracts into bronze."""
