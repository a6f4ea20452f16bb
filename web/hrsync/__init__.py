"""The HR sync admin page (issue 13)."""
