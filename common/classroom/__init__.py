"""Google Classroom (issue 14): the API client and the auto-unenroll policy's Remover."""
