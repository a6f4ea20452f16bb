"""The viewer's own account: their signed-in sessions, and signing out everywhere."""
