"""An example third-party mediadecode backend (see backend.py)."""
