"""Django's SQLite backend, with its placeholder rewrite done once per statement text."""
