"""BambooHR → Moodle user sync (issue 13): settings, the two HTTP clients, the cursor and the
engine that the CLI (`manireports sync bamboohr`) and the sync service's `bamboohr` command run."""
