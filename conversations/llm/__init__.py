"""Model backends. Nothing here imports the Django apps; `factory.py` alone reads settings."""
