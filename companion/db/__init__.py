"""Database backends of the project's own."""
