"""Test factories: rows with meaningful defaults, so each test states only what matters."""
