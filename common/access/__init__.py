"""Who may see what: capabilities, the signed-in viewer, Moodle password checks."""
